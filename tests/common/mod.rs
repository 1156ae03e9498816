//! Shared by the integration tests: paths, the Python that runs the independent references, images.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use wrn_wasm::{Classifier, Rgba};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with Pillow and onnxruntime: $WRN_PYTHON, or the .venv that tools/setup makes.
pub fn python() -> PathBuf {
    let p = std::env::var_os("WRN_PYTHON").map(PathBuf::from).unwrap_or_else(|| root().join(".venv/bin/python"));
    assert!(p.exists(), "no Python at {} for the reference checks: run tools/setup (or set WRN_PYTHON)", p.display());
    p
}

/// Runs a script of tests/reference with the given arguments; fails the test with its output if it fails.
pub fn run_reference(script: &str, args: &[&Path]) {
    let out = Command::new(python()).arg(root().join("tests/reference").join(script)).args(args).output().unwrap();
    assert!(out.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// A sample photo (tools/fetch_samples.py puts them in www/samples/).
pub fn sample(name: &str) -> PathBuf {
    let p = root().join("www/samples").join(name);
    assert!(p.exists(), "missing sample photo {}: run tools/fetch_samples.py", p.display());
    p
}

/// Decodes an image file to (RGBA8, width, height) with the image crate.
pub fn load_rgba(path: &Path) -> (Vec<u8>, u32, u32) {
    let img = image::open(path).unwrap().into_rgba8();
    let (w, h) = img.dimensions();
    (img.into_raw(), w, h)
}

/// A fresh empty folder under target/ for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A deterministic pseudo-random byte stream (xorshift), for synthetic images.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// For int8 arithmetic: max |tract - onnxruntime| over the range of onnxruntime's logits.
pub const INT8_COMPUTE_TOLERANCE: f32 = 2e-4;

/// The two sample photos, preprocessed.
pub fn inputs(classifier: &Classifier) -> Vec<(&'static str, Vec<f32>)> {
    ["chelsea.png", "rocket.jpg"]
        .into_iter()
        .map(|name| {
            let (rgba, w, h) = load_rgba(&sample(name));
            (name, classifier.preprocess(Rgba::new(&rgba, w, h).unwrap()).unwrap())
        })
        .collect()
}

/// `classifier`'s logits against onnxruntime's on `model_path`, for both sample photos: max |tract - onnxruntime|
/// within `tolerance(range of onnxruntime's logits)`.
pub fn check_within(
    label: &str,
    classifier: &Classifier,
    model_path: &std::path::Path,
    tolerance: impl Fn(f32) -> f32,
) {
    let dir = scratch(&format!("parity_{label}"));
    let inputs = inputs(classifier);
    let mut files = Vec::new();
    for (name, x) in &inputs {
        let path = dir.join(format!("{name}.f32"));
        write_f32(&path, x);
        files.push(path);
    }
    let mut args: Vec<&std::path::Path> = vec![model_path];
    args.extend(files.iter().map(|p| p.as_path()));
    run_reference("ort_logits.py", &args);
    for ((name, x), path) in inputs.into_iter().zip(&files) {
        let reference = read_f32(&path.with_extension("logits.f32"));
        let ours = classifier.logits(x).unwrap();
        let diff = max_abs_diff(&ours, &reference);
        let spread =
            reference.iter().copied().fold(f32::MIN, f32::max) - reference.iter().copied().fold(f32::MAX, f32::min);
        eprintln!("{label} {name}: max |tract - onnxruntime| = {diff:e} (logit range {spread})");
        assert!(diff <= tolerance(spread), "{label} {name}: tract differs from onnxruntime by {diff}");
        assert!(spread > 0.1, "{label} {name}: logits are nearly constant, the comparison would prove little");
    }
}
