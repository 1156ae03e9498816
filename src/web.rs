//! The WebAssembly boundary: the only module that knows wasm-bindgen, kept thin.
//!
//! Only typed arrays, numbers, strings and plain objects of them cross it. Every entry point returns
//! `Result<_, JsError>`: a Rust panic would kill the wasm instance, so no input may reach one, and after an error the
//! same classifier keeps working.
//! The package's JS (js/) turns images into RGBA bytes and wraps this in the public `Classifier`.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::{Classifier, Prediction, Rgba, WeightMemory};

#[wasm_bindgen(start)]
fn start() {
    // For the unforeseen: a panic still kills the instance, but says why in the console first.
    console_error_panic_hook::set_once();
}

/// Starts `n` workers sharing this module's memory, Web Workers or Node's worker_threads (js/rayon-workers.js), as
/// rayon's pool (the threaded build only; JS: `await initThreadPool(n)`).
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// Runs inference on the pool `initThreadPool` started (n > 1) or on the calling thread (n = 1).
#[cfg(feature = "threads")]
#[wasm_bindgen(js_name = useThreads)]
pub fn use_threads(n: usize) {
    crate::model::use_threads(n);
}

/// An image file's bytes (JPEG, PNG) as `{ data: Uint8Array (RGBA8), width, height }`, EXIF orientation
/// applied: for hosts without a browser's decoders (Node).
#[cfg(feature = "decode")]
#[wasm_bindgen(js_name = decodeImage)]
pub fn decode_image(bytes: &[u8]) -> Result<Object, JsError> {
    let image = crate::decode_image(bytes)?;
    let data = js_sys::Uint8Array::from(image.rgba.as_slice());
    object(&[("data", data.into()), ("width", image.width.into()), ("height", image.height.into())])
}

/// The classifier as the JS glue sees it (the package exports a friendlier `Classifier` on top).
#[wasm_bindgen]
pub struct WasmClassifier {
    inner: Classifier,
}

#[wasm_bindgen]
impl WasmClassifier {
    /// The model compiled into this .wasm (builds with the `embed` feature, as the wasm tests'; the package's builds
    /// have none, and load the model it ships with `fromBytes`). `weights` as for `fromBytes`.
    #[cfg(feature = "embed")]
    #[wasm_bindgen(js_name = loadEmbedded)]
    pub fn load_embedded(weights: Option<String>) -> Result<WasmClassifier, JsError> {
        Ok(WasmClassifier { inner: Classifier::embedded_with(weight_memory(weights)?)? })
    }

    /// A model from ONNX bytes and its manifest.json text. Without one, the manifest this .wasm was built with (the
    /// package's builds carry the manifest of the model they ship: `manifest` feature), which must describe the
    /// weights the model holds.
    /// `weights`: "int8-compute" (the default), "int8" or "f32", as `WeightMemory` says. The bytes are copied into
    /// wasm memory once, and the int8 weights the kernel reads as rows are read there (how the package loads the model
    /// it ships beside the .wasm).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(
        model: Vec<u8>,
        manifest_json: Option<String>,
        weights: Option<String>,
    ) -> Result<WasmClassifier, JsError> {
        let manifest = match manifest_json {
            Some(m) => m,
            #[cfg(feature = "manifest")]
            None => crate::embedded_manifest().to_owned(),
            #[cfg(not(feature = "manifest"))]
            None => {
                return Err(JsError::new("fromBytes needs the model's manifest.json (this build embeds none)"));
            }
        };
        Ok(WasmClassifier { inner: Classifier::from_owned_bytes_with(model, &manifest, weight_memory(weights)?)? })
    }

    /// Top-k of an RGBA8 image: an array of `{ index, label, wnid, score }`, best first.
    pub fn classify(&self, rgba: &[u8], width: u32, height: u32, top_k: u32) -> Result<Array, JsError> {
        if top_k == 0 {
            return Err(JsError::new("topK must be at least 1"));
        }
        let image = Rgba::new(rgba, width, height)?;
        let top = self.inner.classify(image, top_k as usize)?;
        top.iter().map(prediction_object).collect()
    }

    /// Probabilities of all classes, in index order.
    pub fn scores(&self, rgba: &[u8], width: u32, height: u32) -> Result<Vec<f32>, JsError> {
        Ok(self.inner.scores(Rgba::new(rgba, width, height)?)?)
    }

    /// Raw logits for an already preprocessed NCHW f32 input (the manifest's `input.shape`), for benchmarks and
    /// parity checks against other engines.
    pub fn logits(&self, input: Vec<f32>) -> Result<Vec<f32>, JsError> {
        Ok(self.inner.logits(input)?)
    }

    /// Times each node of one inference on an already preprocessed input (as `logits` takes it), with the JS
    /// `performance.now()`: a JSON array of `{ node, op, ms }` in execution order. Where the time goes, in the
    /// browser at hand (bench/profile.mjs).
    pub fn profile(&self, input: Vec<f32>) -> Result<String, JsError> {
        let performance = Reflect::get(&js_sys::global(), &"performance".into())
            .ok()
            .and_then(|p| p.dyn_into::<Object>().ok())
            .ok_or_else(|| JsError::new("profile needs performance.now()"))?;
        let now = Reflect::get(&performance, &"now".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .ok_or_else(|| JsError::new("profile needs performance.now()"))?;
        let clock = || now.call0(&performance).ok().and_then(|t| t.as_f64()).unwrap_or(f64::NAN);
        let profile = self.inner.profile(input, &clock)?;
        serde_json::to_string(&profile.nodes).map_err(|e| JsError::new(&format!("profile: {e}")))
    }

    /// How many matrix products run in integer arithmetic (43 for WRN-50-2 with the default weights, besides its 11
    /// Winograd convolutions).
    #[wasm_bindgen(js_name = int8Matmuls)]
    pub fn int8_matmuls(&self) -> usize {
        self.inner.int8_matmuls()
    }

    /// How many 3x3 convolutions run as Winograd's F(2x2, 3x3), in integer arithmetic too (11 for WRN-50-2 with the
    /// default weights).
    #[wasm_bindgen(js_name = winogradConvs)]
    pub fn winograd_convs(&self) -> usize {
        self.inner.winograd_convs()
    }

    /// How many weight matrices are held as int8 panels (0 with weights "f32").
    #[wasm_bindgen(js_name = int8Matrices)]
    pub fn int8_matrices(&self) -> usize {
        self.inner.int8_matrices()
    }

    /// How many matrix products read their int8 weights where they lie in the model's bytes rather than from a copy
    /// (with "int8-compute" on one thread: those tract takes as its first operand).
    #[wasm_bindgen(js_name = int8WeightsInPlace)]
    pub fn int8_weights_in_place(&self) -> usize {
        self.inner.int8_weights_in_place()
    }

    /// The manifest (weights, params, sha256, recipe) as JSON text.
    #[wasm_bindgen(js_name = manifestJson)]
    pub fn manifest_json(&self) -> String {
        self.inner.manifest().to_json()
    }
}

fn weight_memory(weights: Option<String>) -> Result<WeightMemory, JsError> {
    Ok(weights.as_deref().map(str::parse).transpose()?.unwrap_or_default())
}

fn prediction_object(p: &Prediction) -> Result<JsValue, JsError> {
    let fields = [
        ("index", (p.index as u32).into()),
        ("label", p.label.into()),
        ("wnid", p.wnid.into()),
        ("score", p.score.into()),
    ];
    Ok(object(&fields)?.into())
}

/// A plain JS object with these properties.
fn object(fields: &[(&str, JsValue)]) -> Result<Object, JsError> {
    let o = Object::new();
    for (key, value) in fields {
        Reflect::set(&o, &(*key).into(), value).map_err(|_| JsError::new("cannot build result"))?;
    }
    Ok(o)
}
