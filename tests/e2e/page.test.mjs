// The demo page as a person uses it, in headless Chromium with a fake camera: camera snapshot, live mode, file,
// drop, paste, offline after the first visit, and no request leaving the page's origin. Screenshots of each state
// go to target/e2e-screenshots/.
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { serve } from '../../tools/serve.mjs';
import { assertSameTopK, nativeTopK, python, root, run, scratchDir } from '../node/helpers.mjs';
import { launch, openPage } from './browser.mjs';

const shots = join(root, 'target/e2e-screenshots');
const sample = (f) => join(root, 'www/samples', f);
let browser, server, context, page, log, requests, work, site;

async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** The page's top-5 as it shows it. */
async function shownTopK() {
  return page.$$eval('#top5 li', (lis) => lis.map((li) => ({ index: Number(li.dataset.index), score: Number(li.dataset.score) })));
}

/** Waits for the page to show a new result after `action`, and returns it. */
async function resultAfter(action) {
  const before = await page.evaluate(() => window.wrnStats.classified);
  await action();
  await page.waitForFunction((n) => window.wrnStats.classified > n, before, { timeout: 120_000 });
  assert.equal(await page.locator('#error').isHidden(), true, await page.locator('#error').textContent());
  return shownTopK();
}

/** Writes RGBA pixels grabbed in the page as a PNG (lossless) and returns the native CLI's top-5 for it. */
function nativeOnPixels({ width, height, data }, name) {
  const raw = join(work, `${name}.rgba`);
  writeFileSync(raw, Buffer.from(data));
  const png = join(work, `${name}.png`);
  run(python, ['-c', `import sys; from PIL import Image; Image.frombytes('RGBA', (${width}, ${height}), open(sys.argv[1], 'rb').read()).save(sys.argv[2])`, raw, png]);
  return nativeTopK([png])[0];
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  work = scratchDir('page');
  const y4m = join(work, 'camera.y4m');
  run(python, [join(root, 'tests/reference/make_y4m.py'), sample('chelsea.png'), y4m]);
  // A copy of the built page, so that a test can publish a "new build" of it.
  site = join(work, 'www');
  cpSync(join(root, 'www'), site, { recursive: true });
  server = await serve(site);
  browser = await launch(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    `--use-file-for-fake-video-capture=${y4m}`]);
  ({ context, page, log } = await openPage(browser, server.url, { context: { viewport: { width: 1000, height: 900 } } }));
  requests = [];
  context.on('request', (r) => requests.push({ url: r.url(), method: r.method() }));
  await context.grantPermissions(['camera'], { origin: server.url });
  await page.reload();
  await page.waitForSelector('#loading:not([hidden]), body[data-ready=true]');
  await shot('1-loading');
  await page.waitForSelector('body[data-ready=true]', { timeout: 180_000 });
  await shot('2-ready');
});

after(async () => {
  await browser?.close();
  server?.server.close();
});

function failWithLog(e) {
  throw new Error(`${e.message}\npage log:\n${log.join('\n')}`);
}

test('says which weights are in', async () => {
  const banner = await page.locator('#weights').textContent();
  const manifest = JSON.parse(readFileSync(join(root, 'model/manifest.json'), 'utf8'));
  if (manifest.weights.synthetic) assert.match(banner, /Synthetic weights.*mean nothing/);
  else assert.ok(banner.includes(manifest.weights.source));
  assert.match(await page.locator('#about').textContent(), new RegExp(manifest.weights.sha256.slice(0, 12)));
});

test('the page is cross-origin isolated and runs the threaded build on every core, when it is built', async () => {
  const { isolated, threads, cores } = await page.evaluate(() => ({
    isolated: crossOriginIsolated, threads: window.wrnStats.threads, cores: navigator.hardwareConcurrency }));
  assert.equal(isolated, true);
  const built = existsSync(join(site, 'pkg/threads/wrn_wasm_bg.wasm'));
  assert.equal(threads, built ? cores : 1);
});

// The RGBA pixels the page sees: the camera's current frame ({ video: true }) or an image file decoded by the
// browser ({ url }), read back through a canvas.
function pixelsInPage(source) {
  return page.evaluate(async ({ video, url }) => {
    const image = video
      ? document.getElementById('video')
      : await createImageBitmap(await (await fetch(url)).blob(), { imageOrientation: 'from-image', premultiplyAlpha: 'none' });
    const [width, height] = video ? [image.videoWidth, image.videoHeight] : [image.width, image.height];
    const ctx = new OffscreenCanvas(width, height).getContext('2d');
    ctx.drawImage(image, 0, 0);
    const d = ctx.getImageData(0, 0, width, height);
    return { width: d.width, height: d.height, data: Array.from(d.data) };
  }, source);
}

test('camera snapshot: the top-5 equals the native CLI on the same pixels (scores within 1e-3)', async () => {
  await page.click('#camera-start');
  await page.waitForFunction(() => document.getElementById('video').readyState >= 2, null, { timeout: 30_000 });
  await shot('3-camera');
  const top = await resultAfter(() => page.click('#snapshot')).catch(failWithLog);
  await shot('4-snapshot');
  // The fake camera repeats one frame: grab it to run the same pixels through the CLI.
  const frame = await pixelsInPage({ video: true });
  assert.deepEqual([frame.width, frame.height], [640, 480]);
  assertSameTopK(assert, top, nativeOnPixels(frame, 'camera').top, 1e-3, 'camera snapshot');
});

test('live mode keeps classifying the newest frame without a growing queue', async () => {
  const before = await page.evaluate(() => ({ ...window.wrnStats }));
  await page.check('#live');
  await page.waitForFunction((n) => window.wrnStats.classified >= n + 3, before.classified, { timeout: 120_000 });
  await shot('5-live');
  await page.uncheck('#live');
  await page.waitForFunction(() => window.wrnStats.pending === 0); // the last live frame's answer has come
  const s = await page.evaluate(() => ({ ...window.wrnStats }));
  assert.ok(s.maxPending <= 1, `up to ${s.maxPending} requests were queued`);
  assert.ok(s.dropped > before.dropped, 'frames arriving while the worker was busy were dropped, not queued');
  await page.click('#camera-stop');
});

test('file upload, drop and paste each classify, like the native CLI', async () => {
  const cases = [
    ['file', 'coffee.png', () => page.setInputFiles('#file', sample('coffee.png'))],
    ['drop', 'rocket.jpg', () => page.evaluate(async (url) => {
      const blob = await (await fetch(url)).blob();
      const dt = new DataTransfer();
      dt.items.add(new File([blob], 'rocket.jpg', { type: blob.type }));
      document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, 'samples/rocket.jpg')],
    ['paste', 'astronaut.png', () => page.evaluate(async (url) => {
      const blob = await (await fetch(url)).blob();
      const dt = new DataTransfer();
      dt.items.add(new File([blob], 'pasted.png', { type: blob.type }));
      document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true }));
    }, 'samples/astronaut.png')],
  ];
  for (const [how, file, action] of cases) {
    const top = await resultAfter(action).catch(failWithLog);
    await shot(`6-${how}`);
    // The browser decodes the file itself (for JPEG, its decoder is not the CLI's): compare on its pixels.
    const pixels = await pixelsInPage({ url: `samples/${file}` });
    assertSameTopK(assert, top, nativeOnPixels(pixels, how).top, 1e-3, how);
  }
});

test('a file that is not an image is an error shown in the page, and the page keeps working', async () => {
  const bogus = join(work, 'notes.txt');
  writeFileSync(bogus, 'not an image');
  await page.setInputFiles('#file', bogus);
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.locator('#error').textContent(), /not an image/);
  await shot('7-error');
  const top = await resultAfter(() => page.click('#samples button:first-child'));
  assert.equal(top.length, 5);
});

test('offline: with the network blocked, a reload still classifies', async () => {
  await page.evaluate(() => navigator.serviceWorker.ready);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 60_000 })
    .catch(() => page.reload().then(() => page.waitForFunction(() => navigator.serviceWorker.controller !== null)));
  await context.setOffline(true);
  await page.reload();
  await page.waitForSelector('body[data-ready=true]', { timeout: 180_000 }).catch(failWithLog);
  const top = await resultAfter(() => page.click('#samples button:nth-child(2)')).catch(failWithLog);
  assert.equal(top.length, 5);
  await shot('8-offline');
  await context.setOffline(false);
});

let builtFiles;
/** Publishes a new build of the copy the server serves: precache.js with another version and file list. */
function publish(version, extraFiles = []) {
  if (!builtFiles) {
    const text = readFileSync(join(site, 'precache.js'), 'utf8');
    builtFiles = JSON.parse(text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1)).files;
  }
  writeFileSync(join(site, 'precache.js'), `self.PRECACHE = ${JSON.stringify({ version, files: [...builtFiles, ...extraFiles] })};\n`);
  return builtFiles.length + extraFiles.length;
}

const cacheNames = () => page.evaluate(() => caches.keys());

test('a new build is cached whole before it takes over, then replaces the old cache; a broken one never does', async () => {
  const [old] = await cacheNames();
  assert.match(old, /^wrn-wasm-/);
  // A build whose files cannot all be fetched never installs: the old one keeps serving, offline too.
  publish('broken-build', ['missing-file.js']);
  const state = await page.evaluate(async () => {
    const r = await navigator.serviceWorker.getRegistration();
    await r.update();
    const w = r.installing ?? r.waiting;
    if (w && w.state !== 'redundant') await new Promise((ok) => w.addEventListener('statechange', () => w.state === 'redundant' && ok()));
    return { waiting: r.waiting !== null, active: r.active?.state };
  });
  assert.deepEqual(state, { waiting: false, active: 'activated' }, 'the broken build did not install');
  assert.ok((await cacheNames()).includes(old));
  assert.equal(await page.locator('#error button').count(), 0, 'no update offered for a broken build');

  // A good new build: a changed stylesheet, a new version.
  appendFileSync(join(site, 'style.css'), '\n/* new build */\n');
  const files = publish('new-build');
  await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r.update()));
  await page.waitForSelector('#error button', { timeout: 120_000 }).catch(failWithLog);
  assert.match(await page.locator('#error').textContent(), /new version/);
  await shot('9-update-offered');
  // Before it takes over, the new build is complete in its own cache and the old one is untouched.
  const cached = await page.evaluate(async () => (await (await caches.open('wrn-wasm-new-build')).keys()).length);
  assert.equal(cached, files);
  assert.ok((await cacheNames()).includes(old));
  assert.doesNotMatch(await page.evaluate(() => fetch('style.css').then((r) => r.text())), /new build/);

  await Promise.all([page.waitForEvent('load', { timeout: 120_000 }), page.click('#error button')]);
  await page.waitForSelector('body[data-ready=true]', { timeout: 180_000 }).catch(failWithLog);
  assert.deepEqual((await cacheNames()).filter((k) => k.startsWith('wrn-wasm-')), ['wrn-wasm-new-build']);
  assert.match(await page.evaluate(() => fetch('style.css').then((r) => r.text())), /new build/);
  const top = await resultAfter(() => page.click('#samples button:nth-child(3)'));
  assert.equal(top.length, 5);
});

test('usable on a phone-sized screen: nothing wider than the screen', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen`);
  await shot('10-phone');
  await page.setViewportSize({ width: 1000, height: 900 });
});

test('keyboard: every control can be reached with Tab and shows where focus is', async () => {
  const reached = [];
  await page.click('h1'); // sequential focus navigation starts from the top of the page
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press('Tab');
    const f = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      // A visually hidden file input shows its focus on its label, the visible button.
      const shown = el.id === 'file' ? document.querySelector('label[for=file]') : el;
      const style = getComputedStyle(shown);
      return { id: el.id || el.title || el.tagName, outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0 };
    });
    if (!f || reached.includes(f.id)) break;
    reached.push(f.id);
    assert.ok(f.outline, `${f.id} shows no focus outline`);
  }
  for (const id of ['camera-start', 'file']) assert.ok(reached.includes(id), `${id} is not reachable with Tab: ${reached}`);
  assert.ok(reached.filter((id) => id.startsWith('Classify')).length >= 4, 'sample buttons are reachable');
});

test('the page requests nothing outside its origin and sends no image anywhere', () => {
  const origin = new URL(server.url).origin;
  const foreign = requests.filter((r) => !r.url.startsWith(origin) && !/^(data|blob):/.test(r.url));
  assert.deepEqual(foreign, []);
  assert.deepEqual(requests.filter((r) => r.method !== 'GET'), [], 'only GETs: nothing is uploaded');
  assert.ok(requests.length > 5);
});
