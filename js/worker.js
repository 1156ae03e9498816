// The classifier inside a module Web Worker, so the page's thread never blocks on the model.
// Protocol (all plain data): in  {id, type: 'load', threads?, wasmUrl?, modelUrl?, manifestUrl?, weights?}
//                                | {id, type: 'classify', data: ArrayBuffer, width, height, topK}
//                            out {id, type: 'progress', stage, loaded?, total?} | {id, type: 'ready', info, loadMs, threads}
//                                | {id, type: 'result', top, ms} | {id, type: 'error', message}
// The model is fetched from beside this file (model-files.js) unless modelUrl says where; its manifest is the one
// compiled into the .wasm unless manifestUrl says where another is.
import * as singleThread from './wrn_wasm.js';
import { MODEL_URL, fetchOk } from './model-files.js';

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

async function fetchWithProgress(url, signal, report) {
  const response = await fetchOk(url, signal);
  // Content-Length is the body's size unless it is encoded (the decoded body is then larger and grows the buffer):
  // the chunks are written into one buffer as they come, not gathered and copied again.
  const length = response.headers.get('content-encoding') ? 0 : Number(response.headers.get('content-length')) || 0;
  let bytes = new Uint8Array(length);
  let loaded = 0;
  for (const reader = response.body.getReader(); ;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > bytes.length) {
      const grown = new Uint8Array(Math.max(2 * bytes.length, loaded + value.length));
      grown.set(bytes.subarray(0, loaded));
      bytes = grown;
    }
    bytes.set(value, loaded);
    loaded += value.length;
    report(loaded, Math.max(length, loaded));
  }
  // Fewer bytes than announced: the connection ended early (more: an encoded body, decoded).
  if (loaded < length) throw new Error(`the download of ${url} stopped after ${loaded} of ${length} bytes`);
  return bytes.subarray(0, loaded);
}

async function load(id, { wasmUrl, modelUrl = MODEL_URL, manifestUrl, threads = 1, weights }) {
  const t0 = performance.now();
  const progress = (stage, extra = {}) => postMessage({ id, type: 'progress', stage, ...extra });
  const build = await chooseBuild(threads);
  // The .wasm is fetched and compiled (streaming) while the model downloads. Whichever fails first is reported at
  // once, and stops the download.
  const download = new AbortController();
  const stopDownloadOnError = (promise) => promise.catch((e) => {
    download.abort();
    throw e;
  });
  const compiled = stopDownloadOnError(build.glue.default({ module_or_path: wasmUrl ?? build.wasm }));
  // A manifest that is not JSON (a server's fallback page, say) stops the download too.
  const manifestText = manifestUrl && stopDownloadOnError(fetchOk(manifestUrl).then((r) => r.text()).then((text) => {
    try {
      JSON.parse(text);
    } catch (e) {
      throw new Error(`wrn-wasm: ${manifestUrl} is not a manifest.json: ${e.message}`);
    }
    return text;
  }));
  const model = fetchWithProgress(modelUrl, download.signal, (loaded, total) => progress('fetch', { loaded, total }))
    .then((bytes) => {
      progress('compile');
      return bytes;
    });
  const [bytes, manifest] = await Promise.all([model, manifestText, compiled]);
  if (build.threads > 1) {
    await build.glue.initThreadPool(build.threads);
    build.glue.useThreads(build.threads);
  }
  progress('model');
  classifier = build.glue.WasmClassifier.fromBytes(bytes, manifest, weights);
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
