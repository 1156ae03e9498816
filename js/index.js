// Browser and bundler entry: the .wasm sits beside this file and is fetched from there (bundlers rewrite the URL).
// One thread: a page's main thread may not wait for a pool (ClassifierWorker runs the threaded build).
import * as glue from './wrn_wasm.js';
import { setWasmLoader } from './classifier.js';

setWasmLoader(async () => {
  await glue.default({ module_or_path: new URL('./wrn_wasm_bg.wasm', import.meta.url) });
  return { glue, threads: 1 };
});

export { Classifier, classify } from './classifier.js';
export { toImageData, toRgba } from './inputs.js';
export { ClassifierWorker } from './client.js';
