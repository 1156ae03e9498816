// The benchmark page: runs one engine in a module Worker (bench/page/worker.js), as the package runs wrn-wasm, and
// as a page should run any blocking engine. Measuring on the page's own thread is unfair to threads: the browser
// main thread may not block, so a thread waiting for its pool spins and takes a core from the pool.
// Served from the repository root by tools/bench:
//   /bench/page/?engine=wrn|ortweb&model=/path.onnx&threads=N&runs=N[&weights=int8-compute|int8|f32]
// (for a duel: engine=wrn, and onnxruntime-web's model given to window.duel)
const params = Object.fromEntries(new URLSearchParams(location.search));

const newWorker = () => new Worker(new URL('worker.js', import.meta.url), { type: 'module' });
const ask = (worker, message) => new Promise((resolve, reject) => {
  worker.onmessage = ({ data }) => (data.error ? reject(new Error(data.error)) : resolve(data.result));
  worker.onerror = (e) => reject(new Error(`worker: ${e.message}`));
  worker.postMessage(message);
});

function inWorker(type, input) {
  const worker = newWorker();
  return ask(worker, { type, params, input }).finally(() => worker.terminate());
}

window.bench = async (input) => ({ ...(await inWorker('bench', input)), isolated: crossOriginIsolated });
// wrn-wasm only: the time of each node of the plan, for `runs` inferences after a warm-up (bench/profile.mjs).
window.profile = (input) => inWorker('profile', input);
// wrn-wasm and onnxruntime-web each in its own Worker on the same page, their inferences interleaved (bench/run.mjs
// says why): `pairs` pairs after a warm-up of each, which engine goes first alternating from pair to pair. Takes
// the page's params for wrn-wasm and `ort` ({ model }) for onnxruntime-web, with the same threads.
window.duel = async (input, ort, pairs) => {
  const workers = [newWorker(), newWorker()];
  try {
    await ask(workers[0], { type: 'open', params, input });
    await ask(workers[1], { type: 'open', params: { ...params, ...ort, engine: 'ortweb' }, input });
    const ms = [[], []];
    for (let i = 0; i < pairs; i++) {
      for (const w of i % 2 === 0 ? [0, 1] : [1, 0]) ms[w].push(await ask(workers[w], { type: 'time' }));
    }
    return { wrn_ms: ms[0], ort_ms: ms[1], isolated: crossOriginIsolated };
  } finally {
    workers.forEach((w) => w.terminate());
  }
};
window.benchReady = true;
