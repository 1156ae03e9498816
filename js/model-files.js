// The model the package ships beside its .wasm files, one copy for both builds (tools/build-pkg puts it there). Not
// compiled into the .wasm: V8 copies a module's bytes when it compiles them and again into its memory when it
// instantiates it, and each copy of 70 MB into fresh memory costs ~40 ms of page faults; the bytes handed to
// `fromBytes` are copied once. Literal URLs, so that bundlers emit both files as assets, as they do the .wasm.
export const MODEL_URL = new URL('./model.onnx', import.meta.url);
export const MANIFEST_URL = new URL('./manifest.json', import.meta.url);

/** A fetch that fails on an HTTP error status, as on a network error (for the browser entry and the worker). */
export async function fetchOk(url, signal) {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new Error(`wrn-wasm: cannot fetch ${url}: HTTP ${response.status}`);
  return response;
}
