// Node entry: the .wasm is read from the package folder. With threads, the threaded build (threads/) runs rayon's
// pool on worker_threads (rayon-workers.js); without that build in the package, one thread.
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';

import * as singleThreaded from './wrn_wasm.js';
import { setWasmLoader } from './classifier.js';

async function instantiate(glue, folder) {
  await glue.default({ module_or_path: await readFile(new URL('wrn_wasm_bg.wasm', folder)) });
  return glue;
}

async function threadedBuild() {
  try {
    return await import('./threads/wrn_wasm.js');
  } catch (e) {
    if (e?.code === 'ERR_MODULE_NOT_FOUND') return undefined; // a package built without it
    throw e;
  }
}

setWasmLoader(async ({ threads = availableParallelism() } = {}) => {
  const threaded = threads > 1 ? await threadedBuild() : undefined;
  if (!threaded) return { glue: await instantiate(singleThreaded, new URL('./', import.meta.url)), threads: 1 };
  const glue = await instantiate(threaded, new URL('./threads/', import.meta.url));
  await glue.initThreadPool(threads);
  glue.useThreads(threads);
  return { glue, threads };
});

export { Classifier, classify } from './classifier.js';
export { toRgba } from './inputs.js';
