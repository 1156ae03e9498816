// tools/bench: wrn-wasm against the engine a user would pick instead, on the same model files, in one run.
// Native: tract vs onnxruntime (Python, CPU). Node and headless Chromium: wrn-wasm vs onnxruntime-web (wasm backend)
// at 1 thread and at every core. Each measurement in a fresh process or page: load, median inference, memory.
//   node bench/run.mjs [--runs N] [--rounds N] [--write]     (--write updates BENCHMARKS.md)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { serve } from '../tools/serve.mjs';
import { launch, openPage } from '../tests/e2e/browser.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf('--runs') + 1] || 5) || 5;
// These machines are noisy, and the sweep below measures the two engines of a comparison minutes apart: the goals'
// ratios are taken in ROUNDS paired rounds instead, each running the two engines of each comparison one right after
// the other (fresh processes or pages), and report the median of the rounds' ratios and their range.
const ROUNDS = Number(args[args.indexOf('--rounds') + 1] || 5) || 5;
const WRITE = args.includes('--write');
const CORES = availableParallelism();
const out = join(root, 'target/bench');
const py = join(root, '.venv/bin/python');
mkdirSync(out, { recursive: true });

const sh = (cmd, argv, opts = {}) => execFileSync(cmd, argv, { encoding: 'utf8', cwd: root, maxBuffer: 1 << 26, ...opts });
const readF32 = (p) => new Float32Array(new Uint8Array(readFileSync(p)).buffer); // a copy: small files share Node's buffer pool
const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

// --- Inputs and model files -------------------------------------------------------------------------------------
const manifest = JSON.parse(readFileSync(join(root, 'model/manifest.json'), 'utf8'));
const photos = ['chelsea.png', 'coffee.png', 'astronaut.png', 'rocket.jpg'].map((f) => join(root, 'www/samples', f));
const input = join(out, 'input.f32');
sh(py, ['tests/reference/make_tensor.py', 'model/manifest.json', input, photos[0]]);
sh(py, ['tests/reference/make_tensor.py', 'model/manifest.json', join(out, 'calibration.f32'), ...photos]);
const models = {
  int8: join(root, 'model', manifest.model_file),
  fp32: join(root, 'model', manifest.fp32_model_file),
};
sh(py, ['bench/quantize_ort.py', models.fp32, join(out, 'calibration.f32'), join(out, 'models')], { stdio: 'inherit' });
models['ort-qdq-u8'] = join(out, 'models/ort-qdq-u8.onnx');
models['ort-qop-u8'] = join(out, 'models/ort-qop-u8.onnx');
sh('cargo', ['build', '--release', '--locked', '--example', 'tract_native'], { stdio: 'inherit' });

// --- Measurements -----------------------------------------------------------------------------------------------
const results = [];
function record(where, engine, model, threads, r, logitsPath) {
  const row = { where, engine, model, threads, ...r };
  if (logitsPath) row.logits = readF32(logitsPath);
  results.push(row);
  console.error(`${where.padEnd(8)} ${engine.padEnd(16)} ${model.padEnd(11)} ${threads}t  load ${r.load_ms.toFixed(0).padStart(6)} ms  ` +
    `median ${r.median_ms.toFixed(0).padStart(6)} ms  peak ${r.peak_mb?.toFixed(0) ?? '-'} MB  wasm ${r.wasm_mb?.toFixed(0) ?? '-'} MB`);
}

// Engines are named with how wrn-wasm/tract hold and multiply the weights (WeightMemory): `tract` is the CLI's default
// (int8-compute on CPUs with AMX or AVX-512 VNNI, where it runs on AMX's tile multiplies or `vpdpwssd`; f32 on
// others), int8-compute the package's.
const nativeEngines = [['tract', 'int8', null], ['tract f32-weights', 'int8', 'f32'], ['tract int8-weights', 'int8', 'int8'],
  ['tract f32-weights', 'fp32', 'f32']];
for (const [engine, m, weights] of nativeEngines) {
  const logits = join(out, `native-${engine.replace(' ', '-')}-${m}.f32`);
  const args = [models[m], 'model/manifest.json', input, String(RUNS), logits, ...(weights ? [weights] : [])];
  const r = JSON.parse(sh(join(root, 'target/release/examples/tract_native'), args));
  record('native', engine, m, 1, r, logits);
}
for (const m of Object.keys(models)) {
  const logits = join(out, `native-ort-${m}.f32`);
  record('native', 'onnxruntime', m, 1, JSON.parse(sh(py, ['bench/ort_native.py', models[m], input, '1', String(RUNS), logits])), logits);
}

const wrnOrOrt = (engine) => (engine.startsWith('wrn-wasm') ? 'wrn' : 'ortweb');
const weightsOf = (engine) => (engine.endsWith('f32-weights') ? 'f32' : engine.endsWith('int8-weights') ? 'int8' : 'int8-compute');
const wasmConfigs = [
  ['wrn-wasm', 'int8', 1], ['wrn-wasm int8-weights', 'int8', 1], ['wrn-wasm f32-weights', 'int8', 1], ['wrn-wasm', 'fp32', 1],
  ...['int8', 'ort-qdq-u8', 'ort-qop-u8'].flatMap((m) => [1, CORES].map((t) => ['onnxruntime-web', m, t])),
];
// wrn-wasm's threaded build, where built, runs in Node (worker_threads) and in the browser (Web Workers).
const threadedBuilt = existsSync(join(root, 'pkg/threads/wrn_wasm_bg.wasm'));
const threadedConfigs = threadedBuilt ? [...wasmConfigs.slice(0, 1), ['wrn-wasm', 'int8', CORES], ...wasmConfigs.slice(1)] : wasmConfigs;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const bestInt8 = (where, engine, threads) => results
  .filter((r) => r.where === where && r.engine === engine && r.threads === threads && r.model !== 'fp32')
  .reduce((a, b) => (a && a.median_ms <= b.median_ms ? a : b), null);

/**
 * The goals' paired rounds in one place (`where`). Per round: the inference ratios from duels, `duel(ortModel,
 * wrnThreads, ortThreads)` running wrn-wasm on the int8 file and onnxruntime-web on `ortModel` in one process or
 * page, their inferences interleaved (bench/duel_node.mjs says why), wrn-wasm on 1 thread against onnxruntime-web's
 * best int8 model of the sweep on 1, then both on every core; a round's ratio is the median of its pairs' ratios.
 * And the load ratio from `run(engine, model, threads, runs)` in fresh processes or pages, wrn-wasm against
 * onnxruntime-web's session on the same int8 file, which goes first alternating from round to round.
 */
async function pairedRounds(where, run, duel) {
  const ours = threadedBuilt ? CORES : 1;
  const best1 = bestInt8(where, 'onnxruntime-web', 1).model;
  const bestN = bestInt8(where, 'onnxruntime-web', CORES).model;
  const rounds = [];
  const pairRatio = ({ wrn_ms: w, ort_ms: o }) => median(w.map((ms, j) => ms / o[j]));
  const show = (xs) => xs.map((ms) => ms.toFixed(0)).join(' ');
  for (let i = 0; i < ROUNDS; i++) {
    const d1 = await duel(best1, 1, 1);
    const dN = await duel(bestN, ours, CORES);
    const loadWrn = () => run('wrn-wasm', 'int8', 1, 1);
    const loadOrt = () => run('onnxruntime-web', 'int8', 1, 1);
    let wrnLoad, ortLoad;
    if (i % 2 === 0) {
      wrnLoad = await loadWrn();
      ortLoad = await loadOrt();
    } else {
      ortLoad = await loadOrt();
      wrnLoad = await loadWrn();
    }
    const round = { inference1: pairRatio(d1), inferenceN: pairRatio(dN), load: wrnLoad.load_ms / ortLoad.load_ms };
    console.error(`${where} round ${i + 1}: 1t wrn-wasm ${show(d1.wrn_ms)} / onnxruntime-web ${show(d1.ort_ms)} ms (${round.inference1.toFixed(2)}); ` +
      `${CORES}t ${show(dN.wrn_ms)} / ${show(dN.ort_ms)} ms (${round.inferenceN.toFixed(2)}); ` +
      `load ${wrnLoad.load_ms.toFixed(0)} / ${ortLoad.load_ms.toFixed(0)} ms (${round.load.toFixed(2)})`);
    rounds.push(round);
  }
  return { best1, bestN, ours, rounds };
}
const paired = {};
const scratchLogits = join(out, 'rounds.f32');

// Natively, paired rounds too: tract (the CLI's default) on the int8 file and onnxruntime on its best int8 model of
// the sweep, each in a fresh process, one right after the other, which goes first alternating from round to round.
// (Two processes of two languages cannot interleave their inferences as the wasm duels do; back to back, a round's
// two runs still see a closer machine than the sweep's, minutes apart.)
{
  const ortBest = bestInt8('native', 'onnxruntime', 1).model;
  const tractRun = () => JSON.parse(sh(join(root, 'target/release/examples/tract_native'),
    [models.int8, 'model/manifest.json', input, String(RUNS), scratchLogits]));
  const ortRun = () => JSON.parse(sh(py, ['bench/ort_native.py', models[ortBest], input, '1', String(RUNS), scratchLogits]));
  const rounds = [];
  for (let i = 0; i < ROUNDS; i++) {
    let tract, ort;
    if (i % 2 === 0) {
      tract = tractRun();
      ort = ortRun();
    } else {
      ort = ortRun();
      tract = tractRun();
    }
    rounds.push({ inference1: tract.median_ms / ort.median_ms });
    console.error(`native round ${i + 1}: tract ${tract.median_ms.toFixed(0)} / onnxruntime ${ort.median_ms.toFixed(0)} ms ` +
      `(${rounds[i].inference1.toFixed(2)})`);
  }
  paired.native = { best1: ortBest, rounds };
}

const nodeRun = (engine, m, t, runs, logits = scratchLogits) =>
  JSON.parse(sh('node', ['bench/wasm_node.mjs', wrnOrOrt(engine), models[m], input, String(t), String(runs), logits, weightsOf(engine)]));
for (const [engine, m, t] of threadedConfigs) {
  const logits = join(out, `node-${engine.replace(' ', '-')}-${m}-${t}.f32`);
  record('node', engine, m, t, nodeRun(engine, m, t, RUNS, logits), logits);
}
const nodeDuel = (ortModel, wrnThreads, ortThreads) => JSON.parse(sh('node', ['bench/duel_node.mjs',
  models.int8, String(wrnThreads), models[ortModel], String(ortThreads), input, String(RUNS)]));
paired.node = await pairedRounds('node', nodeRun, nodeDuel);

const { server, url } = await serve(root);
const browser = await launch();
try {
  const chromiumRun = async (engine, m, t, runs) => {
    const modelUrl = '/' + models[m].slice(root.length);
    const q = new URLSearchParams({ engine: wrnOrOrt(engine), model: modelUrl, threads: t, runs, weights: weightsOf(engine) });
    const { context, page, log } = await openPage(browser, `${url}bench/page/?${q}`);
    try {
      await page.waitForFunction(() => window.benchReady === true);
      const r = await page.evaluate((x) => window.bench(x), Array.from(readF32(input))).catch((e) => {
        throw new Error(`${e.message}\n${log.join('\n')}`);
      });
      if (!r.isolated && t > 1) throw new Error('the bench page is not cross-origin isolated: no threads');
      return r;
    } finally {
      await context.close();
    }
  };
  for (const [engine, m, t] of threadedConfigs) {
    const r = await chromiumRun(engine, m, t, RUNS);
    const logits = join(out, `chromium-${engine.replace(' ', '-')}-${m}-${t}.f32`);
    writeFileSync(logits, Buffer.from(new Float32Array(r.logits).buffer));
    record('chromium', engine, m, t, r, logits);
  }
  const chromiumDuel = async (ortModel, wrnThreads, ortThreads) => {
    const q = new URLSearchParams({ engine: 'wrn', model: '/' + models.int8.slice(root.length), threads: wrnThreads, runs: 0 });
    const { context, page, log } = await openPage(browser, `${url}bench/page/?${q}`);
    try {
      await page.waitForFunction(() => window.benchReady === true);
      const ort = { model: '/' + models[ortModel].slice(root.length), threads: ortThreads };
      const r = await page.evaluate(([x, o, pairs]) => window.duel(x, o, pairs), [Array.from(readF32(input)), ort, RUNS])
        .catch((e) => {
          throw new Error(`${e.message}\n${log.join('\n')}`);
        });
      if (!r.isolated && Math.max(wrnThreads, ortThreads) > 1) throw new Error('the bench page is not cross-origin isolated: no threads');
      return r;
    } finally {
      await context.close();
    }
  };
  paired.chromium = await pairedRounds('chromium', chromiumRun, chromiumDuel);
} finally {
  await browser.close();
  server.close();
}

// --- Report -----------------------------------------------------------------------------------------------------
const find = (where, engine, model, threads) => results.find((r) => r.where === where && r.engine === engine && r.model === model && r.threads === threads);
const fmt = (x, d = 0) => (x == null ? '-' : x.toFixed(d));
const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : '-');

// Fidelity: every engine on the same file agrees with onnxruntime natively on it.
for (const r of results) {
  const ref = find('native', 'onnxruntime', r.model, 1);
  r.diff = ref && r.logits ? maxDiff(r.logits, ref.logits) : null;
}

const lines = [];
lines.push('| where | engine | model file | threads | load+optimise ms | median inference ms | peak RSS MB | wasm memory MB | max abs logit diff vs onnxruntime |');
lines.push('|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  lines.push(`| ${r.where} | ${r.engine} | ${r.model} | ${r.threads} | ${fmt(r.load_ms)} | ${fmt(r.median_ms)} | ${fmt(r.peak_mb)} | ${fmt(r.wasm_mb)} | ${r.diff == null ? '-' : r.diff.toExponential(1)} |`);
}
const ratios = [];
ratios.push(`| goal (ratio wrn-wasm / peer, <= 1.00 meets it; median of ${ROUNDS} paired rounds, range) | Node | Chromium |`);
ratios.push('|---|---|---|');
const both = (f) => ['node', 'chromium'].map(f).join(' | ');
// Goals: the paired rounds' median ratio, and their range.
const roundsRatio = (w, key) => {
  const xs = paired[w].rounds.map((r) => r[key]);
  return `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)})`;
};
ratios.push(`| inference, 1 thread, vs onnxruntime-web's best int8 | ${both((w) => `${roundsRatio(w, 'inference1')}; ${paired[w].best1}`)} |`);
ratios.push(`| inference, all ${CORES} cores, vs onnxruntime-web's best int8 at ${CORES} threads | ${both((w) => {
  const threads = paired[w].ours;
  return `${roundsRatio(w, 'inferenceN')}; ${paired[w].bestN}; wrn-wasm on ${threads} thread${threads > 1 ? 's' : ''}`;
})} |`);
ratios.push(`| load+optimise, same int8 file | ${both((w) => roundsRatio(w, 'load'))} |`);
ratios.push(`| wasm memory with the model loaded, after the runs / 300 MB | ${both((w) => ratio(find(w, 'wrn-wasm', 'int8', 1)?.wasm_mb, 300))} |`);
ratios.push(`| native, 1 thread: tract int8 vs onnxruntime's best int8 | ${roundsRatio('native', 'inference1')}; ${paired.native.best1} | |`);

const machine = `${cpus()[0].model}, ${CORES} cores; Node ${process.version}; ${sh('/usr/bin/chromium', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).trim()}; ` +
  `${RUNS} runs after a warm-up, median; weights: ${manifest.weights.source}`;
const report = `${lines.join('\n')}\n\n${ratios.join('\n')}\n\nMachine: ${machine}\n`;
console.log(`\n${report}`);
writeFileSync(join(out, 'results.json'), JSON.stringify(results.map(({ logits, ...r }) => r), null, 2));
if (WRITE) {
  const path = join(root, 'BENCHMARKS.md');
  const head = existsSync(path) ? readFileSync(path, 'utf8').split('<!-- results -->')[0] : '# Benchmarks\n\n';
  writeFileSync(path, `${head}<!-- results -->\nLatest run (${new Date().toISOString().slice(0, 10)}), \`tools/bench\`:\n\n${report}`);
}
