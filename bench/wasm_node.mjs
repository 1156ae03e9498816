// One engine in Node on one model file: wrn-wasm (pkg/) or onnxruntime-web (wasm backend).
// Load = instantiating the engine's .wasm + building the session from the model bytes. One JSON line on stdout.
//   node bench/wasm_node.mjs wrn|ortweb MODEL.onnx INPUT.f32 THREADS RUNS LOGITS_OUT.f32 [int8-compute|int8|f32]
// (the last: wrn-wasm's weight memory, its default when omitted). Both engines get the file's bytes, read before the
// clock starts; wrn-wasm loads them with fromBytes, as its package loads the model it ships.
import { readFileSync, writeFileSync } from 'node:fs';

const [engine, model, inputPath, threads, runs, logitsOut, weights] = process.argv.slice(2);
const input = new Float32Array(new Uint8Array(readFileSync(inputPath)).buffer);
const modelBytes = new Uint8Array(readFileSync(model));
const root = new URL('../', import.meta.url);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function wrn() {
  // More than one thread: the threaded build, its rayon pool on worker_threads (as the package's node.js does).
  const build = new URL(Number(threads) > 1 ? 'pkg/threads/' : 'pkg/', root);
  const { default: init, WasmClassifier, initThreadPool, useThreads } = await import(new URL('wrn_wasm.js', build));
  const wasmBytes = readFileSync(new URL('wrn_wasm_bg.wasm', build));
  const manifest = readFileSync(new URL('model/manifest.json', root), 'utf8');
  const t0 = performance.now();
  const exports = await init({ module_or_path: wasmBytes });
  if (Number(threads) > 1) {
    await initThreadPool(Number(threads));
    useThreads(Number(threads));
  }
  const classifier = WasmClassifier.fromBytes(modelBytes, manifest, weights);
  const loadMs = performance.now() - t0;
  const run = () => classifier.logits(input);
  return { loadMs, run, wasmMb: () => exports.memory.buffer.byteLength / 1e6 };
}

async function ortweb() {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = Number(threads);
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(modelBytes, { executionProviders: ['wasm'] });
  const loadMs = performance.now() - t0;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, [1, 3, 224, 224]) };
  const run = async () => (await session.run(feeds))[session.outputNames[0]].data;
  return { loadMs, run, wasmMb: () => null };
}

const { loadMs, run, wasmMb } = await (engine === 'wrn' ? wrn() : ortweb());
await run(); // warm-up
const times = [];
let logits;
for (let i = 0; i < Number(runs); i++) {
  const t = performance.now();
  logits = await run();
  times.push(performance.now() - t);
}
writeFileSync(logitsOut, Buffer.from(new Float32Array(logits).buffer));
console.log(JSON.stringify({
  load_ms: loadMs, median_ms: median(times), runs_ms: times,
  peak_mb: process.resourceUsage().maxRSS / 1024, wasm_mb: wasmMb(),
}));
process.exit(0);
