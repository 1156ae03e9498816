// Browser and bundler entry: the .wasm sits beside this file and is fetched from there (bundlers rewrite the URL).
import init from './wrn_wasm.js';
import { setWasmLoader } from './classifier.js';

setWasmLoader(() => init({ module_or_path: new URL('./wrn_wasm_bg.wasm', import.meta.url) }));

export { Classifier, classify } from './classifier.js';
export { toImageData, toRgba } from './inputs.js';
export { ClassifierWorker } from './client.js';
