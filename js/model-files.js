// The model the package ships beside its .wasm files, one copy for both builds (tools/build-pkg puts it there). Not
// compiled into the .wasm: V8 copies a module's bytes when it compiles them and again into its memory when it
// instantiates it, and each copy of 70 MB into fresh memory costs ~40 ms of page faults; the bytes handed to
// `fromBytes` are copied once. Literal URLs, so that bundlers emit both files as assets, as they do the .wasm.
export const MODEL_URL = new URL('./model.onnx', import.meta.url);
export const MANIFEST_URL = new URL('./manifest.json', import.meta.url);
