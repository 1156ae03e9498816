//! A ReLU after a convolution's reshape, fused into the convolution's matmul.
//!
//! tract's codegen makes each convolution that runs through im2col an OptMatMul whose output a reshape (IntoShape)
//! then splits back into the image's rows. tract fuses an element-wise op into the matmul only when it follows the
//! matmul directly, so the ReLU after each 3x3 convolution (and after the stem) stays an op of its own: 17 passes
//! over their outputs, 0.6 ms of a native inference (profile_native), its thread-local buffer 1.2% in perf. A max or
//! min with a scalar is the same on the values before the reshape as after it, so it moves into the matmul's fused
//! ops (a `ScalarMax` on the tile, before the store), as tract would fuse it without the reshape. (A NaN then stays
//! NaN through the max, as through the ReLUs tract fuses itself, where tract's separate op made it 0.)

use std::sync::atomic::{AtomicBool, Ordering};

use tract_linalg::BinOp;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::TypedModelPatch;
use tract_onnx::tract_core::ops::binary::OptBinByScalar;
use tract_onnx::tract_core::ops::change_axes::IntoShape;
use tract_onnx::tract_core::ops::matmul::optimized::{OptMatMul, ProtoFusedSpec};

static OFF: AtomicBool = AtomicBool::new(false);

/// Whether models loaded from now on keep these ops apart, for tests, which compare the two.
#[doc(hidden)]
pub fn turn_off(off: bool) {
    OFF.store(off, Ordering::Relaxed);
}

/// Fuses each max or min with a scalar that follows a reshape of a matmul's output into that matmul; returns how
/// many.
pub fn fuse_scalar_bounds(model: &mut TypedModel) -> TractResult<usize> {
    if OFF.load(Ordering::Relaxed) {
        return Ok(0);
    }
    let mut fused = 0;
    for id in model.eval_order()? {
        if let Some(patch) = fusion(model, id)? {
            crate::optimiser::apply(patch, model)?;
            fused += 1;
        }
    }
    // The nodes left behind are not compacted away (3 ms of a native load): the plan runs only what the outputs
    // need, and frees each value after its last reader in its own order.
    Ok(fused)
}

/// The patch that fuses node `id` if it is a max or min with a scalar after a reshape of a matmul's output, each
/// the only reader of the one before.
fn fusion(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let bound = model.node(id);
    let Some(op) = bound.op_as::<OptBinByScalar>().filter(|op| matches!(op.linalg_op, BinOp::Max | BinOp::Min)) else {
        return Ok(None);
    };
    let [reshaped, scalar] = bound.inputs[..] else { return Ok(None) };
    let reshape = model.node(reshaped.node);
    let (Some(_), [product]) = (reshape.op_as::<IntoShape>(), &reshape.inputs[..]) else {
        return Ok(None);
    };
    let (product, matmul) = (*product, model.node(product.node));
    let Some(matmul_op) = matmul.op_as::<OptMatMul>() else { return Ok(None) };
    let only_reader = |node: &TypedNode| node.outputs.len() == 1 && node.outputs[0].successors.len() == 1;
    let scalar_fact = model.outlet_fact(scalar)?;
    let is_scalar = scalar_fact.shape.volume() == 1.to_dim() && scalar_fact.datum_type == matmul_op.c_fact.datum_type;
    // The kernel reads the scalar as its own type, which must be its output's (tract's fusion casts otherwise).
    let internal = matmul_op.mmm.iter().all(|mmm| mmm.internal_type() == matmul_op.c_fact.datum_type);
    let ends_in_store = matches!(matmul_op.micro_ops.last(), Some(ProtoFusedSpec::Store(_)));
    let not_an_output = model.outputs.iter().all(|o| o.node != product.node);
    if !(only_reader(matmul) && only_reader(reshape) && is_scalar && internal && ends_in_store && not_an_output) {
        return Ok(None);
    }
    let mut fused = matmul_op.clone();
    // Before the store, as tract's own fusion puts it.
    let store = fused.micro_ops.len() - 1;
    fused.micro_ops.insert(store, ProtoFusedSpec::BinScalar(matmul.inputs.len(), op.linalg_op));
    let mut patch = TypedModelPatch::default();
    let mut inputs = patch.taps(model, &matmul.inputs)?;
    inputs.push(patch.tap_model(model, scalar)?);
    let out = patch.wire_node(&matmul.name, fused, &inputs)?[0];
    let out = patch.wire_node(&reshape.name, reshape.op.clone(), &[out])?[0];
    patch.shunt_outside(model, OutletId::new(id, 0), out)?;
    Ok(Some(patch))
}
