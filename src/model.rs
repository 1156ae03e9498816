//! tract: model bytes -> an optimised plan, built once and reused; one f32 input tensor -> logits.

use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::fold_weights::{fold_constant_dequantize, lift_int8_weights};
use crate::int8_compute;
use crate::int8_panels::{LiftedWeights, keep_packed_weights_int8, lifted_weights};
use crate::model_bytes::ModelBytes;
use crate::proto_split::split_weights;
use crate::winograd_op::use_winograd;

/// How the weights are held once loaded, and the arithmetic they take part in. F32 and Int8 give the same logits to
/// f32 rounding; Int8Compute rounds activations to 11-15 bits. The tests hold all three to onnxruntime's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightMemory {
    /// Packed f32, as tract keeps them: the fastest, and ~4x the int8 file in memory (about 600 MB at the load peak
    /// for WRN-50-2, which wasm memory never gives back).
    F32,
    /// The weights stay int8 with one scale per output channel and are widened to f32 one matrix at a time as it
    /// runs (src/int8_panels.rs): about a third of the memory in wasm, and a faster load.
    Int8,
    /// Int8 weights, as Int8, multiplied in integer arithmetic (src/int8_compute.rs): each matmul's activations are
    /// quantised per column to as many bits as its sums allow (11 to 15), and the products run on int8 x int16 dot
    /// products: about 2.8 times tract's f32 speed in wasm; natively on AMX's int8 tile multiplies where the CPU has
    /// them (src/int8_amx.rs), with the same results bit for bit. Without AMX, the 3x3 convolutions of stride 1 on
    /// images of 14 x 14 and more run as Winograd's F(2x2, 3x3) instead (src/winograd.rs: 2.25x fewer multiply-adds,
    /// the activations rounded after its transform).
    Int8Compute,
}

impl Default for WeightMemory {
    /// Int8Compute in wasm: the fastest there, and int8 in memory (a browser tab, a phone); natively too where the
    /// CPU has AMX (src/int8_amx.rs), which runs it ~3x as fast as tract's f32, or AVX-512 VNNI (src/int8_vnni.rs),
    /// ~1.4x. F32 on other CPUs, where tract's f32 kernels are the fastest and memory is plenty.
    fn default() -> Self {
        #[cfg(target_arch = "x86_64")]
        let vnni = crate::int8_vnni::available();
        #[cfg(not(target_arch = "x86_64"))]
        let vnni = false;
        if cfg!(target_arch = "wasm32") || crate::int8_amx::in_use() || vnni {
            WeightMemory::Int8Compute
        } else {
            WeightMemory::F32
        }
    }
}

impl std::str::FromStr for WeightMemory {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "int8" => Ok(WeightMemory::Int8),
            "f32" => Ok(WeightMemory::F32),
            "int8-compute" => Ok(WeightMemory::Int8Compute),
            _ => Err(Error::Model(format!("weights must be \"int8\", \"int8-compute\" or \"f32\", not {s:?}"))),
        }
    }
}

/// One profiled inference: its output, and the time of each node of the plan in execution order.
#[derive(Clone, Debug)]
pub struct Profile {
    pub logits: Vec<f32>,
    pub nodes: Vec<NodeTime>,
}

/// How long one node of the plan took in [`Model::profile`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeTime {
    pub node: String,
    pub op: String,
    pub ms: f64,
}

/// A loaded, optimised network with one input and one output.
pub struct Model {
    plan: Arc<TypedRunnableModel>,
    input_shape: Vec<usize>,
    output_len: usize,
    int8_matrices: usize,
    int8_matmuls: usize,
    int8_amx_matmuls: usize,
    winograd_convs: usize,
    int8_weights_in_place: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("input_shape", &self.input_shape).field("output_len", &self.output_len).finish()
    }
}

impl Model {
    /// Decodes ONNX bytes, folds constant weight dequantisation, types the graph for `input_shape` and optimises it,
    /// keeping the weights as `weights` says.
    ///
    /// With glibc (Linux), every load sets malloc's mmap and trim thresholds for the whole process (32 and 64 MiB),
    /// so that an inference's buffers are reused rather than mapped afresh (src/heap.rs).
    pub fn from_onnx(bytes: &[u8], input_shape: &[usize], output_len: usize, weights: WeightMemory) -> Result<Model> {
        Model::load(bytes, None, input_shape, output_len, weights)
    }

    /// As [`Model::from_onnx`], from bytes that live as long as the program (the embedded model): int8 weights the
    /// kernel reads as rows are read where they lie, rather than copied (Int8Compute).
    pub fn from_static_onnx(
        bytes: &'static [u8],
        input_shape: &[usize],
        output_len: usize,
        weights: WeightMemory,
    ) -> Result<Model> {
        let bytes = ModelBytes::Static(bytes);
        Model::load(bytes.as_slice(), Some(&bytes), input_shape, output_len, weights)
    }

    /// As [`Model::from_static_onnx`], from bytes handed over to the model: if its kernel reads any weight where it
    /// lies in them, the model keeps the whole of them (as the embedded model's stay in memory); if none, they are
    /// freed after the load.
    pub fn from_owned_onnx(
        bytes: Vec<u8>,
        input_shape: &[usize],
        output_len: usize,
        weights: WeightMemory,
    ) -> Result<Model> {
        let bytes = ModelBytes::Shared(Arc::new(bytes));
        Model::load(bytes.as_slice(), Some(&bytes), input_shape, output_len, weights)
    }

    fn load(
        bytes: &[u8],
        lasting_bytes: Option<&ModelBytes>,
        input_shape: &[usize],
        output_len: usize,
        weights: WeightMemory,
    ) -> Result<Model> {
        crate::heap::keep_buffers();
        // Load code in wasm: V8 runs each function first as its baseline compiler made it, and recompiles the ones
        // that get hot in the background, on threads that share the cores with the load. A function this load calls
        // once gains nothing from it (the new code serves its next call), and a large one costs the most to recompile.
        // So the load's steps are functions of their own (`#[inline(never)]`, "a step of Model::from_onnx"), and this
        // one stays small. Measured in Node (one run, median of 10 alternating loads): CPU spent recompiling during a
        // load ~390 ms instead of ~510, instantiate+load 436 ms against 456.
        // Int8 weights the kernel reads where they lie (in the embedded model's bytes or bytes handed over, with int8
        // compute, as rows) take no new memory; a quarter of the file then covers the graph and the weights that are
        // packed (measured in Node: 88 MB after the load, 95 after inferences, of which 70 are the file).
        let weights_in_place =
            lasting_bytes.is_some() && weights == WeightMemory::Int8Compute && int8_compute::weights_read_as_rows();
        crate::heap::reserve_memory(if weights_in_place { bytes.len() / 4 } else { bytes.len() });
        let int8 = weights != WeightMemory::F32;
        // With int8 weights, the large ones are read in place (proto_split); f32 weights would be copies anyway.
        let (split_bytes, split) = if int8 { split_weights(bytes).unzip() } else { (None, None) };
        let split = split.unwrap_or_default();
        let mut proto = decode(split_bytes.as_deref().unwrap_or(bytes))?;
        drop(split_bytes);
        let graph = proto.graph.as_mut().ok_or_else(|| Error::Model("ONNX model has no graph".into()))?;
        let mut lifted = if int8 {
            lifted_weights(lift_int8_weights(graph, &split)?, &split, lasting_bytes)?
        } else {
            LiftedWeights::new()
        };
        split.restore(graph);
        fold_constant_dequantize(graph)?;
        // Shapes recorded for intermediate values can disagree with what tract infers (batch dimension): let it infer.
        graph.value_info.clear();
        let model =
            tract_onnx::onnx().model_for_proto_model(&proto)?.with_input_fact(0, f32::fact(input_shape).into())?;
        drop_model(proto);
        let int8_compute = weights == WeightMemory::Int8Compute;
        let (mut model, convolutions, winograd_convs) = optimise(model, int8_compute.then_some(&mut lifted))?;
        let int8_matrices =
            if int8 { keep_packed_weights_int8(&mut model, lifted, int8_compute.then_some(&convolutions))? } else { 0 };
        let int8_matmuls = int8_compute::int8_matmuls(&model);
        let int8_amx_matmuls = int8_compute::amx_matmuls(&model);
        let int8_weights_in_place = int8_compute::weights_in_place(&model);
        crate::fuse_through_reshape::fuse_scalar_bounds(&mut model)?;
        crate::pad_once::pad_in_one_pass(&mut model)?;
        let plan = model.into_runnable()?;
        let model = Model {
            plan,
            input_shape: input_shape.to_vec(),
            output_len,
            int8_matrices,
            int8_matmuls,
            int8_amx_matmuls,
            winograd_convs,
            int8_weights_in_place,
        };
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
        let outputs = self.plan.run(tvec!(self.input_tensor(input)?.into()))?;
        Ok(outputs[0].to_plain_array_view::<f32>()?.iter().copied().collect())
    }

    /// Runs the network once as [`Model::run`] does, timing each node of the plan with `clock` (milliseconds, any
    /// origin): where an inference spends its time.
    pub fn profile(&self, input: Vec<f32>, clock: &dyn Fn() -> f64) -> Result<Profile> {
        let mut nodes = Vec::new();
        let mut state = TypedSimpleState::new(&self.plan)?;
        let outputs =
            state.run_plan_with_eval(tvec!(self.input_tensor(input)?.into()), |ctx, op_state, node, inputs| {
                let start = clock();
                let outputs = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                nodes.push(NodeTime { node: node.name.clone(), op: node.op().name().to_string(), ms: clock() - start });
                outputs
            })?;
        Ok(Profile { logits: outputs[0].to_plain_array_view::<f32>()?.iter().copied().collect(), nodes })
    }

    fn input_tensor(&self, input: Vec<f32>) -> Result<Tensor> {
        let array = tract_ndarray::ArrayD::from_shape_vec(self.input_shape.as_slice(), input)
            .map_err(|e| Error::Model(format!("input does not fit {:?}: {e}", self.input_shape)))?;
        Ok(Tensor::from(array))
    }

    /// How many weight matrices are held as int8 panels.
    pub fn int8_matrices(&self) -> usize {
        self.int8_matrices
    }

    /// How many matrix products run in integer arithmetic.
    pub fn int8_matmuls(&self) -> usize {
        self.int8_matmuls
    }

    /// How many of those run on AMX's tile multiplies (natively, on CPUs that have them: src/int8_amx.rs).
    pub fn int8_amx_matmuls(&self) -> usize {
        self.int8_amx_matmuls
    }

    /// How many 3x3 convolutions run as Winograd's F(2x2, 3x3) in integer arithmetic (int8 compute without AMX:
    /// src/winograd.rs), rather than as matrix products.
    pub fn winograd_convs(&self) -> usize {
        self.winograd_convs
    }

    /// How many matrix products read their int8 weights where they lie in the model's bytes, not copied (from
    /// [`Model::from_static_onnx`] or [`Model::from_owned_onnx`]).
    pub fn int8_weights_in_place(&self) -> usize {
        self.int8_weights_in_place
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
}

/// The ONNX protobuf decoded.
#[inline(never)] // a step of Model::from_onnx
fn decode(bytes: &[u8]) -> Result<ModelProto> {
    ModelProto::decode(bytes).map_err(|e| Error::Model(format!("not an ONNX model: {e}")))
}

/// tract's `into_optimized` without the declutter pass that moves axis changes through the graph (ChangeAxes). It
/// removes the AddAxis and RmAxis that tract's declutter wraps around each 1x1 convolution (as an EinSum) and its
/// weight: 422 nodes left instead of 293, but its search for where to move each one is ~60% of the declutter's time.
/// What they cost once planned is a reshape each (IntoShape), and the matmuls, their packers and the int8 kernel's
/// switch are the same: the same logits bit for bit. Measured in Node: instantiate+load 349 against 374 ms (median of
/// 10 alternating), inference unchanged; natively, optimising took 40 instead of 72 ms, and f32 inference unchanged
/// (median 144 against 143 ms).
///
/// The graph is typed without tract-hir's analyser where its ops allow it (src/typing.rs), and optimised by tract's
/// passes without the scan of the whole graph tract's patches make (src/optimiser.rs): the same graph, node for node.
///
/// For int8 compute (with its `lifted` weights), the 3x3 convolutions Winograd runs are replaced before the codegen
/// (src/winograd_op.rs: their weights leave `lifted`), unless AMX runs the matmuls (its int8 tile multiplies do not
/// take Winograd's i16 weights), and it also returns the model's other convolutions as they were before the codegen
/// turned them into im2col and matmuls (int8_compute::Convolutions), and how many Winograd runs.
#[inline(never)] // a step of Model::from_onnx
fn optimise(
    model: InferenceModel,
    int8_compute: Option<&mut LiftedWeights>,
) -> Result<(TypedModel, int8_compute::Convolutions, usize)> {
    let mut model = crate::typing::into_typed(model)?;
    crate::optimiser::optimize(&declutter_without_change_axes(), &mut model)?;
    let (mut convolutions, mut winograd_convs) = (int8_compute::Convolutions::default(), 0);
    if let Some(lifted) = int8_compute {
        if !crate::int8_amx::in_use() {
            winograd_convs = use_winograd(&mut model, lifted)?;
        }
        convolutions = int8_compute::convolutions(&model);
    }
    crate::optimiser::codegen(&mut model)?;
    Ok((model, convolutions, winograd_convs))
}

/// tract's declutter passes but ChangeAxes (found by name: tract has no other handle on its passes).
pub(crate) fn declutter_without_change_axes() -> tract_onnx::tract_core::optim::Optimizer {
    let mut declutter = tract_onnx::tract_core::optim::Optimizer::declutter();
    declutter.passes.retain(|pass| !format!("{pass:?}").starts_with("ChangeAxes"));
    declutter
}

/// The protobuf freed (a walk over every node, attribute and tensor).
#[inline(never)] // a step of Model::from_onnx
fn drop_model(proto: ModelProto) {
    drop(proto);
}

/// Runs matrix products on `n` threads from now on (1: single-threaded). Results are the same bit for bit: tract splits
/// the work by output panels, never a dot product. In wasm the threads are wasm-bindgen-rayon's pool, which JS must
/// have started with `initThreadPool` first (Web Workers in browsers, worker_threads in Node: js/rayon-workers.js).
#[cfg(feature = "threads")]
pub fn use_threads(n: usize) {
    use tract_linalg::multithread::{Executor, set_default_executor};
    set_default_executor(match n {
        0 | 1 => Executor::SingleThread,
        _ if cfg!(target_arch = "wasm32") => Executor::RayonGlobal,
        _ => Executor::multithread(n),
    });
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tract_onnx::pb::tensor_proto::DataType;
    use tract_onnx::pb::{OperatorSetIdProto, TensorProto};

    use super::*;
    use crate::fold_weights::tests::dequantize_then_conv;
    use crate::fold_weights::{f32_tensor, tensor_value_info};

    /// A grouped Conv (which lift_int8_weights leaves alone) on a per-channel int8 weight large enough for
    /// proto_split to take out of the bytes: its DequantizeLinear is folded, which needs the bytes put back.
    fn grouped_conv() -> Vec<u8> {
        let q = TensorProto {
            name: "q".into(),
            dims: vec![64, 8, 3, 3],
            data_type: DataType::Int8 as i32,
            raw_data: (0..64 * 8 * 9).map(|i| ((i * 37 % 255) - 127) as i8 as u8).collect(),
            ..Default::default()
        };
        let scale = f32_tensor("scale".into(), &[64], &(0..64).map(|c| 0.01 + c as f32 * 0.001).collect::<Vec<_>>());
        let mut graph = dequantize_then_conv(q, scale, None, 2);
        graph.input = vec![tensor_value_info("x", DataType::Float, &[1, 16, 5, 5])];
        graph.output = vec![tensor_value_info("y", DataType::Float, &[1, 64, 3, 3])];
        let opset = OperatorSetIdProto { domain: String::new(), version: 13 };
        ModelProto { ir_version: 8, graph: Some(graph), opset_import: vec![opset], ..Default::default() }
            .encode_to_vec()
    }

    /// A tract whose declutter renamed or dropped ChangeAxes would make the filter a silent no-op.
    #[test]
    fn the_declutter_leaves_out_exactly_one_pass() {
        let all = tract_onnx::tract_core::optim::Optimizer::declutter().passes.len();
        assert_eq!(declutter_without_change_axes().passes.len(), all - 1);
    }

    #[test]
    fn an_int8_weight_taken_out_of_the_bytes_but_not_kept_int8_is_put_back() {
        let bytes = grouped_conv();
        let input: Vec<f32> = (0..16 * 25).map(|i| (i % 13) as f32 / 13.0 - 0.5).collect();
        let f32_logits = Model::from_onnx(&bytes, &[1, 16, 5, 5], 576, WeightMemory::F32).unwrap().run(input.clone());
        let int8 = Model::from_onnx(&bytes, &[1, 16, 5, 5], 576, WeightMemory::Int8).unwrap();
        assert_eq!(int8.int8_matrices(), 0, "a grouped conv's weight is dequantised, not kept int8");
        assert_eq!(int8.run(input).unwrap(), f32_logits.unwrap(), "the same weights as without proto_split");
    }
}
