//! The 3x3 convolutions that int8 compute runs as Winograd's F(2x2, 3x3) ([`winograd`]): found in tract's
//! decluttered graph (before its codegen turns them into im2col and matmuls) and replaced by [`WinogradConv`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::KernelFormat;
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::source::TypedSource;

use crate::int8_matmul::MR;
use crate::int8_panels::LiftedWeights;
use crate::winograd::WinogradWeights;

/// The smallest side of an image a convolution runs on with Winograd: 14 (WRN-50-2's layers 1 to 3).
///
/// At 7 x 7 (layer 4), the tiles that stick out waste a third of the sums and the gain falls to 1.7x, while the
/// transformed weights (i16, 16 values for 9) are the largest: 67 MB more for its two convolutions.
const MIN_SIDE: usize = 14;

static TURNED_OFF: AtomicBool = AtomicBool::new(false);

/// Turns Winograd off (or back on) for models loaded from now on, for tests that compare int8 compute's kernels bit
/// for bit (this changes the logits within int8 compute's rounding).
#[doc(hidden)]
pub fn turn_off(off: bool) {
    TURNED_OFF.store(off, Ordering::Relaxed);
}

/// Replaces each convolution of `model` that Winograd runs (3x3, stride 1, padding 1, ungrouped, on an int8 weight
/// lifted as a model input, on images of at least [`MIN_SIDE`]) by a [`WinogradConv`]; their weights leave `lifted`.
/// Returns how many.
#[inline(never)] // a step of Model::from_onnx
pub fn use_winograd(model: &mut TypedModel, lifted: &mut LiftedWeights) -> TractResult<usize> {
    if TURNED_OFF.load(Ordering::Relaxed) {
        return Ok(0);
    }
    let mut replaced = 0;
    for id in model.eval_order()? {
        let Some((weights, bias, name)) = winograd_weights(model, id, lifted)? else {
            continue;
        };
        let node = model.node(id);
        let source = node.inputs[1].node;
        let op = WinogradConv { weights: Arc::new(weights), bias: Arc::new(bias) };
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], op)?;
        crate::optimiser::apply(patch, model)?;
        // The weight is no model input any more (nothing reads it).
        model.inputs.retain(|input| input.node != source);
        lifted.remove(&name);
        replaced += 1;
    }
    if replaced > 0 {
        model.compact()?;
    }
    Ok(replaced)
}

/// Node `id`'s weights transformed, its bias, and its weight's name, if Winograd runs it.
fn winograd_weights(
    model: &TypedModel,
    id: usize,
    lifted: &LiftedWeights,
) -> TractResult<Option<(WinogradWeights, Vec<f32>, String)>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let ones = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&x| x == 1));
    let padded_by_one = match &spec.padding {
        PaddingSpec::Explicit(before, after) | PaddingSpec::ExplicitOnnxPool(before, after, _) => {
            before.iter().chain(after).all(|&p| p == 1)
        }
        PaddingSpec::SameUpper | PaddingSpec::SameLower => true,
        PaddingSpec::Valid => false,
    };
    let shape_ok = conv.group == 1
        && conv.q_params.is_none()
        && conv.kernel_fmt == KernelFormat::OIHW
        && spec.data_format == DataFormat::NCHW
        && *spec.kernel_shape == [3, 3]
        && ones(&spec.strides)
        && ones(&spec.dilations)
        && padded_by_one
        && spec.output_channels % MR == 0;
    let input = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = input.shape.as_concrete() else {
        return Ok(None);
    };
    if !shape_ok || input.datum_type != f32::datum_type() || shape.len() != 4 || shape[2].min(shape[3]) < MIN_SIDE {
        return Ok(None);
    }
    let source = model.node(node.inputs[1].node);
    let Some(weight) = lifted.get(&source.name).filter(|_| source.op_is::<TypedSource>()) else {
        return Ok(None);
    };
    let (cout, cin) = (spec.output_channels, spec.input_channels);
    if weight.dims() != [cout, cin, 3, 3] {
        return Ok(None);
    }
    let Some(bias) = model.outlet_fact(node.inputs[2])?.konst.clone() else {
        return Ok(None);
    };
    let bias = bias.cast_to::<f32>()?;
    let bias = match bias.try_as_plain_ram()?.as_slice::<f32>()? {
        [b] => vec![*b; cout],
        b if b.len() == cout => b.to_vec(),
        _ => return Ok(None),
    };
    let weights = WinogradWeights::new(weight.values(), weight.scales(), cout, cin);
    Ok(Some((weights, bias, source.name.clone())))
}

/// A 3x3 convolution of stride 1 and padding 1 on int8 weights, as [`WinogradWeights::conv`] computes it, image by
/// image of an NCHW batch.
#[derive(Clone)]
pub struct WinogradConv {
    weights: Arc<WinogradWeights>,
    bias: Arc<Vec<f32>>,
}

impl std::fmt::Debug for WinogradConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WinogradConv({} -> {})", self.weights.input_channels(), self.weights.output_channels())
    }
}

impl PartialEq for WinogradConv {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.weights, &other.weights) && Arc::ptr_eq(&self.bias, &other.bias)
    }
}

impl Eq for WinogradConv {}

impl std::hash::Hash for WinogradConv {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.weights).hash(state);
    }
}

impl Op for WinogradConv {
    fn name(&self) -> StaticName {
        "WinogradConv".into()
    }

    op_as_typed_op!();
}

impl EvalOp for WinogradConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].try_as_plain_ram()?;
        let &[n, cin, h, w] = input.shape() else {
            bail!("WinogradConv takes NCHW, not {:?}", input.shape());
        };
        let cout = self.weights.output_channels();
        ensure!(cin == self.weights.input_channels(), "{cin} input channels, not {}", self.weights.input_channels());
        let values = input.as_slice::<f32>()?;
        // SAFETY: every value is written below (the convolution writes each output once).
        let mut out = unsafe { Tensor::uninitialized::<f32>(&[n, cout, h, w])? };
        {
            let mut view = out.try_as_plain_ram_mut()?;
            let outputs = view.as_slice_mut::<f32>()?;
            for (image, out) in values.chunks_exact(cin * h * w).zip(outputs.chunks_exact_mut(cout * h * w)) {
                self.weights.conv(image, (h, w), &self.bias, out)?;
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for WinogradConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(shape.rank() == 4, "NCHW input");
        let cout = self.weights.output_channels().to_dim();
        Ok(tvec!(f32::fact([shape[0].clone(), cout, shape[2].clone(), shape[3].clone()])))
    }

    as_op!();
}
