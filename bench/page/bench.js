// One engine in the browser on one model file (the same measurements as bench/wasm_node.mjs).
// Served from the repository root by tools/bench:
//   /bench/page/?engine=wrn|ortweb&model=/path.onnx&threads=N&runs=N[&weights=int8-compute|int8|f32]
const q = new URLSearchParams(location.search);
const [engine, model, threads, runs] = [q.get('engine'), q.get('model'), Number(q.get('threads')), Number(q.get('runs'))];
const weights = q.get('weights') ?? undefined;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const bytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());

async function wrn() {
  // More than one thread: the threaded build (shared memory, wasm-bindgen-rayon), as the demo page uses it.
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
  // The embedded model as users load it (no copy of the file in wasm memory); any other file from its bytes.
  const embedded = JSON.parse(manifest).model_file === model.split('/').pop();
  const classifier = embedded ? glue.WasmClassifier.loadEmbedded(weights)
    : glue.WasmClassifier.fromBytes(modelBytes, manifest, weights);
  const loadMs = performance.now() - t0;
  return { loadMs, run: (x) => classifier.logits(x), wasmMb: () => exports.memory.buffer.byteLength / 1e6 };
}

async function ortweb() {
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

window.bench = async (input) => {
  const x = new Float32Array(input);
  const { loadMs, run, wasmMb } = await (engine === 'wrn' ? wrn() : ortweb());
  await run(x);
  const times = [];
  let logits;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    logits = await run(x);
    times.push(performance.now() - t);
  }
  return { load_ms: loadMs, median_ms: median(times), runs_ms: times, wasm_mb: wasmMb(), logits: Array.from(logits),
           isolated: crossOriginIsolated };
};
window.benchReady = true;
