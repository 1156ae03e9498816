//! The native CLI as a user runs it: text and JSON output, EXIF orientation, errors, and --eval on a labelled folder.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;
use wrn_wasm::{Classifier, Rgba};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wrn-classify")).args(args).output().unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "wrn-classify failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn scores(line: &Value) -> Vec<(u64, f64)> {
    line["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["index"].as_u64().unwrap(), p["score"].as_f64().unwrap()))
        .collect()
}

#[test]
fn json_output_equals_the_library_on_the_same_pixels() {
    let photos = [sample("chelsea.png"), sample("rocket.jpg"), sample("coffee.png")];
    let args: Vec<&str> =
        ["--json", "--top", "7"].into_iter().chain(photos.iter().map(|p| p.to_str().unwrap())).collect();
    let lines = json_lines(&cli(&args));
    assert_eq!(lines.len(), photos.len());
    let classifier = Classifier::embedded().unwrap();
    for (line, photo) in lines.iter().zip(&photos) {
        assert_eq!(line["image"], photo.to_str().unwrap());
        assert!(line["ms"].as_f64().unwrap() > 0.0);
        assert_eq!(line["weights"], classifier.manifest().weights.source.as_str());
        let (rgba, w, h) = load_rgba(photo);
        let want = classifier.classify(Rgba::new(&rgba, w, h).unwrap(), 7).unwrap();
        let got = scores(line);
        assert_eq!(got.len(), 7);
        for (g, p) in got.iter().zip(&want) {
            assert_eq!(g.0 as usize, p.index);
            assert!((g.1 - p.score as f64).abs() < 1e-6, "{}: {} vs {}", photo.display(), g.1, p.score);
        }
        let top = &line["top"][0];
        assert_eq!(top["label"], want[0].label);
        assert_eq!(top["wnid"], want[0].wnid);
    }
}

#[test]
fn text_output_names_the_weights_and_lists_top_k() {
    let out = cli(&["--top", "3", sample("coffee.png").to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("coffee.png") && stdout.contains(" ms)"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())).count(), 3);
    let m = Classifier::embedded().unwrap().manifest().clone();
    assert!(stderr.contains(&m.describe()), "{stderr}");
}

#[test]
fn exif_orientation_is_applied() {
    let dir = scratch("cli_orientation");
    run_reference("make_oriented.py", &[&sample("chelsea.png"), &dir]);
    let files: Vec<String> = ["upright", "orientation_3", "orientation_6", "orientation_8"]
        .iter()
        .map(|n| dir.join(format!("{n}.png")).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["--json", "--top", "10"];
    args.extend(files.iter().map(String::as_str));
    let lines = json_lines(&cli(&args));
    let upright = scores(&lines[0]);
    for line in &lines[1..] {
        assert_eq!(scores(line), upright, "{} is not classified as its upright picture", line["image"]);
    }
    // And the stored (unrotated) pixels really are different: without orientation the scores would differ.
    let (rgba, w, h) = load_rgba(Path::new(&files[2]));
    let classifier = Classifier::embedded().unwrap();
    let raw = classifier.classify(Rgba::new(&rgba, w, h).unwrap(), 10).unwrap();
    assert!(raw.iter().zip(&upright).any(|(p, u)| (p.score as f64 - u.1).abs() > 1e-6));
}

#[test]
fn errors_are_reported_and_other_images_still_classified() {
    let dir = scratch("cli_errors");
    let bogus = dir.join("not-an-image.png");
    std::fs::write(&bogus, b"hello").unwrap();
    let out = cli(&["--json", bogus.to_str().unwrap(), sample("coffee.png").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-an-image.png"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1, "the good image is still classified");
    let out = cli(&["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option --frobnicate"));
    assert_eq!(cli(&[]).status.code(), Some(2));
    let out = cli(&["--model", dir.to_str().unwrap(), sample("coffee.png").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("manifest.json"));
}

#[test]
fn model_folder_gives_the_same_results_as_the_embedded_model() {
    let photo = sample("rocket.jpg");
    let embedded = json_lines(&cli(&["--json", photo.to_str().unwrap()]));
    let from_dir =
        json_lines(&cli(&["--json", "--model", root().join("model").to_str().unwrap(), photo.to_str().unwrap()]));
    assert_eq!(scores(&embedded[0]), scores(&from_dir[0]));
}

#[test]
fn eval_reports_top1_top5_of_a_labelled_folder() {
    let dir = scratch("cli_eval");
    // wnid -> images of that class; labels are true, whatever synthetic weights make of them.
    let layout = [
        ("n02123045", vec!["chelsea.png", "astronaut.png"]),
        ("n03063599", vec!["coffee.png"]),
        ("n04266014", vec!["rocket.jpg"]),
    ];
    let mut expected = (0, 0);
    let classifier = Classifier::embedded().unwrap();
    for (wnid, photos) in &layout {
        let class = classifier.classes().iter().position(|c| c.wnid == *wnid).unwrap();
        std::fs::create_dir_all(dir.join(wnid)).unwrap();
        for photo in photos {
            std::fs::copy(sample(photo), dir.join(wnid).join(photo)).unwrap();
            let (rgba, w, h) = load_rgba(&sample(photo));
            let top = classifier.classify(Rgba::new(&rgba, w, h).unwrap(), 5).unwrap();
            expected.0 += usize::from(top[0].index == class);
            expected.1 += usize::from(top.iter().any(|p| p.index == class));
        }
    }
    let line = &json_lines(&cli(&["--json", "--eval", dir.to_str().unwrap()]))[0];
    assert_eq!(line["images"], 4);
    assert_eq!(line["failed"], 0);
    assert!((line["top1"].as_f64().unwrap() - 25.0 * expected.0 as f64).abs() < 1e-9, "{line}");
    assert!((line["top5"].as_f64().unwrap() - 25.0 * expected.1 as f64).abs() < 1e-9, "{line}");
    assert!(line["images_per_second"].as_f64().unwrap() > 0.0);

    let text = cli(&["--eval", dir.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("4 images"));

    std::fs::create_dir_all(dir.join("not-a-wnid")).unwrap();
    let out = cli(&["--eval", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an ImageNet-1k WordNet ID"));
}

#[test]
fn threads_give_identical_results() {
    let photo = sample("chelsea.png");
    let one = json_lines(&cli(&["--json", "--top", "1000", "--threads", "1", photo.to_str().unwrap()]));
    let two = json_lines(&cli(&["--json", "--top", "1000", "--threads", "2", photo.to_str().unwrap()]));
    assert_eq!(scores(&one[0]), scores(&two[0]));
    assert_eq!(cli(&["--threads", "0", photo.to_str().unwrap()]).status.code(), Some(2));
}

#[test]
fn int8_weights_and_int8_arithmetic_give_the_same_classes_and_scores() {
    let photo = sample("coffee.png");
    let f32 = json_lines(&cli(&["--json", "--top", "10", "--weights", "f32", photo.to_str().unwrap()]));
    let int8 = json_lines(&cli(&["--json", "--top", "10", "--weights", "int8", photo.to_str().unwrap()]));
    let (a, b) = (scores(&f32[0]), scores(&int8[0]));
    assert_eq!(a.iter().map(|s| s.0).collect::<Vec<_>>(), b.iter().map(|s| s.0).collect::<Vec<_>>());
    for ((_, x), (_, y)) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "score {x} with f32 weights, {y} with int8");
    }
    // Threads share the widened matrix: still bit-identical.
    let two =
        json_lines(&cli(&["--json", "--top", "10", "--weights", "int8", "--threads", "2", photo.to_str().unwrap()]));
    let one =
        json_lines(&cli(&["--json", "--top", "10", "--weights", "int8", "--threads", "1", photo.to_str().unwrap()]));
    assert_eq!(scores(&two[0]), scores(&one[0]));
    // Integer arithmetic rounds activations to 11-15 bits: the same scores within 1e-5, and threads change nothing.
    let int8_compute = |threads: &str| {
        let args =
            ["--json", "--top", "10", "--weights", "int8-compute", "--threads", threads, photo.to_str().unwrap()];
        scores(&json_lines(&cli(&args))[0])
    };
    let c = int8_compute("1");
    assert_eq!(c, int8_compute("2"));
    let shared: Vec<_> =
        c.iter().filter_map(|(class, y)| a.iter().find(|s| s.0 == *class).map(|s| (s.1, *y))).collect();
    assert!(shared.len() >= 8, "integer arithmetic changed the top-10: {c:?} against {a:?}");
    for (x, y) in shared {
        assert!((x - y).abs() < 1e-5, "score {x} with f32 weights, {y} with integer arithmetic");
    }
    let out = cli(&["--weights", "int4", photo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--weights takes f32, int8 or int8-compute"));
}
