//! Where one inference spends its time, natively: per op type and the slowest nodes, after a warm-up run.
//!
//! usage: cargo run --release --example profile_native -- MODEL_DIR [f32|int8|int8-compute] [THREADS [SLOWEST]]
//! (SLOWEST: how many of the slowest nodes to list, 15 if left out)

use std::collections::BTreeMap;
use std::time::Instant;

use wrn_wasm::{Classifier, NodeTime, WeightMemory};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.first().map_or("model", String::as_str);
    let weights: WeightMemory = args.get(1).map_or(Ok(WeightMemory::F32), |w| w.parse()).unwrap();
    let threads: usize = args.get(2).map_or(1, |t| t.parse().unwrap());
    let top: usize = args.get(3).map_or(15, |t| t.parse().unwrap());
    wrn_wasm::model::use_threads(threads);
    let classifier = Classifier::from_dir(std::path::Path::new(dir), weights).unwrap();
    let input = vec![0.5f32; classifier.manifest().input.shape.iter().product()];
    let origin = Instant::now();
    let clock = || origin.elapsed().as_secs_f64() * 1e3;
    classifier.profile(input.clone(), &clock).unwrap(); // warm-up
    let mut runs: Vec<Vec<NodeTime>> =
        (0..3).map(|_| classifier.profile(input.clone(), &clock).unwrap().nodes).collect();
    // The run with the median total.
    runs.sort_by(|a, b| total(a).total_cmp(&total(b)));
    print!("{}", report(&runs[1], top));
}

fn total(times: &[NodeTime]) -> f64 {
    times.iter().map(|t| t.ms).sum()
}

fn report(times: &[NodeTime], top: usize) -> String {
    let mut by_op: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for t in times {
        let e = by_op.entry(&t.op).or_default();
        e.0 += t.ms;
        e.1 += 1;
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    let mut out = format!("total {:.1} ms\n", total(times));
    for (op, (ms, n)) in ops {
        out += &format!("{ms:9.1} ms {n:4}x {op}\n");
    }
    let mut slowest: Vec<_> = times.iter().collect();
    slowest.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    for t in slowest.iter().take(top) {
        out += &format!("{:9.2} ms  {} ({})\n", t.ms, t.node, t.op);
    }
    out
}
