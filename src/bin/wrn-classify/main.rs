//! wrn-classify: classify image files with the embedded model (or a model folder), or evaluate on a labelled folder.

mod decode;
mod eval;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;
use wrn_wasm::{Classifier, Rgba, WeightMemory};

const USAGE: &str = "usage: wrn-classify [--top K] [--json] [--model DIR] [--threads N] [--weights W] IMAGE...
       wrn-classify [--json] [--model DIR] [--threads N] [--weights W] --eval DIR

  IMAGE        JPEG, PNG, WebP or GIF; EXIF orientation is applied
  --top K      how many classes to print (default 5)
  --json       one JSON object per line instead of text
  --model DIR  a folder written by tools/build_model.py (default: the model embedded in this binary)
  --eval DIR   top-1/top-5 accuracy on DIR/<wnid>/<images> (ImageNet's validation layout)
  --threads N  threads for inference (default: all cores; results are identical for any N)
  --weights W  int8-compute (int8 weights, integer arithmetic: the default in wasm and on CPUs with AMX or
               AVX-512 VNNI),
               f32 (the default elsewhere) or int8 (weights kept int8 in memory: under half the memory)";

struct Args {
    top: usize,
    json: bool,
    model: Option<PathBuf>,
    eval: Option<PathBuf>,
    threads: usize,
    weights: WeightMemory,
    images: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = Args {
        top: 5,
        json: false,
        model: None,
        eval: None,
        threads: cores,
        weights: WeightMemory::default(),
        images: Vec::new(),
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.to_str() {
            Some("--top") => args.top = parse(value("--top")?, |&k| k > 0, "--top takes a positive number")?,
            Some("--threads") => {
                args.threads = parse(value("--threads")?, |&n| n > 0, "--threads takes a positive number")?
            }
            Some("--weights") => {
                args.weights = parse(value("--weights")?, |_| true, "--weights takes f32, int8 or int8-compute")?
            }
            Some("--json") => args.json = true,
            Some("--model") => args.model = Some(value("--model")?.into()),
            Some("--eval") => args.eval = Some(value("--eval")?.into()),
            Some("-h" | "--help") => return Err(String::new()),
            Some(s) if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => args.images.push(arg.into()),
        }
    }
    if args.images.is_empty() == args.eval.is_none() {
        return Err("give either image files or --eval DIR".into());
    }
    Ok(args)
}

/// An option's value parsed as a `T` that passes `valid`, or `error`.
fn parse<T: std::str::FromStr>(value: std::ffi::OsString, valid: fn(&T) -> bool, error: &str) -> Result<T, String> {
    value.to_str().and_then(|s| s.parse().ok()).filter(valid).ok_or_else(|| error.to_string())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("wrn-classify: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    wrn_wasm::model::use_threads(args.threads);
    let t = Instant::now();
    let loaded = match &args.model {
        Some(dir) => Classifier::from_dir(dir, args.weights),
        None => Classifier::embedded_with(args.weights),
    };
    let classifier = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wrn-classify: cannot load the model: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("wrn-classify: {} (loaded in {} ms)", classifier.manifest().describe(), t.elapsed().as_millis());
    match &args.eval {
        Some(dir) => run_eval(&classifier, dir, args.json),
        None => run_images(&classifier, &args),
    }
}

fn run_images(classifier: &Classifier, args: &Args) -> ExitCode {
    let weights = &classifier.manifest().weights;
    let mut failed = false;
    for path in &args.images {
        let result = decode::decode(path).and_then(|d| {
            let t = Instant::now();
            let image = Rgba::new(&d.rgba, d.width, d.height).map_err(|e| format!("{}: {e}", path.display()))?;
            let top = classifier.classify(image, args.top).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((top, t.elapsed().as_secs_f64() * 1e3))
        });
        let (top, ms) = match result {
            Ok(r) => r,
            Err(e) => {
                eprintln!("wrn-classify: {e}");
                failed = true;
                continue;
            }
        };
        if args.json {
            let top: Vec<_> = top
                .iter()
                .map(|p| json!({"index": p.index, "label": p.label, "wnid": p.wnid, "score": p.score}))
                .collect();
            let line = json!({"image": path.to_string_lossy(), "top": top, "ms": ms, "weights": weights.source,
                              "synthetic": weights.synthetic});
            println!("{line}");
        } else {
            println!("{}  ({ms:.0} ms)", path.display());
            for (rank, p) in top.iter().enumerate() {
                println!("  {}. {:6.2}%  {}  ({}, #{})", rank + 1, p.score * 100.0, p.label, p.wnid, p.index);
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn run_eval(classifier: &Classifier, dir: &std::path::Path, as_json: bool) -> ExitCode {
    let r = match eval::evaluate(classifier, dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wrn-classify: {e}");
            return ExitCode::FAILURE;
        }
    };
    let weights = &classifier.manifest().weights;
    if as_json {
        let line = json!({"images": r.images, "failed": r.failed, "top1": r.percent(r.top1), "top5": r.percent(r.top5),
                          "images_per_second": r.images_per_second(), "weights": weights.source,
                          "synthetic": weights.synthetic});
        println!("{line}");
    } else {
        println!(
            "{} images ({} unreadable): top-1 {:.2}%  top-5 {:.2}%  {:.2} images/s",
            r.images,
            r.failed,
            r.percent(r.top1),
            r.percent(r.top5),
            r.images_per_second()
        );
    }
    if r.images == 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
