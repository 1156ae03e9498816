// Where one inference of wrn-wasm spends its time, node by node, in Node (1 thread) and headless Chromium (1 thread
// and every core): time per op type and the slowest nodes, from the run with the median total. Needs pkg/
// (tools/build-pkg) and the model (tools/build-model).
//   node bench/profile.mjs [--weights int8-compute|int8|f32] [--runs N] [--top N]
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

import { serve } from '../tools/serve.mjs';
import { launch, openPage } from '../tests/e2e/browser.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const opt = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const WEIGHTS = opt('--weights', 'int8-compute');
const RUNS = Number(opt('--runs', 3));
const TOP = Number(opt('--top', 10));
const CORES = availableParallelism();
const manifest = JSON.parse(readFileSync(new URL('../model/manifest.json', import.meta.url), 'utf8'));
// Any input will do: the time of a convolutional network does not depend on its pixels.
const input = new Float32Array(manifest.input.shape.reduce((a, b) => a * b)).fill(0.5);

async function inNode() {
  const { default: init, WasmClassifier } = await import(new URL('../pkg/wrn_wasm.js', import.meta.url));
  await init({ module_or_path: readFileSync(new URL('../pkg/wrn_wasm_bg.wasm', import.meta.url)) });
  const model = readFileSync(new URL(`../model/${manifest.model_file}`, import.meta.url));
  const classifier = WasmClassifier.fromBytes(model, JSON.stringify(manifest), WEIGHTS);
  classifier.profile(input);
  return Array.from({ length: RUNS }, () => JSON.parse(classifier.profile(input)));
}

async function inChromium(browser, url, threads) {
  const q = new URLSearchParams({ engine: 'wrn', model: `/model/${manifest.model_file}`, threads, runs: RUNS, weights: WEIGHTS });
  const { context, page, log } = await openPage(browser, `${url}bench/page/?${q}`);
  try {
    await page.waitForFunction(() => window.benchReady === true);
    return await page.evaluate((x) => window.profile(x), Array.from(input)).catch((e) => {
      throw new Error(`${e.message}\n${log.join('\n')}`);
    });
  } finally {
    await context.close();
  }
}

const total = (run) => run.reduce((s, t) => s + t.ms, 0);
const medianRun = (runs) => [...runs].sort((a, b) => total(a) - total(b))[Math.floor(runs.length / 2)];

const columns = [['node 1t', medianRun(await inNode())]];
const { server, url } = await serve(root);
const browser = await launch();
try {
  columns.push(['chromium 1t', medianRun(await inChromium(browser, url, 1))]);
  if (CORES > 1) columns.push([`chromium ${CORES}t`, medianRun(await inChromium(browser, url, CORES))]);
} finally {
  await browser.close();
  server.close();
}

const byOp = (run) => run.reduce((m, t) => m.set(t.op, (m.get(t.op) ?? 0) + t.ms), new Map());
const ops = [...byOp(columns[0][1]).entries()].sort((a, b) => b[1] - a[1]).map(([op]) => op);
const cell = (v) => (v == null ? '-' : v.toFixed(1)).padStart(12);
console.log(`weights ${WEIGHTS}, median of ${RUNS} profiled runs, ms\n`);
console.log(`${'op'.padEnd(24)}${columns.map(([name]) => name.padStart(12)).join('')}`);
for (const op of ops) console.log(`${op.padEnd(24)}${columns.map(([, run]) => cell(byOp(run).get(op))).join('')}`);
console.log(`${'total'.padEnd(24)}${columns.map(([, run]) => cell(total(run))).join('')}\n`);
for (const [name, run] of columns) {
  console.log(`slowest nodes, ${name}:`);
  for (const t of [...run].sort((a, b) => b.ms - a.ms).slice(0, TOP)) console.log(`${t.ms.toFixed(2).padStart(9)}  ${t.node} (${t.op})`);
}
process.exit(0);
