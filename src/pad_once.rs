//! tract's constant padding of f32 tensors, written in one pass.
//!
//! tract pads a convolution's input before its im2col (the 17 convolutions that run through im2col: the 3x3s on AMX
//! and the stem). Its Pad fills a new array with the constant, assigns the input into the middle through ndarray's
//! strided views, then copies the array into a tensor: three passes over the output, 3.7-4.5 ms of a native
//! inference in profile_native, and perf's memset, ndarray's `Zip::for_each` and memmove (6% of its samples). PadOnce
//! writes each row of the output once: the constant before it, the input's row, the constant after it (or the
//! constant alone, for a row of padding), in the order they lie in memory: 2.0-2.1 ms for the 17.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::{Pad, PadMode};

/// Replaces each constant padding of an f32 tensor with [`PadOnce`]; returns how many.
pub fn pad_in_one_pass(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(pad) = node.op_as::<Pad>() else { continue };
        let PadMode::Constant(value) = &pad.mode else { continue };
        let input = model.outlet_fact(node.inputs[0])?;
        if input.datum_type != f32::datum_type() || input.is_exotic() {
            continue;
        }
        let op = PadOnce { value: value.cast_to_scalar::<f32>()?.to_bits(), pad: pad.clone() };
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
        crate::optimiser::apply(patch, model)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// A constant padding of an f32 tensor: tract's `pad` (its `pads`, before and after on each axis, and its facts),
/// with its constant as f32 (`value`, its bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PadOnce {
    pad: Pad,
    value: u32,
}

impl PadOnce {
    /// `input` (of `shape`) padded into `out`, row by row.
    fn pad(&self, input: &[f32], shape: &[usize], out: &mut [f32]) {
        let value = f32::from_bits(self.value);
        let Some((&(before, after), outer_pads)) = self.pad.pads.split_last() else {
            out.copy_from_slice(input);
            return;
        };
        let width = shape[shape.len() - 1];
        if out.is_empty() {
            return;
        }
        let outer = &shape[..shape.len() - 1];
        // The row's coordinates on the outer axes, in the output; it holds an input row where each is inside.
        let mut at = vec![0usize; outer.len()];
        let mut rows = input.chunks_exact(width.max(1));
        for row in out.chunks_exact_mut(before + width + after) {
            let inside = at.iter().zip(outer_pads).zip(outer).all(|((&i, &(b, _)), &d)| i >= b && i < b + d);
            match if inside { rows.next() } else { None } {
                Some(values) => {
                    row[..before].fill(value);
                    row[before..][..width].copy_from_slice(values);
                    row[before + width..].fill(value);
                }
                _ => row.fill(value),
            }
            // Next row: the last outer axis first, carrying into the ones before it.
            for (i, ((&(b, a), &d), c)) in outer_pads.iter().zip(outer).zip(at.iter_mut()).enumerate().rev() {
                *c += 1;
                if *c < b + d + a || i == 0 {
                    break;
                }
                *c = 0;
            }
        }
    }
}

impl Op for PadOnce {
    fn name(&self) -> StaticName {
        "PadOnce".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("pads: {:?}, value: {}", self.pad.pads, f32::from_bits(self.value))])
    }

    op_as_typed_op!();
}

impl EvalOp for PadOnce {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let pads = &self.pad.pads;
        ensure!(input.rank() == pads.len(), "{} pads for a tensor of rank {}", pads.len(), input.rank());
        let shape: TVec<usize> = input.shape().iter().zip(pads).map(|(&d, &(b, a))| b + d + a).collect();
        // SAFETY: every element is written by `pad`, which writes each row of the output whole.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        let view = input.try_as_plain_ram()?;
        self.pad(view.as_slice::<f32>()?, input.shape(), out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for PadOnce {
    /// tract's Pad's, which this pads as.
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.pad.output_facts(inputs)
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pads `shape`'s tensor of 1, 2, 3, ... as tract's Pad and as PadOnce; they must be the same.
    fn same_as_tract(shape: &[usize], pads: &[(usize, usize)], value: f32) {
        let len = shape.iter().product::<usize>();
        let input = Tensor::from_shape(shape, &(1..=len).map(|i| i as f32).collect::<Vec<_>>()).unwrap();
        let tract = Pad { pads: pads.to_vec(), mode: PadMode::Constant(Arc::new(value.into())) };
        let once = PadOnce { pad: tract.clone(), value: value.to_bits() };
        let ctx = EvalContext::out_of_plan();
        let expected = tract.eval(&ctx, tvec![input.clone().into_tvalue()]).unwrap();
        let got = once.eval(&ctx, tvec![input.into_tvalue()]).unwrap();
        assert_eq!(got[0], expected[0], "{shape:?} padded by {pads:?}");
    }

    #[test]
    fn pads_as_tract_does() {
        same_as_tract(&[1, 3, 5, 4], &[(0, 0), (0, 0), (1, 1), (1, 1)], 0.0);
        same_as_tract(&[1, 2, 4, 4], &[(0, 0), (0, 0), (3, 3), (3, 3)], 0.0);
        same_as_tract(&[2, 3, 2, 3], &[(1, 0), (0, 2), (2, 1), (0, 3)], -1.5);
        same_as_tract(&[4, 5], &[(0, 0), (0, 0)], 0.0);
        same_as_tract(&[4, 5], &[(2, 1), (0, 0)], 7.0);
        same_as_tract(&[6], &[(2, 3)], 0.0);
        same_as_tract(&[3, 0], &[(1, 1), (2, 0)], 0.0);
        same_as_tract(&[0, 3], &[(1, 1), (2, 0)], 0.0);
        same_as_tract(&[2, 3, 0], &[(1, 2), (0, 1), (0, 0)], 0.0);
        same_as_tract(&[2, 2, 3], &[(1, 1), (2, 1), (0, 0)], 4.0);
        same_as_tract(&[], &[], 0.0);
    }
}
