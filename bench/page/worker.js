// One engine on one model file in a module Worker (the same measurements as bench/wasm_node.mjs), driven by
// bench.js: in {type: 'bench'|'profile'|'open', params, input} or {type: 'time'}, out {result} or {error}.
// 'bench' and 'profile' answer once; 'open' loads the engine and warms it up, then each 'time' runs one inference
// (bench.js's duel).
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const bytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());

async function wrn({ model, threads, weights }) {
  // More than one thread: the threaded build (shared memory, wasm-bindgen-rayon), as the package's worker uses it.
  const dir = threads > 1 ? '/pkg/threads' : '/pkg';
  const glue = await import(`${dir}/wrn_wasm.js`);
  const [wasmBytes, modelBytes, manifest] = await Promise.all([bytes(`${dir}/wrn_wasm_bg.wasm`), bytes(model),
    fetch('/model/manifest.json').then((r) => r.text())]);
  const t0 = performance.now();
  const exports = await glue.default({ module_or_path: wasmBytes });
  if (threads > 1) {
    await glue.initThreadPool(threads);
    glue.useThreads(threads);
  }
  // From the file's bytes, as the package loads the model it ships and as onnxruntime-web gets them.
  const classifier = glue.WasmClassifier.fromBytes(modelBytes, manifest, weights);
  const loadMs = performance.now() - t0;
  return { loadMs, run: (x) => classifier.logits(x), profile: (x) => JSON.parse(classifier.profile(x)),
           wasmMb: () => exports.memory.buffer.byteLength / 1e6 };
}

async function ortweb({ model, threads }) {
  const ort = await import('/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs');
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  const modelBytes = await bytes(model);
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(modelBytes, { executionProviders: ['wasm'] });
  const loadMs = performance.now() - t0;
  const run = async (x) => (await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [1, 3, 224, 224]) }))[session.outputNames[0]].data;
  return { loadMs, run, wasmMb: () => null };
}

async function bench(engine, runs, x) {
  const { loadMs, run, wasmMb } = engine;
  await run(x);
  const times = [];
  let logits;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    logits = await run(x);
    times.push(performance.now() - t);
  }
  return { load_ms: loadMs, median_ms: median(times), runs_ms: times, wasm_mb: wasmMb(), logits: Array.from(logits) };
}

function profile({ profile }, runs, x) {
  profile(x);
  return Array.from({ length: runs }, () => profile(x));
}

let opened; // 'open': { engine, x }

async function time() {
  const t = performance.now();
  await opened.engine.run(opened.x);
  return performance.now() - t;
}

self.onmessage = async ({ data: { type, params, input } }) => {
  try {
    if (type === 'time') {
      self.postMessage({ result: await time() });
      return;
    }
    const p = { ...params, threads: Number(params.threads), runs: Number(params.runs), weights: params.weights || undefined };
    const engine = await (p.engine === 'wrn' ? wrn(p) : ortweb(p));
    const x = new Float32Array(input);
    if (type === 'open') {
      opened = { engine, x };
      await engine.run(x); // warm-up
      self.postMessage({ result: { load_ms: engine.loadMs } });
      return;
    }
    self.postMessage({ result: type === 'profile' ? profile(engine, p.runs, x) : await bench(engine, p.runs, x) });
  } catch (e) {
    self.postMessage({ error: `${e.message}\n${e.stack}` });
  }
};
