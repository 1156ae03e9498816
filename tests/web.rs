//! The wasm boundary, run in Node and in headless Chromium by wasm-bindgen-test (tools/test-wasm).
#![cfg(target_arch = "wasm32")]

use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use wrn_wasm::web::WasmClassifier;

const CHELSEA_PNG: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/www/samples/chelsea.png"));

fn chelsea() -> (Vec<u8>, u32, u32) {
    let img = image::load_from_memory(CHELSEA_PNG).unwrap().into_rgba8();
    let (w, h) = img.dimensions();
    (img.into_raw(), w, h)
}

fn field(o: &wasm_bindgen::JsValue, k: &str) -> wasm_bindgen::JsValue {
    js_sys::Reflect::get(o, &k.into()).unwrap()
}

fn error_message(e: wasm_bindgen::JsValue) -> String {
    e.dyn_into::<js_sys::Error>().expect("errors cross as JS Error objects").message().into()
}

#[wasm_bindgen_test]
fn classifies_and_returns_plain_objects() {
    let c = WasmClassifier::load_embedded(None).unwrap();
    let (rgba, w, h) = chelsea();
    let top = c.classify(&rgba, w, h, 5).unwrap();
    assert_eq!(top.length(), 5);
    let scores = c.scores(&rgba, w, h).unwrap();
    assert_eq!(scores.len(), 1000);
    assert!((scores.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    let mut previous = f64::INFINITY;
    for p in top.iter() {
        let index = field(&p, "index").as_f64().unwrap() as usize;
        let score = field(&p, "score").as_f64().unwrap();
        assert!(score <= previous);
        previous = score;
        assert!((score - scores[index] as f64).abs() < 1e-7, "top-k score is the class's probability");
        assert!(field(&p, "wnid").as_string().unwrap().starts_with('n'));
        assert!(!field(&p, "label").as_string().unwrap().is_empty());
    }
    let info: serde_json::Value = serde_json::from_str(&c.manifest_json()).unwrap();
    assert_eq!(info["params"], 68_883_240);
    assert!(info["weights"]["source"].is_string());
}

#[wasm_bindgen_test]
fn bad_input_is_a_js_error_and_the_classifier_keeps_working() {
    let c = WasmClassifier::load_embedded(None).unwrap();
    let (rgba, w, h) = chelsea();
    let before = c.scores(&rgba, w, h).unwrap();
    let wrong_length = c.classify(&rgba[4..], w, h, 5).map(|_| ()).unwrap_err();
    assert!(error_message(wrong_length.into()).contains("RGBA needs"));
    assert!(error_message(c.classify(&[], 0, 0, 5).map(|_| ()).unwrap_err().into()).contains("at least 1 pixel"));
    assert!(error_message(c.classify(&[], 100_000, 100_000, 5).map(|_| ()).unwrap_err().into()).contains("limit"));
    assert!(error_message(c.classify(&rgba, w, h, 0).map(|_| ()).unwrap_err().into()).contains("topK"));
    assert_eq!(c.scores(&rgba, w, h).unwrap(), before);
}

#[wasm_bindgen_test]
fn corrupt_model_bytes_are_a_js_error() {
    let model = wrn_wasm::embedded_model();
    for bytes in [&model[..model.len() / 3], &[1u8, 2, 3][..], &[][..]] {
        let e = WasmClassifier::from_bytes(bytes.to_vec(), None, None).map(|_| ()).unwrap_err();
        assert!(error_message(e.into()).starts_with("model error"));
    }
    let e = WasmClassifier::from_bytes(model.to_vec(), Some("{}".into()), None).map(|_| ()).unwrap_err();
    assert!(error_message(e.into()).starts_with("invalid manifest"));
    // A good load after all that.
    let c = WasmClassifier::from_bytes(model.to_vec(), None, None).unwrap();
    let (rgba, w, h) = chelsea();
    assert_eq!(c.classify(&rgba, w, h, 3).unwrap().length(), 3);
}

/// In wasm the weights stay int8 and the products run in integer arithmetic unless asked otherwise. "int8" (int8
/// weights, f32 products) and "f32" give the same logits; the default is within 2e-4 of their range (as natively
/// against onnxruntime, tests/parity_onnxruntime.rs).
#[wasm_bindgen_test]
fn weights_int8_compute_by_default_int8_and_f32_on_request() {
    let input: Vec<f32> = (0..3 * 224 * 224).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let logits = |weights: Option<&str>, matrices: usize, matmuls: usize, winograd: usize| {
        let c = WasmClassifier::load_embedded(weights.map(String::from)).unwrap();
        let counts = (c.int8_matrices(), c.int8_matmuls(), c.winograd_convs());
        assert_eq!(counts, (matrices, matmuls, winograd), "{weights:?}");
        c.logits(input.clone()).unwrap()
    };
    // WRN-50-2's 53 convolutions and its fc; by default, 11 of the 3x3 convolutions run as Winograd's
    // (src/winograd.rs), the others as int8 matmuls.
    let default = logits(None, 43, 43, 11);
    let int8 = logits(Some("int8"), 54, 0, 0);
    let f32 = logits(Some("f32"), 0, 0, 0);
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let spread = f32.iter().copied().fold(f32::MIN, f32::max) - f32.iter().copied().fold(f32::MAX, f32::min);
    assert!(spread > 0.1, "logits are nearly constant, the comparison would prove little");
    assert!(max_diff(&int8, &f32) <= 1e-4, "int8 and f32 weights differ by {}", max_diff(&int8, &f32));
    let diff = max_diff(&default, &f32);
    assert!(diff <= 2e-4 * spread, "integer arithmetic differs from f32 by {diff} (logit range {spread})");
    let e = WasmClassifier::load_embedded(Some("int4".into())).map(|_| ()).unwrap_err();
    assert!(error_message(e.into()).contains("\"int8-compute\" or \"f32\""));
}

/// The package's path: the model file's bytes handed over (fromBytes, which copies them into wasm memory once) are
/// read in place as the embedded model's are, with the same logits bit for bit.
#[wasm_bindgen_test]
fn bytes_handed_over_are_read_in_place_like_the_embedded_models() {
    let input: Vec<f32> = (0..3 * 224 * 224).map(|i| ((i * 7919) % 997) as f32 / 498.5 - 1.0).collect();
    let embedded = WasmClassifier::load_embedded(None).unwrap();
    let handed_over = WasmClassifier::from_bytes(wrn_wasm::embedded_model().to_vec(), None, None).unwrap();
    assert!(embedded.int8_weights_in_place() > 0, "the embedded model's weights are read in place");
    assert_eq!(handed_over.int8_weights_in_place(), embedded.int8_weights_in_place());
    assert_eq!(handed_over.logits(input.clone()).unwrap(), embedded.logits(input).unwrap());
}

/// profile: one JSON row per node of the plan, timed with the JS clock, each matmul once.
#[wasm_bindgen_test]
fn profile_lists_the_plan_with_times() {
    let c = WasmClassifier::load_embedded(None).unwrap();
    let rows: serde_json::Value = serde_json::from_str(&c.profile(vec![0.5; 3 * 224 * 224]).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    let matmuls = rows.iter().filter(|r| r["op"] == "OptMatMul").count();
    assert_eq!(matmuls, c.int8_matmuls());
    assert!(rows.iter().all(|r| r["node"].is_string() && r["ms"].as_f64().is_some_and(|ms| ms >= 0.0)));
    let total: f64 = rows.iter().map(|r| r["ms"].as_f64().unwrap()).sum();
    assert!(total > 1.0, "an inference of WRN-50-2 takes time: {total} ms");
    assert!(error_message(c.profile(vec![0.5; 3]).map(|_| ()).unwrap_err().into()).contains("does not fit"));
}
