//! Natively, on a CPU with AMX, int8 compute runs on AMX's tile multiplies (src/int8_amx.rs): the same integer sums
//! as the pair kernel's, so the same logits bit for bit. So does the pair kernel reading its weight panels as they
//! are (on AVX-512 VNNI) rather than widened. A test binary of its own: both switches are process-wide.

mod common;

use common::*;
use wrn_wasm::{Classifier, Rgba, WeightMemory, int8_amx, int8_matmul, winograd_off};

/// WRN-50-2's matmuls whose weights tract takes as its first operand, natively (the 1x1 convolutions on images with
/// more pixels than output channels take them as the second: 17 of 54). The pair kernel reads those as rows.
const WEIGHTS_READ_AS_ROWS: usize = 37;

#[test]
fn amx_and_unwidened_panels_give_the_pair_kernels_logits_bit_for_bit() {
    // What the CPU says (Linux's flags), against what the crate found: a CPU with AMX must get to use it.
    let cpu_flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_has_amx = cpu_flags.contains(" amx_int8");
    assert_eq!(int8_amx::available(), cpu_has_amx, "AMX on this CPU, but not in use (or the other way round)");

    // The pair kernel on every matmul (without AMX, int8 compute runs 11 convolutions as Winograd's instead:
    // tests/winograd.rs).
    winograd_off(true);
    int8_amx::turn_off(true);
    int8_matmul::always_widen(true);
    let pairs = Classifier::embedded_with(WeightMemory::Int8Compute).unwrap();
    assert_eq!((pairs.int8_matmuls(), pairs.int8_amx_matmuls()), (54, 0));
    // The pair kernel reads the weights it takes as rows where they lie in the embedded model's bytes, or in bytes
    // handed over to it (from_dir reads the file into bytes it hands over); from borrowed bytes, which the caller may
    // free after the load, they are copied. The same logits bit for bit.
    assert_eq!(pairs.int8_weights_in_place(), WEIGHTS_READ_AS_ROWS);
    let from_file = Classifier::from_dir(&root().join("model"), WeightMemory::Int8Compute).unwrap();
    assert_eq!(from_file.int8_weights_in_place(), WEIGHTS_READ_AS_ROWS);
    let model = std::fs::read(root().join("model").join(&from_file.manifest().model_file)).unwrap();
    let borrowed = Classifier::from_bytes_with(&model, wrn_wasm::embedded_manifest(), WeightMemory::Int8Compute);
    drop(model);
    let borrowed = borrowed.unwrap();
    assert_eq!(borrowed.int8_weights_in_place(), 0);

    // Where it reads weight panels as they are (a CPU with AVX-512 VNNI, as Linux's flags say), it packs them all.
    int8_matmul::always_widen(false);
    let cpu_has_vnni = cpu_flags.contains(" avx512_vnni");
    assert_eq!(int8_matmul::reads_weights_unwidened(), cpu_has_vnni && cfg!(target_arch = "x86_64"));
    let unwidened = Classifier::embedded_with(WeightMemory::Int8Compute).unwrap();
    let in_place = if int8_matmul::reads_weights_unwidened() { 0 } else { WEIGHTS_READ_AS_ROWS };
    assert_eq!((unwidened.int8_matmuls(), unwidened.int8_weights_in_place()), (54, in_place));

    int8_amx::turn_off(false);
    let amx = Classifier::embedded_with(WeightMemory::Int8Compute).unwrap();
    let on_amx = if cpu_has_amx { 54 } else { 0 };
    assert_eq!((amx.int8_matmuls(), amx.int8_amx_matmuls()), (54, on_amx));
    if !cpu_has_amx {
        eprintln!("no AMX on this CPU: the pair kernel runs both");
    }
    for name in ["chelsea.png", "rocket.jpg"] {
        let (rgba, w, h) = load_rgba(&sample(name));
        let x = pairs.preprocess(Rgba::new(&rgba, w, h).unwrap()).unwrap();
        let expected = pairs.logits(x.clone()).unwrap();
        assert_eq!(
            from_file.logits(x.clone()).unwrap(),
            expected,
            "{name}: rows in the embedded or a handed-over file"
        );
        assert_eq!(borrowed.logits(x.clone()).unwrap(), expected, "{name}: rows in place or copied");
        assert_eq!(unwidened.logits(x.clone()).unwrap(), expected, "{name}: panels unwidened or widened");
        int8_matmul::always_widen(true);
        assert_eq!(unwidened.logits(x.clone()).unwrap(), expected, "{name}: packed panels widened");
        int8_matmul::always_widen(false);
        assert_eq!(amx.logits(x).unwrap(), expected, "{name}: AMX against the pair kernel");
    }
}
