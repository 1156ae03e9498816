// The classifier inside a module Web Worker, so the page's thread never blocks on the model.
// Protocol (all plain data): in  {id, type: 'load', threads?, wasmUrl?, weights?}
//                                | {id, type: 'classify', data: ArrayBuffer, width, height, topK}
//                            out {id, type: 'progress', stage, loaded?, total?} | {id, type: 'ready', info, loadMs, threads}
//                                | {id, type: 'result', top, ms} | {id, type: 'error', message}
import * as singleThread from './wrn_wasm.js';

let classifier;

/**
 * The module to run: the threaded build (pkg/threads/, shared memory + a rayon pool of Web Workers) when threads
 * are asked for, the page is cross-origin isolated and the build is there; else the single-threaded one.
 */
async function chooseBuild(threads) {
  if (threads > 1 && self.crossOriginIsolated) {
    // Resolved at run time against a variable, not `import.meta.url` itself, so that bundlers neither emit the
    // threaded files nor rewrite the import: the threaded build is for plain ES module hosting.
    const here = import.meta.url;
    try {
      const glue = await import(/* @vite-ignore */ new URL('./threads/wrn_wasm.js', here).href);
      return { glue, wasm: new URL('./threads/wrn_wasm_bg.wasm', here), threads };
    } catch {
      // Not shipped beside this file (a bundled app): one thread.
    }
  }
  return { glue: singleThread, wasm: new URL('./wrn_wasm_bg.wasm', import.meta.url), threads: 1 };
}

async function fetchWithProgress(url, report) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot fetch ${url}: HTTP ${response.status}`);
  const total = Number(response.headers.get('content-length')) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    report(loaded, Math.max(total, loaded));
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const c of chunks) {
    bytes.set(c, offset);
    offset += c.length;
  }
  return bytes;
}

async function load(id, { wasmUrl, threads = 1, weights }) {
  const t0 = performance.now();
  const progress = (stage, extra = {}) => postMessage({ id, type: 'progress', stage, ...extra });
  const build = await chooseBuild(threads);
  const bytes = await fetchWithProgress(wasmUrl ?? build.wasm, (loaded, total) => progress('fetch', { loaded, total }));
  progress('compile');
  await build.glue.default({ module_or_path: bytes });
  if (build.threads > 1) {
    await build.glue.initThreadPool(build.threads);
    build.glue.useThreads(build.threads);
  }
  progress('model');
  classifier = build.glue.WasmClassifier.loadEmbedded(weights);
  postMessage({ id, type: 'ready', info: JSON.parse(classifier.manifestJson()), loadMs: performance.now() - t0,
                threads: build.threads });
}

function classify(id, { data, width, height, topK }) {
  if (!classifier) throw new Error('the model is not loaded');
  const t0 = performance.now();
  const top = classifier.classify(new Uint8Array(data), width, height, topK);
  postMessage({ id, type: 'result', top, ms: performance.now() - t0 });
}

self.onmessage = async ({ data: msg }) => {
  try {
    if (msg.type === 'load') await load(msg.id, msg);
    else if (msg.type === 'classify') classify(msg.id, msg);
    else throw new Error(`unknown request ${msg.type}`);
  } catch (e) {
    postMessage({ id: msg.id, type: 'error', message: e?.message ?? String(e) });
  }
};
