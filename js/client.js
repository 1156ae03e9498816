// The worker bridge: the classifier in a Web Worker behind a promise API.
// Requests run one at a time, in order; an AbortSignal cancels a request still queued (or drops the answer of one
// already running); loading reports progress. Only pixels (a transferred ArrayBuffer) and numbers cross.
import { toRgba } from './inputs.js';

const abortError = (signal) => signal.reason ?? new DOMException('This request was aborted', 'AbortError');

/**
 * A URL option as the worker gets it: absolute, as the page means it (relative to its base URI, as its own fetch()
 * would take it, not to worker.js). Unset, null or '': undefined (the worker's default).
 */
function absoluteUrl(url) {
  if (url == null || url === '') return undefined;
  try {
    return new URL(url, globalThis.document?.baseURI ?? globalThis.location?.href).href;
  } catch {
    return String(url); // no base here (Node, Deno): the worker resolves it, or says it cannot
  }
}

export class ClassifierWorker {
  #worker;
  #calls = new Map();
  #nextId = 1;
  #tail = Promise.resolve();
  #pending = 0;
  #ready;

  /**
   * Starts the worker and loads the model. `onProgress({stage, loaded, total})` sees 'fetch' (bytes of the model,
   * while the .wasm compiles), 'compile', 'model' (building the network), then `ready()` resolves with
   * { info, loadMs, threads }.
   * `threads` (default: every core) takes effect where the page is cross-origin isolated and the threaded build is
   * served beside worker.js; elsewhere the worker runs on one thread. `weights`: 'int8-compute' (default), 'int8' or
   * 'f32', as for Classifier.load. `modelUrl` and `manifestUrl`: where the model and its manifest.json are, when not
   * the package's (the manifest must describe the weights the model holds). Relative URLs are the page's.
   */
  constructor({
    onProgress, worker, wasmUrl, modelUrl, manifestUrl, weights,
    threads = globalThis.navigator?.hardwareConcurrency ?? 1,
  } = {}) {
    const urls = {
      wasmUrl: absoluteUrl(wasmUrl), modelUrl: absoluteUrl(modelUrl), manifestUrl: absoluteUrl(manifestUrl),
    };
    this.#worker = worker ?? new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.#worker.onmessage = ({ data }) => this.#receive(data);
    this.#worker.onerror = (e) => this.#failAll(new Error(`wrn-wasm worker failed: ${e.message ?? 'unknown error'}`));
    this.#ready = this.#call({ type: 'load', ...urls, threads, weights }, [], onProgress);
    this.#ready.catch(() => {}); // reported through ready() and every classify()
  }

  /** Resolves with { info, loadMs, threads } once the model is loaded. */
  ready() {
    return this.#ready;
  }

  /** Requests queued or running: a live camera loop can skip frames while this is not 0. */
  get pending() {
    return this.#pending;
  }

  /** Top-k classes of an image, best first. The pixels are taken now; the request runs after those before it. */
  classify(input, { topK = 5, signal } = {}) {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (!Number.isInteger(topK) || topK < 1) return Promise.reject(new RangeError(`topK must be a positive integer, got ${topK}`));
    const pixels = toRgba(input);
    pixels.catch(() => {});
    this.#pending++;
    const job = this.#tail.then(async () => {
      await this.#ready;
      if (signal?.aborted) throw abortError(signal);
      const { data, width, height } = await pixels;
      const copy = new Uint8Array(data); // the caller keeps its buffer; the copy is transferred, not cloned
      return this.#call({ type: 'classify', data: copy.buffer, width, height, topK }, [copy.buffer]);
    });
    const settled = job.then(() => {}, () => {}).finally(() => this.#pending--);
    this.#tail = settled; // the queue moves on whatever happened
    if (!signal) return job.then(({ top, ms }) => Object.assign(top, { ms }));
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      job.then(({ top, ms }) => resolve(Object.assign(top, { ms })), reject)
        .finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Stops the worker; pending requests are rejected. */
  terminate() {
    this.#worker.terminate();
    this.#failAll(new Error('wrn-wasm worker terminated'));
  }

  #call(message, transfer, onProgress) {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#calls.set(id, { resolve, reject, onProgress });
      this.#worker.postMessage({ ...message, id }, transfer);
    });
  }

  #receive(msg) {
    const call = this.#calls.get(msg.id);
    if (!call) return;
    if (msg.type === 'progress') {
      call.onProgress?.({ stage: msg.stage, loaded: msg.loaded, total: msg.total });
      return;
    }
    this.#calls.delete(msg.id);
    if (msg.type === 'error') call.reject(new Error(msg.message));
    else if (msg.type === 'ready') call.resolve({ info: msg.info, loadMs: msg.loadMs, threads: msg.threads });
    else call.resolve({ top: msg.top, ms: msg.ms });
  }

  #failAll(error) {
    for (const call of this.#calls.values()) call.reject(error);
    this.#calls.clear();
  }
}
