// wrn-wasm and onnxruntime-web in one Node process, their inferences interleaved: PAIRS pairs after a warm-up of
// each, which engine goes first alternating from pair to pair. On these noisy machines a figure can change by half
// from one second to the next; two inferences a few hundred milliseconds apart see nearly the same machine, so the
// ratio within a pair is far steadier than a ratio of two processes run one after the other. One JSON line:
// { wrn_ms: [...], ort_ms: [...] }.
//   node bench/duel_node.mjs WRN_MODEL.onnx WRN_THREADS ORT_MODEL.onnx ORT_THREADS INPUT.f32 PAIRS \
//     [int8-compute|int8|f32]
import { readFileSync } from 'node:fs';

import { openOrtweb, openWrn, readInput, timed } from './engines_node.mjs';

const [wrnModel, wrnThreads, ortModel, ortThreads, inputPath, pairs, weights] = process.argv.slice(2);
const input = readInput(inputPath);
const bytesOf = (path) => new Uint8Array(readFileSync(path));
const wrn = await openWrn({ modelBytes: bytesOf(wrnModel), input, threads: Number(wrnThreads), weights });
const ort = await openOrtweb({ modelBytes: bytesOf(ortModel), input, threads: Number(ortThreads) });
await wrn.run();
await ort.run();
const wrnMs = [];
const ortMs = [];
for (let i = 0; i < Number(pairs); i++) {
  if (i % 2 === 0) {
    wrnMs.push(await timed(wrn.run));
    ortMs.push(await timed(ort.run));
  } else {
    ortMs.push(await timed(ort.run));
    wrnMs.push(await timed(wrn.run));
  }
}
console.log(JSON.stringify({ wrn_ms: wrnMs, ort_ms: ortMs }));
process.exit(0);
