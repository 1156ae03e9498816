// Shared by the package tests: the packed tarball installed into a fresh project, reference pixels, the native CLI.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const python = process.env.WRN_PYTHON ?? join(root, '.venv/bin/python');
export const samples = ['chelsea.png', 'coffee.png', 'rocket.jpg'].map((f) => join(root, 'www/samples', f));

/**
 * A new folder under the system's temporary one, removed when this test process exits, pass or fail: an installed
 * package with its model is ~300 MB, and CI machines share their disk.
 */
export function scratchDir(name) {
  const dir = mkdtempSync(join(tmpdir(), `wrn-${name}-`));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs a command; on failure the error says what it printed. */
export function run(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** `npm pack pkg/` and install the tarball into a new empty project; returns the project folder. */
export function installPackedTarball(name, extraPackageJson = {}) {
  if (!existsSync(join(root, 'pkg/package.json'))) throw new Error('no pkg/: run tools/build-pkg first');
  const dir = scratchDir(name);
  const packed = JSON.parse(run('npm', ['pack', join(root, 'pkg'), '--json', '--pack-destination', dir]));
  const tarball = join(dir, packed[0].filename);
  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module', ...extraPackageJson }));
  run('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], { cwd: app });
  return { app, tarball };
}

/** Imports the package as the project at `app` resolves it. */
export async function importFrom(app) {
  const resolved = createRequire(join(app, 'package.json')).resolve('wrn-wasm');
  return import(pathToFileURL(resolved).href);
}

/** Pillow-decoded pixels of image files (by default the sample photos): [{ name, rgba, width, height, png }]. */
export function referencePixels(files = samples) {
  const out = scratchDir('pixels');
  run(python, [join(root, 'tests/reference/decode_rgba.py'), out, ...files]);
  return files.map((s) => {
    const name = s.split('/').pop().replace(/\.\w+$/, '');
    const { width, height } = JSON.parse(readFileSync(join(out, `${name}.json`), 'utf8'));
    return { name, width, height, rgba: new Uint8Array(readFileSync(join(out, `${name}.rgba`))), png: join(out, `${name}.png`) };
  });
}

/** The native CLI's top-k for files: [{ image, top: [{index, score, ...}] }]. */
export function nativeTopK(files, k = 1000) {
  const cli = process.env.WRN_CLI ?? join(root, 'target/debug/wrn-classify');
  if (!existsSync(cli)) throw new Error(`no native CLI at ${cli}: cargo build --bin wrn-classify`);
  return run(cli, ['--json', '--top', String(k), ...files]).trim().split('\n').map((l) => JSON.parse(l));
}

/**
 * Asserts that `got` (a top-k) is the top-k of `want` (a longer ranking, ideally all 1000 classes): each class's
 * score within `tol` of the reference's score for that class, and no class missing that ranks clearly higher.
 * Classes whose scores tie within `tol` may come in either order, as two correct implementations may order them.
 */
export function assertSameTopK(assert, got, want, tol, what) {
  const reference = new Map(want.map((p) => [p.index, p.score]));
  assert.ok(got.length > 0 && want.length >= got.length, `${what}: ${got.length} results vs ${want.length} reference`);
  got.forEach((p, i) => {
    assert.ok(reference.has(p.index), `${what}: rank ${i + 1} is class ${p.index}, not in the reference's top ${want.length}`);
    const r = reference.get(p.index);
    assert.ok(Math.abs(p.score - r) <= tol, `${what}: class ${p.index} scores ${p.score}, reference ${r}`);
  });
  const kth = want[got.length - 1].score;
  const lowest = Math.min(...got.map((p) => p.score));
  assert.ok(lowest >= kth - tol, `${what}: a class scoring ${kth} in the reference is missing from the top ${got.length}`);
  for (let i = 1; i < got.length; i++) assert.ok(got[i].score <= got[i - 1].score, `${what}: not sorted`);
}
