//! tract: model bytes -> an optimised plan, built once and reused; one f32 input tensor -> logits.

use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::fold_weights::fold_constant_dequantize;

/// A loaded, optimised network with one input and one output.
pub struct Model {
    plan: Arc<TypedRunnableModel>,
    input_shape: Vec<usize>,
    output_len: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("input_shape", &self.input_shape).field("output_len", &self.output_len).finish()
    }
}

impl Model {
    /// Decodes ONNX bytes, folds constant weight dequantisation, types the graph for `input_shape` and optimises it.
    pub fn from_onnx(bytes: &[u8], input_shape: &[usize], output_len: usize) -> Result<Model> {
        let mut proto = ModelProto::decode(bytes).map_err(|e| Error::Model(format!("not an ONNX model: {e}")))?;
        let graph = proto.graph.as_mut().ok_or_else(|| Error::Model("ONNX model has no graph".into()))?;
        fold_constant_dequantize(graph)?;
        // Shapes recorded for intermediate values can disagree with what tract infers (batch dimension): let it infer.
        graph.value_info.clear();
        let model = tract_onnx::onnx()
            .model_for_proto_model(&proto)?
            .with_input_fact(0, f32::fact(input_shape).into())?;
        drop(proto);
        let plan = model.into_optimized()?.into_runnable()?;
        let model = Model { plan, input_shape: input_shape.to_vec(), output_len };
        model.check_output_shape()?;
        Ok(model)
    }

    fn check_output_shape(&self) -> Result<()> {
        let fact = self.plan.model().output_fact(0)?;
        let len = fact.shape.as_concrete().map(|s| s.iter().product::<usize>());
        match len {
            Some(n) if n == self.output_len => Ok(()),
            _ => Err(Error::Model(format!("model output is {:?}, expected {} values", fact.shape, self.output_len))),
        }
    }

    /// Runs the network on one NCHW input (length = product of the input shape) and returns the raw output.
    pub fn run(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        let array = tract_ndarray::ArrayD::from_shape_vec(self.input_shape.as_slice(), input)
            .map_err(|e| Error::Model(format!("input does not fit {:?}: {e}", self.input_shape)))?;
        let tensor = Tensor::from(array);
        let outputs = self.plan.run(tvec!(tensor.into()))?;
        Ok(outputs[0].to_plain_array_view::<f32>()?.iter().copied().collect())
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
}

/// Runs matrix products on `n` threads from now on (1: single-threaded). Results are the same bit for bit: tract splits
/// the work by output panels, never a dot product. In wasm the threads are wasm-bindgen-rayon's pool, which JS must
/// have started with `initThreadPool` first.
#[cfg(feature = "threads")]
pub fn use_threads(n: usize) {
    use tract_linalg::multithread::{Executor, set_default_executor};
    set_default_executor(match n {
        0 | 1 => Executor::SingleThread,
        _ if cfg!(target_arch = "wasm32") => Executor::RayonGlobal,
        _ => Executor::multithread(n),
    });
}
