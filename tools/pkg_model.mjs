// Puts the model beside the package's .wasm files, where js/model-files.js says: the model file of $WRN_MODEL_DIR or
// model/, as it is (build.rs compiled its manifest into the .wasm files, from the same folder; `info()` returns it,
// and its model_file keeps naming the file the package's copy was made from, whose model_sha256 it has).
import { copyFileSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { MODEL_URL } from '../js/model-files.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = resolve(root, process.env.WRN_MODEL_DIR ?? 'model');
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
copyFileSync(join(dir, manifest.model_file), join(root, 'pkg', basename(fileURLToPath(MODEL_URL))));
