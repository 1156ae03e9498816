// The public API on top of the wasm boundary. Entry points (index.js, node.js) say how the .wasm and the model
// files beside it are read.
import { toRgba } from './inputs.js';

const notSet = (what) => () => Promise.reject(new Error(`wrn-wasm: no ${what} (import the package, not this file)`));
let loadWasm = notSet('wasm loader');
let readModel = notSet('model reader');
let wasmReady;

/**
 * @internal Entry points set how the .wasm is fetched and instantiated: `loader({ threads })` resolves with
 * `{ glue, threads }`, the wasm-bindgen module it instantiated and the threads it runs on.
 */
export function setWasmLoader(loader) {
  loadWasm = loader;
}

/**
 * @internal Entry points set how the package's model is read: `reader()` resolves with its bytes (a Uint8Array), read
 * anew for each load. Its manifest is the one compiled into the .wasm.
 */
export function setModelReader(reader) {
  readModel = reader;
}

function checkThreads(threads) {
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) {
    throw new RangeError(`threads must be a positive integer, got ${threads}`);
  }
  return threads;
}

function ensureWasm(options) {
  // One instantiation per process, shared (the first load's options pick the build); a failed one is retried.
  wasmReady ??= Promise.resolve().then(() => loadWasm(options)).catch((e) => {
    wasmReady = undefined;
    throw e;
  });
  return wasmReady;
}

// Only the loaders below construct classifiers.
const internal = Symbol('wrn-wasm internal');

function checkTopK(topK) {
  if (!Number.isInteger(topK) || topK < 1) throw new RangeError(`topK must be a positive integer, got ${topK}`);
  return Math.min(topK, 1000);
}

function asBytes(model) {
  if (model instanceof Uint8Array) return model;
  if (model instanceof ArrayBuffer) return new Uint8Array(model);
  if (ArrayBuffer.isView(model)) return new Uint8Array(model.buffer, model.byteOffset, model.byteLength);
  throw new TypeError('Classifier.fromBytes: model must be a Uint8Array, ArrayBuffer or typed array');
}

export class Classifier {
  #inner;
  #threads;

  /** @internal use Classifier.load() or Classifier.fromBytes(). */
  constructor(token, inner, threads) {
    if (token !== internal) throw new TypeError('use Classifier.load() or Classifier.fromBytes()');
    this.#inner = inner;
    this.#threads = threads;
  }

  /**
   * The model shipped in the package. `weights`: 'int8-compute' (default: int8 weights, integer arithmetic, the
   * fastest), 'int8' (int8 weights, f32 arithmetic: logits as onnxruntime's to 1e-4) or 'f32' (f32 weights, about
   * three times the memory). `threads` (Node only; default: every core up to 8): how many threads run inference, fixed
   * for the process by its first load.
   */
  static async load({ weights, threads } = {}) {
    // The model is read while the .wasm compiles; its manifest is the one the .wasm carries.
    const [wasm, bytes] = await Promise.all([ensureWasm({ threads: checkThreads(threads) }), readModel()]);
    return new Classifier(internal, wasm.glue.WasmClassifier.fromBytes(bytes, undefined, weights), wasm.threads);
  }

  /**
   * A model from its ONNX bytes and manifest (object or JSON text; when omitted, the manifest of the package's model,
   * which must then be the one given). A manifest that describes other weights than the model holds is refused.
   */
  static async fromBytes(modelBytes, manifest, { weights, threads } = {}) {
    const bytes = asBytes(modelBytes);
    const json = typeof manifest === 'string' || manifest === undefined ? manifest : JSON.stringify(manifest);
    const wasm = await ensureWasm({ threads: checkThreads(threads) });
    return new Classifier(internal, wasm.glue.WasmClassifier.fromBytes(bytes, json, weights), wasm.threads);
  }

  /** How many threads run inference (1 in browsers' main thread: use ClassifierWorker for more). */
  get threads() {
    return this.#threads;
  }

  /** Top-k classes of an image, best first: [{ index, label, wnid, score }]. */
  async classify(input, { topK = 5 } = {}) {
    const k = checkTopK(topK);
    const { data, width, height } = await toRgba(input);
    return this.#inner.classify(data, width, height, k);
  }

  /** Probabilities of all 1000 classes, in index order (Float32Array). */
  async scores(input) {
    const { data, width, height } = await toRgba(input);
    return this.#inner.scores(data, width, height);
  }

  /** Raw logits for an already preprocessed NCHW input (`info().input.shape`), e.g. to compare with other engines. */
  logits(tensor) {
    if (!(tensor instanceof Float32Array)) throw new TypeError('logits: expected a Float32Array');
    return this.#inner.logits(tensor);
  }

  /** The manifest: architecture, weights (source, sha256, synthetic), params, macs, preprocessing recipe. */
  info() {
    return JSON.parse(this.#inner.manifestJson());
  }

  /** Frees the model's memory now rather than at garbage collection. */
  dispose() {
    this.#inner.free();
  }
}

let defaultClassifier;

/** Classifies with the package's model, loaded on first use. */
export async function classify(input, options) {
  defaultClassifier ??= Classifier.load().catch((e) => {
    defaultClassifier = undefined;
    throw e;
  });
  return (await defaultClassifier).classify(input, options);
}
