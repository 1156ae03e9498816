//! Int8 compute quantises each matmul's activations straight from the tensor that tract's im2col or packer would
//! have read (int8_compute's QuantizeGathered): the same panels as from tract's own, so the same logits bit for bit,
//! on AMX and on the pair kernel. A test binary of its own: both switches are process-wide.

mod common;

use common::*;
use wrn_wasm::{Classifier, Rgba, WeightMemory, fuse_bounds_off, int8_amx, quantize_from_tract_panels, winograd_off};

#[test]
fn activations_gathered_from_the_tensor_give_the_logits_of_tract_panels() {
    // Every matmul (Winograd's convolutions, on the pair kernel, are not: tests/winograd.rs).
    winograd_off(true);
    let kernels = if int8_amx::available() { vec![true, false] } else { vec![false] };
    for amx in kernels {
        int8_amx::turn_off(!amx);
        quantize_from_tract_panels(true);
        let from_panels = Classifier::embedded_with(WeightMemory::Int8Compute).unwrap();
        quantize_from_tract_panels(false);
        let gathered = Classifier::embedded_with(WeightMemory::Int8Compute).unwrap();
        assert_eq!(gathered.int8_matmuls(), 54);
        assert_eq!((nodes_of(&from_panels, "QuantizeActivations"), nodes_of(&gathered, "QuantizeGathered")), (54, 54));
        // The downsampling convolutions' quantisers read the values tract's Downsamples would copy, in place.
        assert_eq!((nodes_of(&from_panels, "Downsample"), nodes_of(&gathered, "Downsample")), (6, 0));
        // Every padding before an im2col convolution written in one pass (src/pad_once.rs, tested against tract's).
        assert_eq!((nodes_of(&gathered, "Pad"), nodes_of(&gathered, "PadOnce")), (0, 17));
        // Every ReLU fused into its convolution's matmul, those after a reshape too (src/fuse_through_reshape.rs):
        // the same logits as with the 17 of those apart.
        assert_eq!(nodes_of(&gathered, "OptMaxByScalar"), 0);
        fuse_bounds_off(true);
        let apart = Classifier::embedded_with(WeightMemory::Int8Compute).unwrap();
        fuse_bounds_off(false);
        assert_eq!(nodes_of(&apart, "OptMaxByScalar"), 17);
        for name in ["chelsea.png", "rocket.jpg"] {
            let (rgba, w, h) = load_rgba(&sample(name));
            let x = gathered.preprocess(Rgba::new(&rgba, w, h).unwrap()).unwrap();
            let expected = from_panels.logits(x.clone()).unwrap();
            assert_eq!(apart.logits(x.clone()).unwrap(), expected, "{name}, on AMX: {amx}, ReLUs apart");
            assert_eq!(gathered.logits(x).unwrap(), expected, "{name}, on AMX: {amx}");
        }
    }
    int8_amx::turn_off(false);
}

/// How many nodes of `op` the classifier's plan runs.
fn nodes_of(classifier: &Classifier, op: &str) -> usize {
    let input = vec![0.0; classifier.manifest().input.shape.iter().product()];
    let profile = classifier.profile(input, &|| 0.0).unwrap();
    profile.nodes.iter().filter(|n| n.op == op).count()
}
