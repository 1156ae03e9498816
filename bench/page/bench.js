// The benchmark page: runs one engine in a module Worker (bench/page/worker.js), as the package runs wrn-wasm, and
// as a page should run any blocking engine. Measuring on the page's own thread is unfair to threads: the browser
// main thread may not block, so a thread waiting for its pool spins and takes a core from the pool.
// Served from the repository root by tools/bench:
//   /bench/page/?engine=wrn|ortweb&model=/path.onnx&threads=N&runs=N[&weights=int8-compute|int8|f32]
const params = Object.fromEntries(new URLSearchParams(location.search));

function inWorker(type, input) {
  const worker = new Worker(new URL('worker.js', import.meta.url), { type: 'module' });
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => (data.error ? reject(new Error(data.error)) : resolve(data.result));
    worker.onerror = (e) => reject(new Error(`worker: ${e.message}`));
    worker.postMessage({ type, params, input });
  }).finally(() => worker.terminate());
}

window.bench = async (input) => ({ ...(await inWorker('bench', input)), isolated: crossOriginIsolated });
// wrn-wasm only: the time of each node of the plan, for `runs` inferences after a warm-up (bench/profile.mjs).
window.profile = (input) => inWorker('profile', input);
window.benchReady = true;
