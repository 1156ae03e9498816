//! tract's logits equal onnxruntime's on the same model file and the same input tensor (max abs diff <= 1e-4),
//! for the embedded weight-only int8 model and for the fp32 model built from the same weights; with int8
//! arithmetic, which rounds activations to 11-15 bits, within INT8_COMPUTE_TOLERANCE of the logit range.

mod common;

use common::*;
use wrn_wasm::{Classifier, Manifest, WeightMemory};

const TOLERANCE: f32 = 1e-4;

fn check_against_onnxruntime(label: &str, classifier: &Classifier, model_path: &std::path::Path) {
    check_within(label, classifier, model_path, |_spread| TOLERANCE)
}

#[test]
fn int8_logits_match_onnxruntime() {
    let manifest = Manifest::from_json(wrn_wasm::embedded_manifest()).unwrap();
    let classifier = Classifier::embedded_with(WeightMemory::F32).unwrap();
    check_against_onnxruntime("int8", &classifier, &root().join("model").join(&manifest.model_file));
}

/// The same file with the large weights kept int8 in memory and widened panel by panel (the wasm default).
#[test]
fn int8_resident_logits_match_onnxruntime() {
    let manifest = Manifest::from_json(wrn_wasm::embedded_manifest()).unwrap();
    let classifier = Classifier::embedded_with(WeightMemory::Int8).unwrap();
    // WRN-50-2's 53 convolutions and its fc.
    assert_eq!(classifier.int8_matrices(), 54, "not every weight is held as int8 panels");
    check_against_onnxruntime("int8-resident", &classifier, &root().join("model").join(&manifest.model_file));
}

/// The same file on integer arithmetic (the int8 kernel, src/int8_compute.rs; natively on AMX where the CPU has it,
/// which tests/int8_amx.rs checks against the pair kernel).
#[test]
fn int8_compute_logits_match_onnxruntime() {
    let manifest = Manifest::from_json(wrn_wasm::embedded_manifest()).unwrap();
    let classifier = Classifier::embedded_with(WeightMemory::Int8Compute).unwrap();
    // Without AMX, 11 of the 3x3 convolutions run as Winograd's (tests/winograd.rs), in integer arithmetic too.
    let integer = classifier.int8_matmuls() + classifier.winograd_convs();
    assert_eq!(integer, 54, "not every convolution and matrix product runs in integer arithmetic");
    let model = root().join("model").join(&manifest.model_file);
    check_within("int8-compute", &classifier, &model, |spread| INT8_COMPUTE_TOLERANCE * spread);
}

#[test]
fn fp32_logits_match_onnxruntime() {
    let manifest = Manifest::from_json(wrn_wasm::embedded_manifest()).unwrap();
    let fp32 = manifest
        .extra
        .get("fp32_model_file")
        .and_then(|v| v.as_str())
        .expect("model/manifest.json has no fp32 model: tools/test builds it with tools/build_model.py --fp32");
    let path = root().join("model").join(fp32);
    let classifier = Classifier::from_bytes(&std::fs::read(&path).unwrap(), wrn_wasm::embedded_manifest()).unwrap();
    check_against_onnxruntime("fp32", &classifier, &path);
}
