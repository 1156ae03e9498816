// One engine in Node on one model file: wrn-wasm (pkg/) or onnxruntime-web (wasm backend), in a fresh process.
// Load, the median of RUNS inferences after a warm-up, and memory. One JSON line on stdout.
//   node bench/wasm_node.mjs wrn|ortweb MODEL.onnx INPUT.f32 THREADS RUNS LOGITS_OUT.f32 [int8-compute|int8|f32]
// (the last: wrn-wasm's weight memory, its default when omitted).
import { readFileSync, writeFileSync } from 'node:fs';

import { median, openOrtweb, openWrn, readInput } from './engines_node.mjs';

const [engine, model, inputPath, threads, runs, logitsOut, weights] = process.argv.slice(2);
const params = { modelBytes: new Uint8Array(readFileSync(model)), input: readInput(inputPath), threads: Number(threads), weights };
const { loadMs, run, wasmMb } = await (engine === 'wrn' ? openWrn(params) : openOrtweb(params));
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
