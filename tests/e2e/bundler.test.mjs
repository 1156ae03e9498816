// A Vite app that imports the packed package builds, and classifies in headless Chromium: directly (raw pixels,
// Blob, <img>) and through the package's worker (progress, order, abort, a responsive main thread).
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { serve } from '../../tools/serve.mjs';
import { assertSameTopK, installPackedTarball, nativeTopK, referencePixels, root, run } from '../node/helpers.mjs';
import { launch, openPage } from './browser.mjs';

const MAIN_JS = `
import { classify, Classifier, ClassifierWorker } from 'wrn-wasm';

async function pixels(name) {
  const { width, height } = await (await fetch('/' + name + '.json')).json();
  const data = new Uint8Array(await (await fetch('/' + name + '.rgba')).arrayBuffer());
  return { data, width, height };
}

window.runDirect = async (names) => {
  const out = [];
  for (const n of names) out.push(await classify(await pixels(n)));
  const blob = await (await fetch('/' + names[0] + '.png')).blob();
  const fromBlob = await classify(blob);
  const fromFileBytes = await classify(new Uint8Array(await blob.arrayBuffer()));
  const img = new Image();
  img.src = '/' + names[0] + '.png';
  const fromImg = await classify(img);
  const c = await Classifier.load();
  let error;
  try { await c.classify({ data: new Uint8Array(3), width: 1, height: 1 }); } catch (e) { error = e instanceof Error && e.message; }
  const after = await c.classify(await pixels(names[0]));
  return { out, fromBlob, fromFileBytes, fromImg, error, after, info: c.info() };
};

window.runWorker = async (name) => {
  const sent = [];
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (msg, transfer) { sent.push(msg.type); return post.call(this, msg, transfer); };
  const progress = [];
  const worker = new ClassifierWorker({ onProgress: (p) => progress.push(p) });
  const { info, loadMs, threads } = await worker.ready();
  const px = await pixels(name);
  const order = [];
  const controller = new AbortController();
  let maxGap = 0, last = performance.now();
  const ticker = setInterval(() => { const now = performance.now(); maxGap = Math.max(maxGap, now - last); last = now; }, 10);
  const t0 = performance.now();
  const a = worker.classify(px).then((r) => { order.push('a'); return r; });
  const b = worker.classify(px, { signal: controller.signal }).then(() => 'ran', (e) => { order.push('b:' + e.name); return e.name; });
  const c = worker.classify(px, { topK: 3 }).then((r) => { order.push('c'); return r; });
  const pendingWhileQueued = worker.pending;
  controller.abort();
  const [ra, rb, rc] = await Promise.all([a, b, c]);
  const elapsed = performance.now() - t0;
  clearInterval(ticker);
  return { sent, progress, info, loadMs, threads, order, ra: [...ra], msA: ra.ms, rb, rc: [...rc], pendingWhileQueued,
           pendingAfter: worker.pending, maxGap, elapsed };
};
// A worker on a model served elsewhere (modelUrl: the package's model under another name, its manifest from the .wasm),
// then on that model with a manifest of other weights (manifestUrl), which it must refuse.
window.runWorkerFrom = async (name) => {
  const run = async (options) => {
    const worker = new ClassifierWorker(options);
    try {
      const { info } = await worker.ready();
      return { info, top: [...await worker.classify(await pixels(name))] };
    } catch (e) {
      return { error: e.message };
    } finally {
      worker.terminate();
    }
  };
  // Relative URLs: the page's, not the worker's (which Vite puts in assets/).
  return [await run({ modelUrl: 'elsewhere/copy.onnx' }),
          await run({ modelUrl: 'elsewhere/copy.onnx', manifestUrl: 'elsewhere/other-weights.json' })];
};
window.appReady = true;
`;

let browser, server, page, log, pixels, native, dist;

before(async () => {
  const { app } = installPackedTarball('vite');
  writeFileSync(join(app, 'index.html'), '<!doctype html><title>vite consumer</title><script type="module" src="/main.js"></script>');
  writeFileSync(join(app, 'main.js'), MAIN_JS);
  writeFileSync(join(app, 'vite.config.js'), "export default { worker: { format: 'es' }, logLevel: 'warn' };");
  pixels = referencePixels();
  mkdirSync(join(app, 'public'));
  for (const p of pixels) {
    writeFileSync(join(app, 'public', `${p.name}.rgba`), p.rgba);
    writeFileSync(join(app, 'public', `${p.name}.json`), JSON.stringify({ width: p.width, height: p.height }));
    copyFileSync(p.png, join(app, 'public', `${p.name}.png`));
  }
  const manifest = JSON.parse(readFileSync(join(root, 'model/manifest.json'), 'utf8'));
  mkdirSync(join(app, 'public/elsewhere'));
  copyFileSync(join(root, 'model', manifest.model_file), join(app, 'public/elsewhere/copy.onnx'));
  const otherWeights = { ...manifest.weights, source: 'file:other.safetensors', sha256: 'cd'.repeat(32), synthetic: false };
  writeFileSync(join(app, 'public/elsewhere/other-weights.json'), JSON.stringify({ ...manifest, weights: otherWeights }));
  run('node', [join(root, 'node_modules/vite/bin/vite.js'), 'build'], { cwd: app });
  dist = join(app, 'dist');
  native = nativeTopK(pixels.map((p) => p.png));
  server = await serve(join(app, 'dist'));
  browser = await launch();
  ({ page, log } = await openPage(browser, server.url));
  await page.waitForFunction(() => window.appReady === true);
});

after(async () => {
  await browser?.close();
  server?.server.close();
});

test('the bundled page classifies like the native CLI (scores within 1e-4)', async () => {
  const r = await page.evaluate((names) => window.runDirect(names), pixels.map((p) => p.name)).catch((e) => {
    throw new Error(`${e.message}\n${log.join('\n')}`);
  });
  r.out.forEach((top, i) => assertSameTopK(assert, top, native[i].top, 1e-4, pixels[i].name));
  // The browser's own PNG decoder gives the same pixels (PNG is lossless), through a Blob, the file's bytes and an <img>.
  assertSameTopK(assert, r.fromBlob, native[0].top, 1e-4, 'Blob');
  assertSameTopK(assert, r.fromFileBytes, native[0].top, 1e-4, 'the file\'s bytes');
  assertSameTopK(assert, r.fromImg, native[0].top, 1e-4, '<img>');
  assert.match(r.error, /RGBA needs/);
  assert.deepEqual(r.after, r.out[0]);
  assert.equal(r.info.weights.source, native[0].weights);
});

test('the worker loads with progress, runs requests in order, aborts a queued one, never blocks the page', async () => {
  const r = await page.evaluate((name) => window.runWorker(name), pixels[0].name).catch((e) => {
    throw new Error(`${e.message}\n${log.join('\n')}`);
  });
  const stages = [...new Set(r.progress.map((p) => p.stage))];
  assert.deepEqual(stages, ['fetch', 'compile', 'model']);
  const fetches = r.progress.filter((p) => p.stage === 'fetch');
  // The download counted is the model's, which Vite emitted beside the .wasm.
  const manifest = JSON.parse(readFileSync(join(root, 'model/manifest.json'), 'utf8'));
  const modelBytes = statSync(join(root, 'model', manifest.model_file)).size;
  assert.deepEqual([fetches.at(-1).loaded, fetches.at(-1).total], [modelBytes, modelBytes], 'the whole model counted');
  assert.ok(r.loadMs > 0);
  assert.equal(r.threads, 1, 'a bundled app gets the single-threaded build (the threaded one is for plain ESM hosting)');
  assert.equal(r.info.params, 68_883_240);
  assert.deepEqual(r.order, ['b:AbortError', 'a', 'c']);
  assert.equal(r.rb, 'AbortError');
  assert.deepEqual(r.sent.filter((t) => t === 'classify').length, 2, 'the aborted request never reached the worker');
  assert.equal(r.pendingWhileQueued, 3);
  assert.equal(r.pendingAfter, 0);
  assertSameTopK(assert, r.ra, native[0].top, 1e-4, 'worker');
  assert.deepEqual(r.rc, r.ra.slice(0, 3));
  assert.ok(r.msA > 0);
  // The main thread kept ticking while two inferences ran in the worker.
  assert.ok(r.maxGap < r.elapsed / 4, `main thread blocked for ${r.maxGap} ms of ${r.elapsed} ms`);
});

test('the worker loads a model from modelUrl, and refuses a manifestUrl that describes other weights', async () => {
  const requested = [];
  const record = (r) => requested.push(new URL(r.url()).pathname);
  page.context().on('request', record);
  const [copy, mismatched] = await page.evaluate((name) => window.runWorkerFrom(name), pixels[0].name).catch((e) => {
    throw new Error(`${e.message}\n${log.join('\n')}`);
  }).finally(() => page.context().off('request', record));
  const manifest = JSON.parse(readFileSync(join(root, 'model/manifest.json'), 'utf8'));
  assert.equal(copy.error, undefined);
  assert.deepEqual(copy.info, manifest);
  assertSameTopK(assert, copy.top, native[0].top, 1e-4, 'modelUrl');
  assert.ok(mismatched.error.includes(`invalid manifest: the model holds the weights ${manifest.weights.source} (`),
    mismatched.error);
  assert.match(mismatched.error, /but the manifest describes file:other\.safetensors/);
  // Both workers fetched the model from where modelUrl says, relative to the page, and never the bundled one.
  assert.deepEqual(requested.filter((p) => p.endsWith('.onnx') || p.startsWith('/elsewhere/')).sort(),
    ['/elsewhere/copy.onnx', '/elsewhere/copy.onnx', '/elsewhere/other-weights.json']);
});

test('the build inlines no data: URL for the page to fetch (a Content-Security-Policy may forbid them)', () => {
  const scripts = readdirSync(join(dist, 'assets')).filter((f) => f.endsWith('.js'));
  assert.ok(scripts.length > 0);
  for (const f of scripts) {
    const inlined = readFileSync(join(dist, 'assets', f), 'utf8').match(/["'`]data:[\w/+.-]+[;,]/g) ?? [];
    assert.deepEqual(inlined, [], `${f} inlines an asset`);
  }
});
