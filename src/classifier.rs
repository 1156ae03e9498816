//! The classifier: manifest + model, pixels in, ranked classes out.

use crate::error::{Error, Result};
use crate::labels::{self, Class};
use crate::manifest::Manifest;
use crate::model::{Model, Profile, WeightMemory};
use crate::preprocess::{self, Recipe, Rgba};
use crate::proto_split::model_metadata;
use crate::scores::{self, Prediction};

/// A loaded model ready to classify any number of images. Loading is the slow part; do it once.
#[derive(Debug)]
pub struct Classifier {
    manifest: Manifest,
    recipe: Recipe,
    model: Model,
}

impl Classifier {
    /// The model and manifest compiled into this crate.
    #[cfg(feature = "embed")]
    pub fn embedded() -> Result<Classifier> {
        Classifier::embedded_with(WeightMemory::default())
    }

    /// The embedded model, its weights held as `weights` says.
    #[cfg(feature = "embed")]
    pub fn embedded_with(weights: WeightMemory) -> Result<Classifier> {
        let manifest = Classifier::manifest_of(crate::embedded::MODEL, crate::embedded::MANIFEST)?;
        Classifier::with_model(manifest, |shape, classes| {
            Model::from_static_onnx(crate::embedded::MODEL, shape, classes, weights)
        })
    }

    /// A model from its ONNX bytes and its manifest.json text.
    pub fn from_bytes(model: &[u8], manifest_json: &str) -> Result<Classifier> {
        Classifier::from_bytes_with(model, manifest_json, WeightMemory::default())
    }

    /// A model from its ONNX bytes and its manifest.json text, its weights held as `weights` says.
    pub fn from_bytes_with(model: &[u8], manifest_json: &str, weights: WeightMemory) -> Result<Classifier> {
        let manifest = Classifier::manifest_of(model, manifest_json)?;
        Classifier::with_model(manifest, |shape, classes| Model::from_onnx(model, shape, classes, weights))
    }

    /// As [`Classifier::from_bytes_with`], the bytes handed over: the int8 weights the kernel reads as rows are read
    /// where they lie in them (kept as long as the classifier), not copied.
    pub fn from_owned_bytes_with(model: Vec<u8>, manifest_json: &str, weights: WeightMemory) -> Result<Classifier> {
        let manifest = Classifier::manifest_of(&model, manifest_json)?;
        Classifier::with_model(manifest, |shape, classes| Model::from_owned_onnx(model, shape, classes, weights))
    }

    /// The model's manifest, checked before the (slow) load: it must fit the labels, and describe the weights the
    /// model holds. tools/build_model.py writes their sha256 and source into the model's metadata, so a model paired
    /// with another build's manifest, which would show the user the wrong weights, is refused. A model without that
    /// metadata (exported elsewhere) is taken as its manifest describes it.
    fn manifest_of(model: &[u8], manifest_json: &str) -> Result<Manifest> {
        let manifest = Manifest::from_json(manifest_json)?;
        if manifest.num_classes != labels::imagenet1k().len() {
            return Err(Error::Manifest(format!("{} classes, but the labels are ImageNet-1k's", manifest.num_classes)));
        }
        let metadata = model_metadata(model).unwrap_or_default();
        // Of two entries with one key, the last, as onnxruntime's map of them keeps it.
        let value = |key: &str| metadata.iter().rfind(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let sha = |sha256: &str| sha256.get(..12).unwrap_or(sha256).to_owned();
        match value("weights_sha256") {
            Some(held) if held != manifest.weights.sha256 => Err(Error::Manifest(format!(
                "the model holds the weights {} (sha256 {}...), but the manifest describes {} (sha256 {}...): \
                 pass the manifest.json built with this model",
                value("weights").unwrap_or("?"),
                sha(held),
                manifest.weights.source,
                sha(&manifest.weights.sha256)
            ))),
            _ => Ok(manifest),
        }
    }

    /// The model `load(input shape, classes)` makes for a checked manifest.
    fn with_model(manifest: Manifest, load: impl FnOnce(&[usize], usize) -> Result<Model>) -> Result<Classifier> {
        let model = load(&manifest.input.shape, manifest.num_classes)?;
        Ok(Classifier { recipe: Recipe::from(&manifest), manifest, model })
    }

    /// A model folder as tools/build_model.py writes it: manifest.json and the model file it names.
    pub fn from_dir(dir: &std::path::Path, weights: WeightMemory) -> Result<Classifier> {
        let read = |p: std::path::PathBuf| std::fs::read(&p).map_err(|e| Error::Model(format!("{}: {e}", p.display())));
        let manifest_json = String::from_utf8(read(dir.join("manifest.json"))?)
            .map_err(|e| Error::Manifest(format!("manifest.json is not UTF-8: {e}")))?;
        let manifest = Manifest::from_json(&manifest_json)?;
        Classifier::from_owned_bytes_with(read(dir.join(&manifest.model_file))?, &manifest_json, weights)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The preprocessed input tensor for an image (NCHW f32), as the network sees it.
    pub fn preprocess(&self, image: Rgba) -> Result<Vec<f32>> {
        preprocess::preprocess(image, &self.recipe)
    }

    /// Raw logits for an already preprocessed input.
    pub fn logits(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        self.model.run(input)
    }

    /// Probabilities of all classes, in index order.
    pub fn scores(&self, image: Rgba) -> Result<Vec<f32>> {
        Ok(scores::softmax(&self.logits(self.preprocess(image)?)?))
    }

    /// The `k` most likely classes, best first.
    pub fn classify(&self, image: Rgba, k: usize) -> Result<Vec<Prediction>> {
        Ok(scores::top_k(&self.scores(image)?, self.classes(), k))
    }

    /// Logits for an already preprocessed input, with the time of each node of the plan (`clock`: milliseconds).
    pub fn profile(&self, input: Vec<f32>, clock: &dyn Fn() -> f64) -> Result<Profile> {
        self.model.profile(input, clock)
    }

    /// How many weight matrices are held as int8 panels (0 with [`WeightMemory::F32`]).
    pub fn int8_matrices(&self) -> usize {
        self.model.int8_matrices()
    }

    /// How many matrix products run in integer arithmetic (0 unless [`WeightMemory::Int8Compute`]).
    pub fn int8_matmuls(&self) -> usize {
        self.model.int8_matmuls()
    }

    /// How many of those run on AMX's tile multiplies (natively, on CPUs that have them).
    pub fn int8_amx_matmuls(&self) -> usize {
        self.model.int8_amx_matmuls()
    }

    /// How many 3x3 convolutions run as Winograd's F(2x2, 3x3) in integer arithmetic (int8 compute without AMX).
    pub fn winograd_convs(&self) -> usize {
        self.model.winograd_convs()
    }

    /// How many of those read their int8 weights where they lie in the model's bytes (the embedded model's, or bytes
    /// handed over).
    pub fn int8_weights_in_place(&self) -> usize {
        self.model.int8_weights_in_place()
    }

    pub fn classes(&self) -> &'static [Class] {
        labels::imagenet1k()
    }
}
