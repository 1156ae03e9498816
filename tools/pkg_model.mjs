// Puts the model beside the package's .wasm files, where js/model-files.js says: the model file of $WRN_MODEL_DIR or
// model/ (as build.rs finds the one the crate embeds natively) and its manifest, as they are (`info()` returns the
// manifest; its model_file keeps naming the file the package's copy was made from, whose model_sha256 it has).
import { copyFileSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { MANIFEST_URL, MODEL_URL } from '../js/model-files.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = resolve(root, process.env.WRN_MODEL_DIR ?? 'model');
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
copyFileSync(join(dir, manifest.model_file), join(root, 'pkg', basename(fileURLToPath(MODEL_URL))));
copyFileSync(join(dir, 'manifest.json'), join(root, 'pkg', basename(fileURLToPath(MANIFEST_URL))));
