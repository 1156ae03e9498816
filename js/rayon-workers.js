// The threaded build's thread starter: tools/build-pkg puts this file in place of wasm-bindgen-rayon's
// workerHelpers.no-bundler.js, whose `startWorkers(module, memory, builder)` the glue's `initThreadPool(n)` calls.
// Browsers get that helper's Web Workers, as it starts them (wasm-bindgen-rayon 1.3, Google, Apache-2.0); Node, which
// has no Web Workers, gets worker_threads. Either way each worker instantiates the same module on the same shared
// memory, says it is ready, then becomes one rayon thread (`wbg_rayon_start_worker`, which never returns); once all
// are ready, `builder.build()` makes them rayon's global pool.

// Node (or a runtime with its worker_threads), and neither a page nor a Web Worker.
const inNode = typeof globalThis.process?.versions?.node === 'string' && typeof window === 'undefined' &&
  typeof WorkerGlobalScope === 'undefined';

/** What a worker needs: the compiled module, the shared memory, the threads' hand-over channel, the glue's URL. */
function workerInit(module, memory, builder) {
  return { type: 'wasm_bindgen_worker_init', module, memory, receiver: builder.receiver(), mainJS: builder.mainJS() };
}

/** In a worker: the module on the shared memory, then one of rayon's threads for good. */
async function runWorker(data, ready) {
  const glue = await import(data.mainJS);
  await glue.default({ module_or_path: data.module, memory: data.memory });
  ready();
  glue.wbg_rayon_start_worker(data.receiver);
}

// --- Browsers ---

function waitForMsgType(target, type) {
  return new Promise((resolve) => {
    target.addEventListener('message', function onMsg({ data }) {
      if (data == null || data.type !== type) return;
      target.removeEventListener('message', onMsg);
      resolve(data);
    });
  });
}

if (!inNode) {
  // This file is also the workers' script: a worker waits for its init message (other messages may reach a page).
  waitForMsgType(self, 'wasm_bindgen_worker_init').then((data) =>
    runWorker(data, () => postMessage({ type: 'wasm_bindgen_worker_ready' })));
}

// Kept referenced: Firefox collects Web Workers that share memory with the page but have no live `Worker` object.
let workers;

async function startWebWorkers(init, n) {
  return Promise.all(Array.from({ length: n }, async () => {
    // Started from a blob of this script, so that it works when the script is served from another origin (a CDN).
    const url = URL.createObjectURL(await fetch(import.meta.url).then((r) => r.blob()));
    const worker = new Worker(url, { type: 'module' });
    worker.postMessage(init);
    await waitForMsgType(worker, 'wasm_bindgen_worker_ready');
    URL.revokeObjectURL(url);
    return worker;
  }));
}

// --- Node ---

const POOL_WORKER = 'wrn-wasm rayon worker';

if (inNode) {
  const { parentPort, workerData } = await import('node:worker_threads');
  if (workerData === POOL_WORKER) {
    parentPort.once('message', (data) => runWorker(data, () => parentPort.postMessage({ type: 'wasm_bindgen_worker_ready' })));
  }
}

async function startNodeWorkers(init, n) {
  const { Worker } = await import('node:worker_threads');
  const started = Array.from({ length: n }, () => new Worker(new URL(import.meta.url), { workerData: POOL_WORKER }));
  try {
    return await Promise.all(started.map((worker) => new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`wrn-wasm: a thread-pool worker exited (code ${code}) before it was ready`)));
      worker.once('message', () => {
        worker.removeAllListeners('exit');
        // A rayon thread never ends: unreferenced, it does not keep the process alive once the app is done.
        worker.unref();
        resolve(worker);
      });
      worker.postMessage(init);
    })));
  } catch (e) {
    // No pool without all of them: none is left behind.
    for (const worker of started) worker.terminate();
    throw e;
  }
}

export async function startWorkers(module, memory, builder) {
  const n = builder.numThreads();
  if (n === 0) throw new Error('num_threads must be > 0.');
  const init = workerInit(module, memory, builder);
  workers = await (inNode ? startNodeWorkers(init, n) : startWebWorkers(init, n));
  // Waits until every thread has started: the workers are ready, so this is short (and Node's main thread may wait).
  builder.build();
}
