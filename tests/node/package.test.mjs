// The npm package as a Node user gets it: the packed tarball installed into an empty project, no flags.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { assertSameTopK, importFrom, installPackedTarball, nativeTopK, python, referencePixels, root, run, samples, scratchDir } from './helpers.mjs';

let app;
let tarball;
let pkg;
let pixels;
let shared; // each load builds a ~300 MB model in wasm memory: the tests share one and dispose the others

before(async () => {
  ({ app, tarball } = installPackedTarball('node'));
  pkg = await importFrom(app);
  pixels = referencePixels();
  shared = await pkg.Classifier.load();
});

describe('wrn-wasm in Node', () => {
  test('a consumer script classifies real photos like the native CLI (scores within 1e-4)', () => {
    const script = `
      import { readFileSync } from 'node:fs';
      import { classify, Classifier } from 'wrn-wasm';
      const inputs = JSON.parse(process.argv[2]);
      const out = [];
      for (const { rgba, width, height } of inputs) {
        out.push(await classify({ data: new Uint8Array(readFileSync(rgba)), width, height }));
      }
      const info = (await Classifier.load()).info();
      console.log(JSON.stringify({ out, info }));`;
    writeFileSync(join(app, 'consume.mjs'), script);
    const inputs = pixels.map((p) => {
      const file = join(app, `${p.name}.rgba`);
      writeFileSync(file, p.rgba);
      return { rgba: file, width: p.width, height: p.height };
    });
    const { out, info } = JSON.parse(run('node', ['consume.mjs', JSON.stringify(inputs)], { cwd: app }));
    const native = nativeTopK(pixels.map((p) => p.png));
    out.forEach((top, i) => assertSameTopK(assert, top, native[i].top, 1e-4, pixels[i].name));
    assert.equal(info.weights.source, native[0].weights);
    assert.equal(info.params, 68_883_240);
    for (const p of out[0]) assert.deepEqual(Object.keys(p).sort(), ['index', 'label', 'score', 'wnid']);
  });

  test('threads: the threaded build on worker_threads gives the logits of one thread, and the script still ends by itself', async () => {
    // No process.exit: the pool's workers must not keep Node alive once the script is done.
    const script = `
      import { readdirSync, readFileSync } from 'node:fs';
      import { Classifier } from 'wrn-wasm';
      const c = await Classifier.load({ threads: Number(process.argv[2]) });
      const x = new Float32Array(3 * 224 * 224).map((_, i) => Math.sin(i / 97));
      const logits = Array.from(c.logits(x));
      // CPU time of each of the process's threads (Linux: utime + stime, in clock ticks), before and after a few
      // inferences: how many threads did a share of the work, whatever else runs on the machine.
      const cpuTicks = () => new Map(readdirSync('/proc/self/task').flatMap((tid) => {
        let stat;
        try {
          stat = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
        } catch {
          return []; // a thread that ended meanwhile
        }
        const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' '); // after the name, which may hold ') '
        return [[tid, Number(fields[11]) + Number(fields[12])]];
      }));
      const before = cpuTicks();
      for (let i = 0; i < 3; i++) c.logits(x);
      const used = [...cpuTicks()].map(([tid, t]) => t - (before.get(tid) ?? 0));
      const workers = used.filter((t) => t >= Math.max(...used) / 4).length;
      console.log(JSON.stringify({ threads: c.threads, logits, workers }));`;
    writeFileSync(join(app, 'threads.mjs'), script);
    const withThreads = (n) => JSON.parse(run('node', ['threads.mjs', String(n)], { cwd: app, timeout: 120_000 }));
    const [one, two] = [withThreads(1), withThreads(2)];
    assert.equal(one.threads, 1);
    assert.equal(two.threads, 2, 'the package ships the threaded build and Node runs it');
    assert.equal(two.logits.length, 1000);
    // The same tiles, whichever thread computes them: the same values, bit for bit.
    assert.deepEqual(two.logits, one.logits);
    assert.equal(one.workers, 1, 'one thread did the work');
    assert.equal(two.workers, 2, 'two threads shared the work');
    // A package without the threaded build: one thread, the same logits.
    rmSync(join(app, 'node_modules/wrn-wasm/threads'), { recursive: true });
    const fallback = withThreads(2);
    assert.equal(fallback.threads, 1);
    assert.deepEqual(fallback.logits, one.logits);
    assert.equal(shared.threads, Math.min(availableParallelism(), 8), 'by default, every core up to 8');
    for (const threads of [0, -1, 1.5, '2']) await assert.rejects(pkg.Classifier.load({ threads }), RangeError, String(threads));
  });

  test('image files (Buffer, ArrayBuffer, Blob) are decoded in the package: PNG as Pillow, JPEG within a few levels of Pillow, EXIF orientation as the native CLI', async () => {
    // Decoding before any load picks no thread count (its decoder is the single-threaded build's).
    writeFileSync(join(app, 'decode-first.mjs'), `
      import { readFileSync } from 'node:fs';
      import { Classifier, toRgba } from 'wrn-wasm';
      const { width } = await toRgba(readFileSync(process.argv[2]));
      console.log(width, (await Classifier.load({ threads: 1 })).threads);
      // At once, on one instance: the classifier keeps working.
      const [pixels, c] = await Promise.all([toRgba(readFileSync(process.argv[2])), Classifier.load({ threads: 1 })]);
      if ((await c.classify(pixels)).length !== 5) throw new Error('no top-5');`);
    const [width, threads] = run('node', ['decode-first.mjs', samples[0]], { cwd: app }).trim().split(' ').map(Number);
    assert.ok(width > 0);
    assert.equal(threads, 1, 'the first load still picks the threads');
    // Pixels: a PNG decodes exactly as Pillow decodes it.
    const png = pixels.find((p) => p.name === 'chelsea');
    const decoded = await pkg.toRgba(readFileSync(png.png));
    assert.deepEqual([decoded.width, decoded.height], [png.width, png.height]);
    assert.ok(Buffer.from(decoded.data).equals(Buffer.from(png.rgba)), 'the same RGBA bytes as Pillow');
    // JPEG decoders may round differently (IDCT, chroma upsampling), but not by much: baseline, progressive,
    // grayscale and Adobe CMYK (stored inverted: a decoder that missed it would be off by ~100 a channel) JPEGs
    // decode within a few levels of Pillow.
    const jpegs = scratchDir('jpegs');
    run(python, ['-c', 'import sys; from PIL import Image; im = Image.open(sys.argv[1]).convert("RGB"); ' +
      'im.save(sys.argv[2] + "/progressive.jpg", quality=90, progressive=True); ' +
      'im.convert("L").save(sys.argv[2] + "/grayscale.jpg"); im.convert("CMYK").save(sys.argv[2] + "/cmyk.jpg")',
    samples[2], jpegs]);
    const jpegFiles = [samples[2], ...['progressive', 'grayscale', 'cmyk'].map((n) => join(jpegs, `${n}.jpg`))];
    for (const [i, want] of referencePixels(jpegFiles).entries()) {
      const got = await pkg.toRgba(readFileSync(jpegFiles[i]));
      assert.deepEqual([got.width, got.height], [want.width, want.height], want.name);
      let sum = 0;
      let max = 0;
      for (let j = 0; j < want.rgba.length; j++) {
        const diff = Math.abs(got.data[j] - want.rgba[j]);
        sum += diff;
        max = Math.max(max, diff);
      }
      const mean = sum / want.rgba.length;
      assert.ok(mean <= 0.25 && max <= 8, `${want.name}: mean difference ${mean}, largest ${max} (levels of 255)`);
    }
    // Scores: the sample photos (a JPEG among them) and a picture stored rotated with its EXIF orientation, as the CLI.
    const dir = scratchDir('oriented');
    run(python, [join(root, 'tests/reference/make_oriented.py'), samples[0], dir]);
    const files = [...samples, join(dir, 'upright.png'), join(dir, 'orientation_6.png')];
    assert.ok(files.some((f) => f.endsWith('.jpg')));
    const native = nativeTopK(files);
    for (const [i, file] of files.entries()) {
      assertSameTopK(assert, await shared.classify(readFileSync(file)), native[i].top, 1e-4, file);
    }
    const rotated = await shared.scores(readFileSync(files.at(-1)));
    assert.deepEqual(rotated, await shared.scores(readFileSync(files.at(-2))), 'displayed upright, as the upright one');
    // The same file as an ArrayBuffer and as a Blob (fs.openAsBlob's kind).
    const bytes = readFileSync(samples[2]);
    const expected = await shared.classify(bytes);
    assert.deepEqual(await shared.classify(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)), expected);
    assert.deepEqual(await shared.classify(new Blob([bytes])), expected);
    assert.deepEqual(await shared.classify(Buffer.concat([Buffer.alloc(7), bytes]).subarray(7)), expected, 'a view');
    // A file that is no image, a PNG cut short, or a format the package does not decode (WebP, GIF: the CLI does): a
    // clear Error, and the classifier keeps working. (A JPEG cut short decodes, its missing rows grey, as browsers
    // show it.)
    const other = join(dir, 'other');
    run(python, ['-c', 'import sys; from PIL import Image; im = Image.open(sys.argv[1]); ' +
      'im.save(sys.argv[2] + ".webp"); im.save(sys.argv[2] + ".gif")', png.png, other]);
    const bad = [Buffer.from('hello'), readFileSync(png.png).subarray(0, 2000), new Uint8Array(0),
      readFileSync(`${other}.webp`), readFileSync(`${other}.gif`)];
    for (const file of bad) {
      await assert.rejects(shared.classify(file), (e) => e instanceof Error && /^invalid image: cannot decode/.test(e.message));
    }
    assert.deepEqual(await shared.classify(bytes), expected);
  });

  test('logits of a Pillow-preprocessed tensor equal onnxruntime on the same model file (within 2e-4 of their range)', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'model/manifest.json'), 'utf8'));
    const dir = scratchDir('logits');
    const tensor = join(dir, 'chelsea.f32');
    run(python, [join(root, 'tests/reference/make_tensor.py'), join(root, 'model/manifest.json'), tensor, samples[0]]);
    run(python, [join(root, 'tests/reference/ort_logits.py'), join(root, 'model', manifest.model_file), tensor]);
    const want = new Float32Array(new Uint8Array(readFileSync(join(dir, 'chelsea.logits.f32'))).buffer);
    const got = shared.logits(new Float32Array(new Uint8Array(readFileSync(tensor)).buffer));
    assert.equal(got.length, 1000);
    const diff = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i])), 0);
    const spread = Math.max(...want) - Math.min(...want);
    // The default multiplies in integer arithmetic; 'int8' weights match to 1e-4 (the weights test below).
    assert.ok(spread > 0.1 && diff <= 2e-4 * spread, `max |wasm - onnxruntime| = ${diff} (logit range ${spread})`);
    assert.throws(() => shared.logits(new Float32Array(10)), /input does not fit/);
    assert.throws(() => shared.logits([1, 2, 3]), TypeError);
  });

  test('bad inputs throw Error, then a good call works', async () => {
    const c = shared;
    const { rgba, width, height } = pixels[0];
    const good = await c.classify({ data: rgba, width, height });
    const bad = [
      [{ data: rgba.subarray(4), width, height }, /RGBA needs/],
      [{ data: new Uint8Array(0), width: 0, height: 0 }, /at least 1 pixel/],
      [{ data: new Uint8Array(16), width: 100000, height: 100000 }, /limit/],
      [{ width: 2, height: 2 }, /expected ImageData/],
      ['a string', /expected ImageData/],
      [null, /expected ImageData/],
    ];
    for (const [input, message] of bad) {
      await assert.rejects(c.classify(input), (e) => e instanceof Error && message.test(e.message), String(message));
    }
    await assert.rejects(c.classify({ data: rgba, width, height }, { topK: 0 }), RangeError);
    await assert.rejects(c.classify({ data: rgba, width, height }, { topK: 2.5 }), RangeError);
    assert.deepEqual(await c.classify({ data: rgba, width, height }), good);
  });

  test('corrupt model bytes throw Error, and loading still works afterwards', async () => {
    const { Classifier } = pkg;
    for (const bytes of [new Uint8Array(0), new Uint8Array([8, 1, 2, 3, 4]), new Uint8Array(100_000).fill(7)]) {
      await assert.rejects(Classifier.fromBytes(bytes), (e) => e instanceof Error && /^model error/.test(e.message));
    }
    await assert.rejects(Classifier.fromBytes(new Uint8Array(10), '{"not": "a manifest"}'), /invalid manifest/);
    await assert.rejects(Classifier.fromBytes('not bytes'), TypeError);
    // The package's model with a manifest of other weights (which info() would then show): refused.
    const model = readFileSync(join(app, 'node_modules/wrn-wasm/model.onnx'));
    const other = shared.info();
    const held = other.weights.source;
    other.weights = { ...other.weights, source: 'file:other.safetensors', sha256: 'ab'.repeat(32), synthetic: false };
    await assert.rejects(Classifier.fromBytes(model, other), (e) => e instanceof Error &&
      e.message.startsWith(`invalid manifest: the model holds the weights ${held} (`) &&
      e.message.includes('but the manifest describes file:other.safetensors'));
    const c = await Classifier.load();
    const { rgba, width, height } = pixels[1];
    assert.equal((await c.classify({ data: rgba, width, height }, { topK: 3 })).length, 3);
    c.dispose();
  });

  test('the package ships the model once, beside .wasm files that carry its manifest, and load() reads it', async () => {
    const manifest = JSON.parse(readFileSync(join(root, 'model/manifest.json'), 'utf8'));
    const bytes = readFileSync(join(root, 'model', manifest.model_file));
    const shipped = readFileSync(join(app, 'node_modules/wrn-wasm/model.onnx'));
    assert.equal(createHash('sha256').update(shipped).digest('hex'), manifest.model_sha256);
    // The tarball as published (an earlier test took threads/ out of the installed copy): one model, and .wasm files
    // far smaller than it.
    const listing = run('tar', ['-tvzf', tarball]).trim().split('\n').map((line) => line.split(/\s+/));
    const sizes = Object.fromEntries(listing.map((f) => [f.at(-1).replace(/^package\//, ''), Number(f[2])]));
    assert.deepEqual(Object.keys(sizes).filter((f) => f.endsWith('.onnx')), ['model.onnx']);
    const wasm = Object.keys(sizes).filter((f) => f.endsWith('.wasm')).sort();
    assert.deepEqual(wasm, ['threads/wrn_wasm_bg.wasm', 'wrn_wasm_bg.wasm']);
    for (const f of wasm) assert.ok(sizes[f] < bytes.length / 3, `${f} is ${sizes[f]} bytes: it embeds the model again`);
    assert.ok(!('manifest.json' in sizes), 'the manifest is in the .wasm, not a file to fetch');
    // Classifier.load() (the package's copy, the .wasm's manifest) and fromBytes with the model folder's file and
    // manifest.
    const fromFile = await pkg.Classifier.fromBytes(bytes, manifest);
    const { rgba, width, height } = pixels[2];
    const image = { data: rgba, width, height };
    assert.deepEqual(await fromFile.classify(image), await shared.classify(image));
    assert.deepEqual(shared.info(), manifest);
    assert.deepEqual(fromFile.info(), manifest);
    fromFile.dispose();
  });

  test("weights: 'int8' and 'f32' give the same logits, the int8-compute default within 2e-4 of their range", async () => {
    const x = new Float32Array(3 * 224 * 224).map((_, i) => ((i * 7919) % 1000) / 500 - 1);
    const logitsWith = async (weights) => {
      const c = await pkg.Classifier.load({ weights });
      const logits = c.logits(x);
      c.dispose();
      return logits;
    };
    const [int8, f32] = [await logitsWith('int8'), await logitsWith('f32')];
    const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    const spread = Math.max(...f32) - Math.min(...f32);
    assert.ok(maxDiff(int8, f32) <= 1e-4, `max |int8 weights - f32 weights| = ${maxDiff(int8, f32)}`);
    assert.ok(maxDiff(shared.logits(x), f32) <= 2e-4 * spread, `max |default - f32| = ${maxDiff(shared.logits(x), f32)}`);
    await assert.rejects(pkg.Classifier.load({ weights: 'int4' }), /"int8-compute" or "f32"/);
  });

  test('the TypeScript types describe the API', () => {
    const ts = `
      import { classify, Classifier, type Prediction, type ModelInfo } from 'wrn-wasm';
      const c: Classifier = await Classifier.load();
      await Classifier.load({ weights: 'f32' });
      await Classifier.load({ weights: 'int8-compute' });
      const threads: number = (await Classifier.load({ threads: 2 })).threads;
      // @ts-expect-error weights are int8-compute, int8 or f32
      await Classifier.load({ weights: 'int4' });
      const info: ModelInfo = c.info();
      const synthetic: boolean = info.weights.synthetic;
      const top: Prediction[] = await c.classify({ data: new Uint8Array(4), width: 1, height: 1 }, { topK: 3 });
      await c.classify(Buffer.from('an image file'));
      await c.classify(new Blob([]));
      const label: string = top[0].label;
      const scores: Float32Array = await c.scores({ data: new Uint8ClampedArray(4), width: 1, height: 1 });
      await classify({ data: new Uint8Array(4), width: 1, height: 1 });
      // @ts-expect-error topK is a number
      await c.classify({ data: new Uint8Array(4), width: 1, height: 1 }, { topK: 'five' });
      export { synthetic, label, scores, threads };`;
    writeFileSync(join(app, 'check.ts'), ts);
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    // Node's own types (Buffer, Blob), as a Node project in TypeScript has them.
    run('node', [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--target', 'es2022', '--lib', 'es2022', '--typeRoots', join(root, 'node_modules/@types'), '--types', 'node',
      'check.ts'], { cwd: app });
    // The browser entry, as a bundler resolves it, with the DOM's image sources and the worker.
    const browser = `
      import { classify, ClassifierWorker, toImageData, type Prediction } from 'wrn-wasm';
      const img = document.createElement('img');
      const top: Prediction[] = await classify(img, { topK: 2 });
      const worker = new ClassifierWorker({ onProgress: ({ stage, loaded }) => console.log(stage, loaded), threads: 2 });
      new ClassifierWorker({ modelUrl: new URL('/m.onnx', location.href), manifestUrl: '/m.json' });
      const { info, loadMs, threads } = await worker.ready();
      const controller = new AbortController();
      const live = await worker.classify(document.createElement('video'), { signal: controller.signal });
      const ms: number = live.ms;
      const data: ImageData = await toImageData(new Blob());
      await classify(new Uint8Array(8));
      await classify(new ArrayBuffer(8));
      // @ts-expect-error a number is no image
      await classify(42);
      export { top, info, loadMs, threads, ms, data };`;
    writeFileSync(join(app, 'browser.ts'), browser);
    run('node', [tsc, '--noEmit', '--strict', '--module', 'esnext', '--moduleResolution', 'bundler',
      '--target', 'es2022', '--lib', 'es2022,dom', 'browser.ts'], { cwd: app });
  });
});
