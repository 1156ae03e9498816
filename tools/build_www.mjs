// Assembles the demo page: copies the package's browser files into www/pkg/ and writes www/precache.js, the list of
// every file the service worker caches, with a version hashed from their contents (a new build = a new cache).
// When the package has its threaded build, the page uses it (served cross-origin isolated), so that is the .wasm
// precached; the single-threaded one is still there for a host without isolation, cached when first fetched.
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { MODEL_URL } from '../js/model-files.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const www = join(root, 'www');
const PKG_FILES = ['index.js', 'classifier.js', 'inputs.js', 'client.js', 'worker.js', 'model-files.js', 'wrn_wasm.js',
  'wrn_wasm_bg.wasm', basename(fileURLToPath(MODEL_URL))];

rmSync(join(www, 'pkg'), { recursive: true, force: true });
mkdirSync(join(www, 'pkg'));
for (const f of PKG_FILES) copyFileSync(join(root, 'pkg', f), join(www, 'pkg', f));
const threaded = existsSync(join(root, 'pkg/threads/wrn_wasm_bg.wasm'));
if (threaded) cpSync(join(root, 'pkg/threads'), join(www, 'pkg/threads'), { recursive: true, filter: (p) => !p.endsWith('.built-from') });

const walk = (dir) => readdirSync(dir, { withFileTypes: true })
  .flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
const files = [
  'index.html', 'app.js', 'style.css',
  ...readdirSync(join(www, 'samples')).filter((f) => /\.(png|jpe?g)$/.test(f)).sort().map((f) => `samples/${f}`),
  ...PKG_FILES.filter((f) => !(threaded && f === 'wrn_wasm_bg.wasm')).map((f) => `pkg/${f}`),
  ...(threaded ? walk(join(www, 'pkg/threads')).map((p) => relative(www, p)).sort() : []),
];
const hash = createHash('sha256');
for (const f of files) hash.update(f).update(readFileSync(join(www, f)));
const version = hash.digest('hex').slice(0, 16);
writeFileSync(join(www, 'precache.js'),
  `// Written by tools/build_www.mjs: what the service worker caches for this build.\n` +
  `self.PRECACHE = ${JSON.stringify({ version, files: ['./', ...files] }, null, 2)};\n`);
console.error(`build_www: www/ ready (${threaded ? 'threaded' : 'single-threaded'}), ${files.length} files precached, version ${version}`);
