//! Without AMX (in wasm, and natively on CPUs without it), int8 compute runs WRN-50-2's 3x3 convolutions of stride 1
//! on images of 14 x 14 and more as Winograd's F(2x2, 3x3) (src/winograd.rs): 11 of its 16. Their activations are
//! rounded after the transform, so the logits differ from the plain int8 compute's, within the same tolerance of
//! onnxruntime's. A test binary of its own: turning AMX and Winograd off is process-wide.

mod common;

use common::*;
use wrn_wasm::{Classifier, Manifest, WeightMemory, int8_amx, winograd_off};

#[test]
fn winograd_convolutions_match_onnxruntime() {
    int8_amx::turn_off(true);
    let manifest = Manifest::from_json(wrn_wasm::embedded_manifest()).unwrap();
    let model = root().join("model").join(&manifest.model_file);
    let classifier = Classifier::embedded_with(WeightMemory::Int8Compute).unwrap();
    assert_eq!((classifier.winograd_convs(), classifier.int8_matmuls()), (11, 43));
    let input = vec![0.5; manifest.input.shape.iter().product()];
    let profile = classifier.profile(input, &|| 0.0).unwrap();
    assert_eq!(profile.nodes.iter().filter(|n| n.op == "WinogradConv").count(), 11, "in the plan that runs");
    check_within("winograd", &classifier, &model, |spread| INT8_COMPUTE_TOLERANCE * spread);

    // Off, the same convolutions are matmuls again.
    winograd_off(true);
    let plain = Classifier::embedded_with(WeightMemory::Int8Compute).unwrap();
    assert_eq!((plain.winograd_convs(), plain.int8_matmuls()), (0, 54));
    let (name, x) = inputs(&plain).swap_remove(0);
    let diff = max_abs_diff(&classifier.logits(x.clone()).unwrap(), &plain.logits(x).unwrap());
    assert!(diff > 0.0, "{name}: Winograd rounds its activations after the transform, so the logits move a little");
    winograd_off(false);
    int8_amx::turn_off(false);
}
