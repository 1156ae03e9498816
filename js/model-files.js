// The model the package ships beside its .wasm files, one copy for both builds (tools/build-pkg puts it there). Not
// compiled into the .wasm: V8 copies a module's bytes when it compiles them and again into its memory when it
// instantiates it, and each copy of 70 MB into fresh memory costs ~40 ms of page faults; the bytes handed to
// `fromBytes` are copied once. A literal URL, so that bundlers emit the file as an asset, as they do the .wasm.
// Its manifest (1 KB) is compiled into the .wasm files instead: nothing more to fetch, and no data: URL (bundlers
// inline small assets so) for a page's Content-Security-Policy to forbid.
export const MODEL_URL = new URL('./model.onnx', import.meta.url);

/** A fetch that fails on an HTTP error status, as on a network error (for the browser entry and the worker). */
export async function fetchOk(url, signal) {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new Error(`wrn-wasm: cannot fetch ${url}: HTTP ${response.status}`);
  return response;
}
