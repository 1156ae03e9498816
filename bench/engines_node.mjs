// wrn-wasm (pkg/) and onnxruntime-web (wasm backend) in Node, opened the same way for bench/wasm_node.mjs (one engine
// per process) and bench/duel_node.mjs (both, inferences interleaved). Both engines get the file's bytes, read before
// the clock starts; wrn-wasm loads them with fromBytes, as its package loads the model it ships.
// Each returns { loadMs, run: async () => logits, wasmMb: () => MB or null }; load = instantiating the engine's
// .wasm + building the session from the model bytes.
import { readFileSync } from 'node:fs';

const root = new URL('../', import.meta.url);

export async function openWrn({ modelBytes, input, threads, weights }) {
  // More than one thread: the threaded build, its rayon pool on worker_threads (as the package's node.js does).
  const build = new URL(threads > 1 ? 'pkg/threads/' : 'pkg/', root);
  const { default: init, WasmClassifier, initThreadPool, useThreads } = await import(new URL('wrn_wasm.js', build));
  const wasmBytes = readFileSync(new URL('wrn_wasm_bg.wasm', build));
  const manifest = readFileSync(new URL('model/manifest.json', root), 'utf8');
  const t0 = performance.now();
  const exports = await init({ module_or_path: wasmBytes });
  if (threads > 1) {
    await initThreadPool(threads);
    useThreads(threads);
  }
  const classifier = WasmClassifier.fromBytes(modelBytes, manifest, weights);
  const loadMs = performance.now() - t0;
  return { loadMs, run: async () => classifier.logits(input), wasmMb: () => exports.memory.buffer.byteLength / 1e6 };
}

export async function openOrtweb({ modelBytes, input, threads }) {
  const ort = await import('onnxruntime-web');
  // Once per process: onnxruntime-web starts its wasm (and its thread pool) with the first session.
  ort.env.wasm.numThreads = threads;
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(modelBytes, { executionProviders: ['wasm'] });
  const loadMs = performance.now() - t0;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, [1, 3, 224, 224]) };
  const run = async () => (await session.run(feeds))[session.outputNames[0]].data;
  return { loadMs, run, wasmMb: () => null };
}

export const readInput = (path) => new Float32Array(new Uint8Array(readFileSync(path)).buffer);
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The milliseconds one call of `run` takes. */
export async function timed(run) {
  const t = performance.now();
  await run();
  return performance.now() - t;
}
