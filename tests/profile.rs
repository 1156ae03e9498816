//! Classifier::profile runs the same network as logits, and times each node of the plan on its own.

use std::cell::Cell;

use wrn_wasm::{Classifier, WeightMemory};

#[test]
fn profile_times_every_node_of_the_same_inference() {
    let classifier = Classifier::embedded_with(WeightMemory::Int8Compute).unwrap();
    let len = classifier.manifest().input.shape.iter().product();
    let input: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    // A clock that advances by one at every reading: each node must read it exactly once before and once after.
    let ticks = Cell::new(0.0);
    let clock = || {
        ticks.set(ticks.get() + 1.0);
        ticks.get()
    };
    let profile = classifier.profile(input.clone(), &clock).unwrap();
    assert_eq!(profile.logits, classifier.logits(input).unwrap(), "the same network, the same logits");
    assert!(profile.nodes.iter().all(|n| n.ms == 1.0), "one interval per node");
    assert_eq!(ticks.get(), 2.0 * profile.nodes.len() as f64);
    let count = |op: &str| profile.nodes.iter().filter(|n| n.op == op).count();
    assert_eq!(count("OptMatMul"), classifier.int8_matmuls(), "every matmul of the plan, each once");
    // Every matmul's activations quantised straight from the tensor tract's im2col or packer would have read.
    assert_eq!(count("QuantizeGathered"), classifier.int8_matmuls());
    assert_eq!(count("LazyIm2col") + count("OptMatMulPack") + count("QuantizeActivations"), 0);
    assert!(profile.nodes.iter().any(|n| n.node.contains("layer4") && n.op == "OptMatMul"));
}
