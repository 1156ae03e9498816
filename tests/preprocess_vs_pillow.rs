//! Preprocessing equals Pillow's (torchvision's Resize + CenterCrop on a PIL image) on real photos and on edge
//! shapes, for every interpolation a manifest can name. The issue asked for at most 1 level of 255; the resampler
//! reproduces Pillow's arithmetic, so the test holds it to bit-exactness.

mod common;

/// Largest allowed difference to Pillow, in levels of 255.
const MAX_LEVELS: u8 = 0;

use common::*;
use wrn_wasm::Rgba;
use wrn_wasm::manifest::Interpolation;
use wrn_wasm::preprocess::{Recipe, resize_crop};

struct Case {
    name: String,
    rgba: Vec<u8>,
    width: u32,
    height: u32,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for photo in ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"] {
        let (rgba, width, height) = load_rgba(&sample(photo));
        cases.push(Case { name: photo.replace('.', "_"), rgba, width, height });
    }
    // Noise is the harshest test of filter weights and rounding; the shapes probe window clamping and crop rounding.
    for (w, h) in [(1, 1), (1, 37), (37, 1), (7000, 10), (10, 7000), (3, 2), (225, 300), (227, 227), (301, 513)] {
        cases.push(Case {
            name: format!("noise_{w}x{h}"),
            rgba: noise((w * h * 4) as usize, (w * 31 + h) as u64),
            width: w,
            height: h,
        });
    }
    // Grayscale: R = G = B, as a decoder expands it.
    let (rgba, width, height) = load_rgba(&sample("chelsea.png"));
    let gray: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| {
            let g = ((p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000) as u8;
            [g, g, g, 255]
        })
        .collect();
    cases.push(Case { name: "gray".into(), rgba: gray, width, height });
    // Alpha: varying transparency must be ignored, as convert("RGB") does.
    let mut alpha = rgba.clone();
    alpha.iter_mut().skip(3).step_by(4).enumerate().for_each(|(i, a)| *a = (i * 7 % 256) as u8);
    cases.push(Case { name: "alpha".into(), rgba: alpha, width, height });
    cases
}

fn recipes() -> Vec<(&'static str, Recipe)> {
    let r = |resize, interpolation| Recipe { resize, crop: 224, interpolation, mean: [0.0; 3], std: [1.0; 3] };
    vec![
        ("bilinear", r(256, Interpolation::Bilinear)),
        ("bicubic", r(256, Interpolation::Bicubic)),
        ("bilinear", r(232, Interpolation::Bilinear)),
    ]
}

#[test]
fn resize_and_crop_match_pillow_bit_for_bit() {
    let dir = scratch("preprocess_vs_pillow");
    let cases = cases();
    let mut ours = Vec::new();
    for case in &cases {
        for (i, (interp, recipe)) in recipes().iter().enumerate() {
            let name = format!("{}_{i}", case.name);
            std::fs::write(dir.join(format!("{name}.rgba")), &case.rgba).unwrap();
            let spec = serde_json::json!({"width": case.width, "height": case.height, "resize": recipe.resize,
                                          "crop": recipe.crop, "interpolation": interp});
            std::fs::write(dir.join(format!("{name}.json")), spec.to_string()).unwrap();
            let image = Rgba::new(&case.rgba, case.width, case.height).unwrap();
            ours.push((name, resize_crop(image, recipe).unwrap()));
        }
    }
    run_reference("pillow_preprocess.py", &[&dir]);
    let mut worst = (0u8, String::new());
    for (name, rgba) in &ours {
        let pillow = std::fs::read(dir.join(format!("{name}.rgb"))).unwrap();
        assert_eq!(pillow.len(), 224 * 224 * 3, "{name}");
        let diff = rgba
            .chunks_exact(4)
            .zip(pillow.chunks_exact(3))
            .flat_map(|(a, b)| (0..3).map(move |c| a[c].abs_diff(b[c])))
            .max()
            .unwrap();
        if diff > worst.0 {
            worst = (diff, name.clone());
        }
    }
    assert!(worst.0 <= MAX_LEVELS, "{} differs from Pillow by {} levels", worst.1, worst.0);
}
