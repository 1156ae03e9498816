//! The model's recipe, read from the manifest.json that tools/build_model.py writes beside the model.
//! It is the single source of truth for sizes, preprocessing and provenance: no constant of the model lives in code.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub arch: String,
    pub weights: WeightsInfo,
    /// Learnable parameters before batch-norm folding (the published count).
    pub params: u64,
    /// Multiply-accumulates of one inference.
    pub macs: u64,
    pub num_classes: usize,
    pub model_file: String,
    pub model_sha256: String,
    pub quantization: String,
    pub input: TensorInfo,
    pub output: TensorInfo,
    /// Preprocessing: the short side is resized to `resize` px, then the centre `crop` x `crop` is taken.
    pub resize: u32,
    pub crop: u32,
    pub interpolation: Interpolation,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Everything else the tools wrote (kept so that `info()` shows the whole manifest).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WeightsInfo {
    /// "synthetic", "timm/<model>.<tag>" or "file:<name>".
    pub source: String,
    pub sha256: String,
    pub synthetic: bool,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Pillow's resampling filter that the weights were evaluated with.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    Bilinear,
    Bicubic,
}

impl Manifest {
    pub fn from_json(json: &str) -> Result<Self> {
        let m: Manifest = serde_json::from_str(json).map_err(|e| Error::Manifest(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serialises")
    }

    fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Manifest(msg));
        if self.crop == 0 || self.resize < self.crop {
            return bad(format!("resize {} must be at least crop {} (> 0)", self.resize, self.crop));
        }
        let want = [1, 3, self.crop as usize, self.crop as usize];
        if self.input.shape != want {
            return bad(format!("input shape {:?} does not match crop {} ({want:?})", self.input.shape, self.crop));
        }
        if self.output.shape != [1, self.num_classes] {
            return bad(format!("output shape {:?} is not [1, {}]", self.output.shape, self.num_classes));
        }
        if self.std.iter().any(|s| !(*s > 0.0)) {
            return bad(format!("std {:?} must be positive", self.std));
        }
        Ok(())
    }

    /// One line for people: which network, which weights, and a warning when they are synthetic.
    pub fn describe(&self) -> String {
        let w = &self.weights;
        if w.synthetic {
            format!("{} with SYNTHETIC weights (seeded random: predictions are meaningless)", self.arch)
        } else {
            format!("{} with weights {}", self.arch, w.source)
        }
    }
}
