//! The activation quantiser of WRN-50-2's convolutions alone: ms per convolution, with each column's largest |x|
//! found once for the whole convolution (from each pixel's largest over the channels, src/im2col.rs) against panel
//! by panel, in the same run (alternating, fastest of each). On AMX's panels where in use, else the pair kernel's.
//! `cargo run --release --example quantiser`

use std::time::Instant;

fn main() {
    // (name, channels, padded height and width, kernel, stride): the input each convolution reads.
    let layers = [
        ("conv1 (7x7 /2)", 3, 230, 7, 2),
        ("layer1 conv2", 128, 58, 3, 1),
        ("layer2.0 conv2 (/2)", 256, 58, 3, 2),
        ("layer2 conv2", 256, 30, 3, 1),
        ("layer3 conv2", 512, 16, 3, 1),
        ("layer4 conv2", 1024, 9, 3, 1),
    ];
    let rounds = 15;
    println!("{:<22} {:>10} {:>10} {:>7}", "convolution", "per panel", "once", "ratio");
    for (name, channels, side, kernel, stride) in layers {
        let shape = [channels, side, side];
        // Values of both signs and many magnitudes, seeded: a ReLU's output would be as fast.
        let mut seed = 0x2545_f491_u32;
        let input: Vec<f32> = (0..channels * side * side)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed as i32 as f32) * 1e-9
            })
            .collect();
        let time = |window_max: bool| {
            let start = Instant::now();
            let sink = wrn_wasm::quantize_convolution_patches(&input, shape, kernel, stride, window_max).unwrap();
            (start.elapsed().as_secs_f64() * 1e3, sink)
        };
        let (mut per_panel, mut once) = (f64::MAX, f64::MAX);
        for _ in 0..rounds {
            let (a, sink_a) = time(false);
            let (b, sink_b) = time(true);
            assert_eq!(sink_a, sink_b, "the same panels either way");
            per_panel = per_panel.min(a);
            once = once.min(b);
        }
        println!("{name:<22} {per_panel:>8.3}ms {once:>8.3}ms {:>7.2}", once / per_panel);
    }
}
