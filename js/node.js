// Node entry: the .wasm and the model are read from the package folder. With threads, the threaded build (threads/)
// runs rayon's pool on worker_threads (rayon-workers.js); without that build, or where workers cannot start, one
// thread.
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';

import * as singleThreaded from './wrn_wasm.js';
import { setModelReader, setWasmLoader } from './classifier.js';
import { setFileDecoder } from './inputs.js';
import { MODEL_URL } from './model-files.js';

// Threads by default: every core, up to 8 (one image gains little from more, and each worker costs memory).
const DEFAULT_THREADS = Math.min(availableParallelism(), 8);

async function instantiate(glue, folder) {
  await glue.default({ module_or_path: await readFile(new URL('wrn_wasm_bg.wasm', folder)) });
  return glue;
}

async function threadedBuild(folder) {
  try {
    // Resolved at run time, not a literal: a bundler neither follows it nor breaks its workers' URLs (a bundled app
    // gets one thread, as in browsers).
    return await import(/* webpackIgnore: true */ /* @vite-ignore */ new URL('wrn_wasm.js', folder).href);
  } catch (e) {
    if (e?.code === 'ERR_MODULE_NOT_FOUND') return undefined; // a package built without it
    throw e;
  }
}

async function withThreads(threads) {
  const folder = new URL('./threads/', import.meta.url);
  const threaded = await threadedBuild(folder);
  if (!threaded) return undefined;
  const glue = await instantiate(threaded, folder);
  try {
    await glue.initThreadPool(threads);
  } catch (e) {
    // No workers here (e.g. a permission model without worker_threads): one thread, said once.
    process.emitWarning(`wrn-wasm: no thread pool (${e?.message ?? e}); running on one thread`);
    return undefined;
  }
  glue.useThreads(threads);
  return { glue, threads };
}

// One instantiation of the single-threaded build, for the classifier and the image decoder alike: wasm-bindgen's glue
// holds one instance, and two instantiations at once would each replace it under the other's objects.
let singleThreadedReady;
function singleThreadedGlue() {
  singleThreadedReady ??= instantiate(singleThreaded, new URL('./', import.meta.url)).catch((e) => {
    singleThreadedReady = undefined;
    throw e;
  });
  return singleThreadedReady;
}

setWasmLoader(async ({ threads = DEFAULT_THREADS } = {}) =>
  (threads > 1 && (await withThreads(threads))) || { glue: await singleThreadedGlue(), threads: 1 });

setModelReader(() => readFile(MODEL_URL));

// Image files: decoded by the single-threaded build's decoder (JPEG, PNG; the CLI's, EXIF orientation applied), so that
// decoding picks no thread count; with threads (the default) that is an instance of its own, and a large image's
// pixels do not grow the memory that holds the model (wasm memory never shrinks).
setFileDecoder(async (bytes) => (await singleThreadedGlue()).decodeImage(bytes));

export { Classifier, classify } from './classifier.js';
export { toRgba } from './inputs.js';
