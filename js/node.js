// Node entry: the .wasm is read from the package folder.
import { readFile } from 'node:fs/promises';

import init from './wrn_wasm.js';
import { setWasmLoader } from './classifier.js';

setWasmLoader(async () => init({ module_or_path: await readFile(new URL('./wrn_wasm_bg.wasm', import.meta.url)) }));

export { Classifier, classify } from './classifier.js';
export { toRgba } from './inputs.js';
