//! tract natively on one model file, exactly as the crate loads it: load+optimise time, median inference after a
//! warm-up, peak memory (VmHWM). One JSON line on stdout; tools/bench compares it with onnxruntime's.
//!
//! usage: cargo run --release --example tract_native -- MODEL.onnx MANIFEST.json INPUT.f32 RUNS LOGITS_OUT.f32 [WEIGHTS]
//! (the last: how the weights are held, WeightMemory: f32, int8 or int8-compute; the CLI's default if left out)

use std::time::Instant;

use wrn_wasm::{Classifier, WeightMemory};

fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1));
    kb.and_then(|k| k.parse::<f64>().ok()).map_or(0.0, |k| k / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (weights, args) = match args.as_slice() {
        [rest @ .., w] if rest.len() == 5 => (w.parse::<WeightMemory>().unwrap(), rest),
        rest => (WeightMemory::default(), rest),
    };
    let [model, manifest, input, runs, logits_out] = args else {
        eprintln!("usage: tract_native MODEL.onnx MANIFEST.json INPUT.f32 RUNS LOGITS_OUT.f32 [WEIGHTS]");
        std::process::exit(2);
    };
    let bytes = std::fs::read(model).unwrap();
    let manifest = std::fs::read_to_string(manifest).unwrap();
    let input: Vec<f32> =
        std::fs::read(input).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let t = Instant::now();
    let classifier = Classifier::from_bytes_with(&bytes, &manifest, weights).unwrap();
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(bytes);
    classifier.logits(input.clone()).unwrap(); // warm-up
    let mut times = Vec::new();
    let mut logits = Vec::new();
    for _ in 0..runs.parse::<usize>().unwrap() {
        let t = Instant::now();
        logits = classifier.logits(input.clone()).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(logits_out, bytes).unwrap();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "{}",
        serde_json::json!({"load_ms": load_ms, "median_ms": median, "runs_ms": times, "peak_mb": peak_mb()})
    );
}
