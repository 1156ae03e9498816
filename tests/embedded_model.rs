//! The embedded model is the one its manifest describes, and the manifest carries the published architecture facts.

use sha2::{Digest, Sha256};
use wrn_wasm::Manifest;

#[test]
fn embedded_model_matches_its_manifest() {
    let m = Manifest::from_json(wrn_wasm::embedded_manifest()).unwrap();
    let sha = format!("{:x}", Sha256::digest(wrn_wasm::embedded_model()));
    assert_eq!(sha, m.model_sha256, "the embedded model is not the file manifest.json names");
    assert_eq!(m.input.shape, [1, 3, m.crop as usize, m.crop as usize]);
    assert_eq!(m.num_classes, 1000);
    let published = match m.arch.as_str() {
        "wrn50_2" => (68_883_240, 11.4e9),
        "wrn101_2" => (126_886_696, 22.8e9),
        other => panic!("unknown arch {other}"),
    };
    assert_eq!(m.params, published.0);
    assert!((m.macs as f64 / published.1 - 1.0).abs() < 0.01, "macs {}", m.macs);
    assert!(m.describe().contains(if m.weights.synthetic { "SYNTHETIC" } else { &m.weights.source }));
}
