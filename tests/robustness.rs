//! Bad input gives a clear error, never a panic, and the same classifier keeps classifying afterwards.

mod common;

use common::*;
use wrn_wasm::{Classifier, Error, Manifest, Rgba, WeightMemory};

fn good_scores(c: &Classifier, rgba: &[u8], w: u32, h: u32) -> Vec<f32> {
    c.scores(Rgba::new(rgba, w, h).unwrap()).unwrap()
}

#[test]
fn bad_images_are_errors_and_the_classifier_still_works() {
    let classifier = Classifier::embedded().unwrap();
    let (rgba, w, h) = load_rgba(&sample("coffee.png"));
    let before = good_scores(&classifier, &rgba, w, h);

    let bad: Vec<(&str, Result<Rgba, Error>)> = vec![
        ("length not width*height*4", Rgba::new(&rgba[1..], w, h)),
        ("zero width", Rgba::new(&[], 0, 10)),
        ("zero height", Rgba::new(&[], 10, 0)),
        ("100000 x 100000", Rgba::new(&rgba, 100_000, 100_000)),
        ("RGB instead of RGBA", Rgba::new(&rgba[..(w * h * 3) as usize], w, h)),
    ];
    for (what, result) in bad {
        let err = result.expect_err(what);
        assert!(matches!(err, Error::InvalidImage(_)), "{what}: {err}");
        assert!(err.to_string().starts_with("invalid image: "), "{what}: {err}");
    }

    let after = good_scores(&classifier, &rgba, w, h);
    assert_eq!(before, after, "an error changed what the classifier computes");
}

/// A well-formed protobuf whose largest int8 weight lacks its last byte.
fn weight_one_byte_short(model: &[u8]) -> Vec<u8> {
    use prost::Message;
    let mut proto = tract_onnx::pb::ModelProto::decode(model).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let largest = graph.initializer.iter_mut().max_by_key(|t| t.raw_data.len()).unwrap();
    largest.raw_data.pop();
    proto.encode_to_vec()
}

#[test]
fn bad_model_bytes_are_errors() {
    let model = wrn_wasm::embedded_model();
    let manifest = wrn_wasm::embedded_manifest();
    let mut garbage_head = model[..4096].to_vec();
    garbage_head.iter_mut().for_each(|b| *b = b.wrapping_mul(31).wrapping_add(7));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated to half", model[..model.len() / 2].to_vec()),
        ("truncated to 100 bytes", model[..100].to_vec()),
        ("garbage", noise(1 << 16, 3)),
        ("scrambled header", garbage_head),
        ("a weight one byte short", weight_one_byte_short(model)),
    ];
    for weights in [WeightMemory::F32, WeightMemory::Int8] {
        for (what, bytes) in &cases {
            match Classifier::from_bytes_with(bytes, manifest, weights) {
                Err(Error::Model(msg)) => assert!(!msg.is_empty(), "{what}"),
                Err(e) => panic!("{what} ({weights:?}): unexpected error kind {e}"),
                Ok(_) => panic!("{what} ({weights:?}): a corrupt model loaded"),
            }
        }
    }
    let bad_manifests = [("not JSON", "{"), ("missing fields", "{}")];
    for (what, m) in bad_manifests {
        assert!(matches!(Classifier::from_bytes(model, m), Err(Error::Manifest(_))), "{what}");
    }
    // After all of that, a good load still works.
    let (rgba, w, h) = load_rgba(&sample("chelsea.png"));
    let c = Classifier::from_bytes(model, manifest).unwrap();
    assert_eq!(c.classify(Rgba::new(&rgba, w, h).unwrap(), 5).unwrap().len(), 5);
}

/// The embedded manifest, describing other weights than the embedded model's.
fn manifest_of_other_weights() -> serde_json::Value {
    let mut other: serde_json::Value = serde_json::from_str(wrn_wasm::embedded_manifest()).unwrap();
    other["weights"]["source"] = "file:other.safetensors".into();
    other["weights"]["sha256"] = "0123456789ab".repeat(5).into();
    other["weights"]["synthetic"] = false.into();
    other
}

#[test]
fn a_manifest_of_other_weights_is_refused() {
    use prost::Message;
    let model = wrn_wasm::embedded_model();
    let held = Manifest::from_json(wrn_wasm::embedded_manifest()).unwrap().weights.source;
    let other = manifest_of_other_weights().to_string();
    let err = Classifier::from_bytes(model, &other).expect_err("another build's manifest");
    let msg = err.to_string();
    assert!(matches!(err, Error::Manifest(_)), "{msg}");
    assert!(msg.contains(&format!("holds the weights {held} ")), "{msg}");
    assert!(msg.contains("describes file:other.safetensors"), "{msg}");
    assert!(msg.contains("pass the manifest.json built with this model"), "{msg}");

    // A model without the metadata (exported elsewhere) is taken as its manifest describes it.
    let mut proto = tract_onnx::pb::ModelProto::decode(model).unwrap();
    assert!(proto.metadata_props.iter().any(|p| p.key == "weights_sha256"), "tools/build_model.py writes it");
    proto.metadata_props.clear();
    let c = Classifier::from_bytes(&proto.encode_to_vec(), &other).unwrap();
    assert_eq!(c.manifest().weights.source, "file:other.safetensors");
}

#[test]
fn the_weights_are_checked_before_the_model_is_read() {
    use prost::Message;
    // Metadata and no graph: loaded, it would be a model error.
    let entry =
        |key: &str, value: &str| tract_onnx::pb::StringStringEntryProto { key: key.into(), value: value.into() };
    let metadata_props = vec![entry("weights", "a"), entry("weights_sha256", "aaaa")];
    let no_graph = tract_onnx::pb::ModelProto { metadata_props, ..Default::default() }.encode_to_vec();
    let err = Classifier::from_bytes(&no_graph, &manifest_of_other_weights().to_string()).unwrap_err();
    assert!(matches!(err, Error::Manifest(ref m) if m.contains("holds the weights a (sha256 aaaa...)")), "{err}");
}
