// Browser and bundler entry: the .wasm and the model sit beside this file and are fetched from there (bundlers
// rewrite the URLs). One thread: a page's main thread may not wait for a pool (ClassifierWorker runs the threaded
// build).
import * as glue from './wrn_wasm.js';
import { setModelReader, setWasmLoader } from './classifier.js';
import { MODEL_URL, fetchOk } from './model-files.js';

setWasmLoader(async () => {
  await glue.default({ module_or_path: new URL('./wrn_wasm_bg.wasm', import.meta.url) });
  return { glue, threads: 1 };
});

setModelReader(async () => new Uint8Array(await (await fetchOk(MODEL_URL)).arrayBuffer()));

export { Classifier, classify } from './classifier.js';
export { toImageData, toRgba } from './inputs.js';
export { ClassifierWorker } from './client.js';
