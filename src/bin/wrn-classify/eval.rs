//! `--eval DIR`: top-1 / top-5 accuracy on a folder of class subfolders named by WordNet ID (ImageNet's validation
//! layout), so anyone with real weights and the data can reproduce the published accuracy of the exact model shipped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use wrn_wasm::{Classifier, Rgba};

use crate::decode::decode;

pub struct EvalResult {
    pub images: usize,
    pub top1: usize,
    pub top5: usize,
    pub failed: usize,
    pub seconds: f64,
}

impl EvalResult {
    pub fn percent(&self, hits: usize) -> f64 {
        if self.images == 0 { 0.0 } else { 100.0 * hits as f64 / self.images as f64 }
    }

    pub fn images_per_second(&self) -> f64 {
        if self.seconds > 0.0 { self.images as f64 / self.seconds } else { 0.0 }
    }
}

/// Every (image path, class index) under `dir`, sorted for a stable order.
fn labelled_images(classifier: &Classifier, dir: &Path) -> Result<Vec<(PathBuf, usize)>, String> {
    let index: HashMap<&str, usize> = classifier.classes().iter().map(|c| (c.wnid, c.index)).collect();
    let read = |d: &Path| -> Result<Vec<PathBuf>, String> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(|e| format!("{}: {e}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        Ok(v)
    };
    let mut out = Vec::new();
    for class_dir in read(dir)?.into_iter().filter(|p| p.is_dir()) {
        let name = class_dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let &class = index
            .get(name)
            .ok_or_else(|| format!("{}: folder name is not an ImageNet-1k WordNet ID", class_dir.display()))?;
        out.extend(read(&class_dir)?.into_iter().filter(|p| p.is_file()).map(|p| (p, class)));
    }
    if out.is_empty() {
        return Err(format!("{}: no images in class subfolders (expected DIR/<wnid>/<image>)", dir.display()));
    }
    Ok(out)
}

pub fn evaluate(classifier: &Classifier, dir: &Path) -> Result<EvalResult, String> {
    let images = labelled_images(classifier, dir)?;
    let start = Instant::now();
    let mut r = EvalResult { images: 0, top1: 0, top5: 0, failed: 0, seconds: 0.0 };
    for (path, class) in &images {
        let top = decode(path).and_then(|d| {
            let image = Rgba::new(&d.rgba, d.width, d.height).map_err(|e| e.to_string())?;
            classifier.classify(image, 5).map_err(|e| e.to_string())
        });
        match top {
            Ok(top) => {
                r.images += 1;
                r.top1 += usize::from(top[0].index == *class);
                r.top5 += usize::from(top.iter().any(|p| p.index == *class));
            }
            Err(e) => {
                eprintln!("wrn-classify: skipped {e}");
                r.failed += 1;
            }
        }
    }
    r.seconds = start.elapsed().as_secs_f64();
    Ok(r)
}
