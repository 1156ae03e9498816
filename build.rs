//! Finds the model to embed (feature `embed`), or only its manifest (feature `manifest`): $WRN_MODEL_DIR or model/, as
//! written by tools/build_model.py. Without it the build stops and names the one command that makes it.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=WRN_MODEL_DIR");
    if std::env::var_os("CARGO_FEATURE_MANIFEST").is_none() {
        return;
    }
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dir = std::env::var_os("WRN_MODEL_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("model"));
    let manifest = dir.join("manifest.json");
    println!("cargo:rerun-if-changed={}", manifest.display());
    let fail = |why: String| -> ! {
        eprintln!(
            "\nerror: {why}\n  make the model first: tools/build-model   (or set WRN_MODEL_DIR to a model folder)\n"
        );
        std::process::exit(1);
    };
    if !manifest.is_file() {
        fail(format!("no model manifest: {} is not a file", manifest.display()));
    }
    println!("cargo:rustc-env=WRN_EMBEDDED_MANIFEST={}", manifest.display());
    if std::env::var_os("CARGO_FEATURE_EMBED").is_none() {
        return;
    }
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| fail(format!("no model to embed: cannot read {}: {e}", manifest.display())));
    // The manifest is parsed for real by the crate; here we only need the file name, without a JSON dependency.
    let model_file = text
        .split("\"model_file\"")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .unwrap_or_else(|| fail(format!("{} names no model_file", manifest.display())));
    let model = dir.join(model_file);
    if !model.is_file() {
        fail(format!("{} names {model_file}, which is not in {}", manifest.display(), dir.display()));
    }
    println!("cargo:rerun-if-changed={}", model.display());
    println!("cargo:rustc-env=WRN_EMBEDDED_MODEL={}", model.display());
}
