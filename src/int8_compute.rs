//! Int8 arithmetic inside tract's plan, on [`int8_matmul`]'s kernel.
//!
//! After tract has planned the model, int8_panels finds each matmul's int8 weight (the model's rows, with one
//! scale per row). A matmul whose weight rows hold K contiguously (as ONNX's Conv and Gemm with transB do), whose
//! weight packer feeds it alone, and whose activations arrive packed as f32 (from im2col or a packer) is changed
//! three ways ([`switch_with_weight_rows`]):
//! - on one thread, its weights stay rows, where they lie in the model's bytes if those outlast the load (the
//!   embedded model, or bytes handed over to it) or else copied, when tract takes them as its first operand: the
//!   kernel widens each panel once per row of tiles from them anyway (so the load packs nothing, and wasm memory
//!   holds no second copy of the weights: 95 MB against 157 MB in Node, a load ~9% faster, inference unchanged).
//!   Otherwise they are packed from the rows in int8_matmul's pair layout ([`PairPanels`] of int8, with the scales);
//! - a quantiser before it turns the activations into int16 panels, each column with its own scale: straight from
//!   the tensor tract's im2col or packer reads ([`QuantizeGathered`], src/im2col.rs), which then does not run; else
//!   from tract's f32 panels ([`QuantizeActivations`]);
//! - tract's f32 kernel gives way to [`KERNEL`]: integer sums, times both scales, then tract's own epilogue (bias,
//!   ReLU, residual add, store) on the f32 tile, unchanged.
//!
//! Any other matmul keeps tract's kernel and the int8 weights widened as it runs (int8_panels).
//!
//! Without AMX, most 3x3 convolutions never become matmuls: they run as Winograd's F(2x2, 3x3) on the same kernel
//! (src/winograd.rs, replaced before tract's codegen by src/winograd_op.rs).

use std::alloc::Layout;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use tract_linalg::WeightType;
use tract_linalg::mmm::OutputStoreSpec;
use tract_linalg::mmm::{
    DynKernel, EagerPackedInput, FusedKerSpec, MMMInputFormat, MMMInputValue, OutputStoreKer, PackedExoticFact,
    PackedMatrixStorage,
};
use tract_linalg::multithread::{Executor, current_tract_executor, par_chunks_mut};
use tract_linalg::pack::PackedFormat;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::change_axes::IntoShape;
use tract_onnx::tract_core::ops::cnn::{Conv, PoolSpec};
use tract_onnx::tract_core::ops::downsample::Downsample;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::matmul::ModePicker;
use tract_onnx::tract_core::ops::matmul::optimized::{MatMulOperand, OptMatMul, ProtoFusedSpec};
use tract_onnx::tract_core::ops::matmul::pack::DynPackedExoticFact;

use crate::im2col::{self, Im2col};
use crate::int8_amx::{self, COLS, WIDE_ROWS};
use crate::int8_matmul::{
    ColumnRun, MR, NR, activation_panel_bytes, gather_runs, pack_weight_panel_rows, product_tile, product_tile_widened,
    quantize_activation_panel, quantize_activation_panel_with_max, reads_weights_unwidened, tile, tile_widened,
    weight_panel_bytes, widen_weight_panel, widened_weight_panel_len, write_scales,
};
use crate::model_bytes::BytesSlice;
use crate::tile_walk::CacheBlocked;

/// How many matmuls run on an int8 kernel (the pair kernel or AMX's).
pub fn int8_matmuls(model: &TypedModel) -> usize {
    matmuls_on(model, KERNEL.mmm().name()) + amx_matmuls(model)
}

/// How many of them run on AMX's ([`int8_amx`]).
pub fn amx_matmuls(model: &TypedModel) -> usize {
    matmuls_on(model, AMX_WIDE_KERNEL.mmm().name())
}

fn matmuls_on(model: &TypedModel, kernel: &str) -> usize {
    let on_kernel = |op: &OptMatMul| op.mmm.iter().any(|mmm| mmm.name() == kernel);
    model.nodes().iter().filter(|n| n.op_as::<OptMatMul>().is_some_and(on_kernel)).count()
}

/// How many of the int8 kernel's weights it reads where they lie in the model's bytes (not copied).
pub fn weights_in_place(model: &TypedModel) -> usize {
    let in_place = |v: &dyn MMMInputValue| {
        v.downcast_ref::<PairPanels>().is_some_and(|p| matches!(p.rows, Some(WeightRowsOwner::InPlace(_))))
    };
    let konsts = model.nodes().iter().filter_map(|n| n.op_as::<Const>());
    let storages = konsts.filter_map(|k| k.val().try_storage_as::<PackedMatrixStorage>().ok());
    storages.map(|s| s.values().iter().filter(|v| in_place(&***v)).count()).sum()
}

/// Whether the kernel reads the weights tract takes as A from their rows ([`PairFormat::WeightRows`]) rather than
/// packed: on one thread only. On several, tract hands each thread rectangles of tiles, and a thread widens a panel
/// once per row of its rectangle: from rows, which cost a transposition more than a packed panel, that made
/// inference 11-26% slower on 2 threads (tools/bench).
/// (On AMX, the weights are always packed: its tile loads want 64-byte aligned rows; where the kernel reads panels
/// unwidened, too: [`reads_weights_unwidened`].)
pub fn weights_read_as_rows() -> bool {
    matches!(current_tract_executor(), Executor::SingleThread) && !int8_amx::in_use() && !reads_weights_unwidened()
}

/// Which operand of tract's matmul holds the weights, and how. tract puts the activations first when they have more
/// rows than the weights (1x1 convolutions on large images): the tile is then the transpose of int8_matmul's. (On
/// AMX, int8_plan transposes such a product back: the weights are always A there.)
#[derive(Clone, Copy, PartialEq, Eq)]
enum WeightsAre {
    /// A, as rows ([`PairFormat::WeightRows`]): on one thread.
    ARows,
    /// A, packed: on several threads.
    APacked,
    /// B, packed.
    B,
}

impl WeightsAre {
    /// The index of this layout in [`KERNEL`]'s packings.
    fn packing(self) -> usize {
        match self {
            WeightsAre::ARows => 0,
            WeightsAre::B => 1,
            WeightsAre::APacked => 2,
        }
    }

    fn format(self, amx: bool) -> PairFormat {
        match self {
            _ if amx => PairFormat::AmxWideWeights,
            WeightsAre::ARows => PairFormat::WeightRows,
            WeightsAre::APacked | WeightsAre::B => PairFormat::Weights,
        }
    }
}

/// Switches matmul `id` to the int8 kernel, its input `weights_input` (whatever computes it now) replaced by an
/// int8 weight given by rows, as the model stores it: `m` rows of `k` values, row r at `q[r * row_stride..]`, with
/// one scale per row. `in_place` is the same values where they lie in model bytes that outlive the load, if they are
/// there. Returns false, changing nothing, if the kernel cannot run this matmul.
///
/// With the weights as tract's A, the kernel reads each panel through a thread's widened copy, made once per row
/// of tiles, which it can make from the rows as well as from a packed panel: on one thread the weights stay as they
/// are ([`PairFormat::WeightRows`]), read in place or copied once. Otherwise (and where the kernel reads panels
/// unwidened) each panel is packed now, a transposition of 16-bit pairs, without the detour through tract's packing.
#[inline(never)] // a step of Model::from_onnx
pub fn switch_with_weight_rows(
    model: &mut TypedModel,
    id: usize,
    weights_input: usize,
    (q, in_place): (&[i8], Option<BytesSlice>),
    (m, k, row_stride): (usize, usize, usize),
    scales: &[f32],
    convs: &Convolutions,
) -> TractResult<bool> {
    ensure!(scales.len() == m && (m == 0 || (m - 1) * row_stride + k <= q.len()), "{m} rows of {k} int8");
    let Some(plan) = int8_plan(model, id, weights_input, convs)? else {
        return Ok(false);
    };
    let pairs = if plan.weights_are == WeightsAre::ARows {
        let rows = match in_place {
            Some(q) => WeightRowsOwner::InPlace(q),
            None => WeightRowsOwner::Copied(Arc::from(q)),
        };
        let values = rows.values();
        let mut pairs = PairPanels::new(
            PairFormat::WeightRows,
            m,
            k,
            || (),
            |_, i, out| {
                let count = (m - i * MR).min(MR);
                // Row i * MR is within the values (checked above), which the panels keep alive.
                let first = values[i * MR * row_stride..].as_ptr();
                write_weight_rows_header(out, &scales[i * MR..][..count], first, row_stride);
                Ok(())
            },
        )?;
        pairs.rows = Some(rows);
        pairs
    } else if plan.amx {
        amx_weight_panels(q, (m, k, row_stride), scales)?
    } else {
        PairPanels::new(
            PairFormat::Weights,
            m,
            k,
            || (),
            |_, i, out| {
                let rows: TVec<&[i8]> = (i * MR..m.min(i * MR + MR)).map(|r| &q[r * row_stride..][..k]).collect();
                pack_weight_panel_rows(out, k, &scales[i * MR..][..rows.len()], &rows);
                Ok(())
            },
        )?
    };
    let packed = model.outlet_fact(model.node(id).inputs[weights_input])?;
    let batch: TVec<usize> = packed.shape.as_concrete().context("packed shape")?.into();
    let storage = PackedMatrixStorage::new_batched(&batch, tvec![Box::new(pairs) as Box<dyn MMMInputValue>]);
    plan.apply(model, id, storage.into_tensor(f32::datum_type()))?;
    Ok(true)
}

/// int8_amx's wide weight panels, from `m` rows of `k` int8 (row r at `q[r * row_stride..]`).
fn amx_weight_panels(q: &[i8], (m, k, row_stride): (usize, usize, usize), scales: &[f32]) -> TractResult<PairPanels> {
    PairPanels::new(
        PairFormat::AmxWideWeights,
        m,
        k,
        || (),
        |_, i, out| {
            let (first, end) = (i * WIDE_ROWS, m.min(i * WIDE_ROWS + WIDE_ROWS));
            let rows: TVec<&[i8]> = (first..end).map(|r| &q[r * row_stride..][..k]).collect();
            int8_amx::pack_weight_panel::<WIDE_ROWS>(out, k, &scales[first..][..rows.len()], &rows);
            Ok(())
        },
    )
}

/// A model's convolutions before tract's codegen turns each into a lazy im2col and a matmul: by name, the geometry
/// and input channels of each ungrouped one (int8_plan finds its im2col by this name).
pub type Convolutions = HashMap<String, (PoolSpec, usize)>;

/// The model's [`Convolutions`], taken before its codegen.
pub fn convolutions(model: &TypedModel) -> Convolutions {
    let ungrouped = |n: &TypedNode| {
        let conv = n.op_as::<Conv>().filter(|c| c.group == 1)?;
        Some((n.name.clone(), (conv.pool_spec.clone(), conv.input_channels())))
    };
    model.nodes().iter().filter_map(ungrouped).collect()
}

static FROM_TRACT_PANELS: AtomicBool = AtomicBool::new(false);

/// Whether models loaded from now on quantise their activations from tract's f32 panels ([`QuantizeActivations`])
/// rather than from the tensor tract makes them from ([`QuantizeGathered`]), for tests, which compare the two.
#[doc(hidden)]
pub fn quantize_from_tract_panels(yes: bool) {
    FROM_TRACT_PANELS.store(yes, Ordering::Relaxed);
}

/// The tensor that `packed` (f32 activation panels, one matrix) is made from, and where its values lie in it: for a
/// lazy im2col of one of `convs` or a packer of an f32 matrix. None for anything else.
fn activations_source(
    model: &TypedModel,
    packed: OutletId,
    convs: &Convolutions,
) -> TractResult<Option<(OutletId, Im2col)>> {
    let output = model.outlet_fact(packed)?;
    let one_matrix = output.shape.as_concrete().is_some_and(|s| s.iter().product::<usize>() == 1);
    if FROM_TRACT_PANELS.load(Ordering::Relaxed) || !one_matrix {
        return Ok(None);
    }
    let producer = model.node(packed.node);
    let ([tensor], Some(fact)) = (producer.inputs.as_slice(), output.exotic_fact()) else {
        return Ok(None);
    };
    let Some(packed_fact) = fact.downcast_ref::<DynPackedExoticFact>() else {
        return Ok(None);
    };
    let input = model.outlet_fact(*tensor)?;
    let (Some(shape), true) = (input.shape.as_concrete(), input.datum_type == f32::datum_type()) else {
        return Ok(None);
    };
    let im2col = match producer.op.name().as_ref() {
        "LazyIm2col" => {
            let conv = producer.name.strip_suffix(".lazyIm2col").and_then(|name| convs.get(name));
            let Some((pool_spec, channels)) = conv else {
                return Ok(None);
            };
            let Ok(im2col) = Im2col::conv(pool_spec, shape, *channels) else {
                return Ok(None);
            };
            // Checked against tract's own panels in debug builds (the tests, which also count the matmuls whose
            // activations are gathered): too slow for every load (~14 ms natively, more in wasm).
            if cfg!(debug_assertions) && !makes_the_same_panels(producer, shape, &im2col)? {
                return Ok(None);
            }
            im2col
        }
        "OptMatMulPack" => {
            let mapping = producer.op.as_typed().context("typed")?.axes_mapping(&[input], &[output])?;
            let (k_axis, n_axis) = (mapping.axis('K')?.inputs[0][0], mapping.axis('M')?.inputs[0][0]);
            // One matrix: any other axis has one entry. Tensors are contiguous, row-major.
            let others = (0..shape.len()).filter(|&a| a != k_axis && a != n_axis);
            if others.map(|a| shape[a]).product::<usize>() != 1 {
                return Ok(None);
            }
            let stride = |axis: usize| shape[axis + 1..].iter().product::<usize>();
            Im2col::matrix(shape[k_axis], stride(k_axis), shape[n_axis], stride(n_axis))
        }
        _ => return Ok(None),
    };
    let agrees = packed_fact.k == im2col.k().to_dim() && packed_fact.mn == im2col.n().to_dim();
    let fits = im2col.extent() <= shape.iter().product();
    if !(agrees && fits) {
        return Ok(None);
    }
    Ok(Some(through_subsampling(model, *tensor, im2col)?))
}

/// Where the values at `im2col` of `tensor` lie in the tensor it subsamples, if it does: through tract's Downsamples
/// (a 1x1 convolution of stride 2 keeps every other row, then every other column, each a copy) and the reshapes
/// between them. The quantiser then reads the subsampled values in place, and the copies are not made.
fn through_subsampling(
    model: &TypedModel,
    mut tensor: OutletId,
    mut im2col: Im2col,
) -> TractResult<(OutletId, Im2col)> {
    loop {
        let node = model.node(tensor.node);
        let [input] = node.inputs.as_slice() else { break };
        let (Some(shape), Some(input_shape)) =
            (model.outlet_fact(tensor)?.shape.as_concrete(), model.outlet_fact(*input)?.shape.as_concrete())
        else {
            break;
        };
        if let Some(reshape) = node.op_as::<IntoShape>() {
            // The same values in the same order (both contiguous): the same offsets.
            if reshape.strides != Tensor::natural_strides(&reshape.dims) {
                break;
            }
        } else if let Some(down) = node.op_as::<Downsample>().filter(|d| d.stride > 0) {
            let fits = |i: &Im2col| i.extent() <= input_shape.iter().product();
            let through = (down.axis, down.stride as usize, down.modulo);
            let Some(subsampled) = im2col.subsampled(shape, input_shape, through).filter(fits) else {
                break;
            };
            im2col = subsampled;
        } else {
            break;
        }
        tensor = *input;
    }
    Ok((tensor, im2col))
}

/// Whether tract's lazy im2col `node` reads an input of `shape` as `im2col` says: its first and last panels made from
/// a tensor whose values are their own indices. (tract's im2col has no public handle on its offsets, so `im2col` is
/// computed again from the convolution's geometry, and checked.)
fn makes_the_same_panels(node: &TypedNode, shape: &[usize], im2col: &Im2col) -> TractResult<bool> {
    let len: usize = shape.iter().product();
    if len > 1 << f32::MANTISSA_DIGITS || im2col.extent() > len || im2col.n() == 0 {
        return Ok(false);
    }
    let probe = tract_ndarray::ArrayD::from_shape_vec(shape, (0..len).map(|i| i as f32).collect())?;
    let Some(outputs) = node.op.eval_out_of_plan(tvec!(Tensor::from(probe).into_tvalue()))? else {
        return Ok(false);
    };
    let storage = outputs[0].try_storage_as::<PackedMatrixStorage>()?;
    let [value] = storage.values() else {
        return Ok(false);
    };
    let (r, k) = (value.format().r(), im2col.k());
    let last = im2col.n().div_ceil(r) - 1;
    for i in [0, last] {
        // SAFETY: a plain byte buffer of tract's layout, which the panel is written into before it is read.
        let mut scratch = value.scratch_panel_buffer_layout().map(|l| unsafe { Blob::for_layout(l) });
        let bytes = value.panel_bytes(i, scratch.as_mut().map(|b| b.as_mut_ptr()))?;
        // SAFETY: a tract panel holds k rows of r f32.
        let panel = unsafe { std::slice::from_raw_parts(bytes as *const f32, k * r) };
        let cols = (im2col.n() - i * r).min(r);
        let at = |kk: usize, c: usize| im2col.offset(kk, i * r + c) as f32;
        if !panel.chunks_exact(r).enumerate().all(|(kk, row)| (0..cols).all(|c| row[c] == at(kk, c))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// How one matmul switches to the int8 kernel.
struct Int8Plan {
    op: OptMatMul,
    weights_are: WeightsAre,
    weights_input: usize,
    activations_input: usize,
    /// Columns of the activations' tract panels.
    activations_r: usize,
    weights_fact: Box<dyn ExoticFact>,
    /// Whether it runs on AMX ([`AMX_WIDE_KERNEL`]) rather than on [`KERNEL`].
    amx: bool,
    /// The tensor tract makes the activations' f32 panels from, and where they lie in it, if the kernel's panels are
    /// to be gathered from it instead ([`QuantizeGathered`]).
    gathered: Option<(OutletId, Im2col)>,
}

/// The plan for matmul `id` with its input `weights_input` as the weights, if the int8 kernel can run it.
fn int8_plan(
    model: &TypedModel,
    id: usize,
    weights_input: usize,
    convs: &Convolutions,
) -> TractResult<Option<Int8Plan>> {
    let Some(op) = model.node(id).op_as::<OptMatMul>() else {
        return Ok(None);
    };
    let mut add_mat_muls = op.micro_ops.iter().filter_map(|o| match o {
        ProtoFusedSpec::AddMatMul { a: MatMulOperand::Input(a), b: MatMulOperand::Input(b), packings, .. } => {
            Some((*a, *b, packings))
        }
        _ => None,
    });
    let (Some((a_input, b_input, packings)), None) = (add_mat_muls.next(), add_mat_muls.next()) else {
        return Ok(None);
    };
    // The kernel's tile is f32 and it runs no integer requantisation: anything else stays with tract (rejected here
    // rather than failing at the first run).
    let f32_only = op.micro_ops.iter().all(|o| !matches!(o, ProtoFusedSpec::Scaler(_)));
    if op.c_fact.datum_type != f32::datum_type() || !f32_only {
        return Ok(None);
    }
    // One mode only (a second one is for matrix-vector products).
    let (ModePicker::Single, [(packing, None)]) = (&op.mode_picker, packings.as_slice()) else {
        return Ok(None);
    };
    let amx = int8_amx::in_use();
    let (weights_are, activations_input) = match weights_input {
        i if i == a_input && weights_read_as_rows() => (WeightsAre::ARows, b_input),
        i if i == a_input => (WeightsAre::APacked, b_input),
        i if i == b_input => (WeightsAre::B, a_input),
        _ => return Ok(None),
    };
    // Whatever made the activations (a packer, im2col, lazily or not) wrote the panels tract's kernel reads, so
    // that kernel's packing says their layout.
    let (format_a, format_b) = &op.mmm[0].packings()[*packing];
    let activations_format = if weights_are == WeightsAre::B { format_a } else { format_b };
    let Some(activations_format) = activations_format.downcast_ref::<PackedFormat>() else {
        return Ok(None);
    };
    if activations_format.dt != f32::datum_type() {
        return Ok(None);
    }
    // On AMX the weights are always A, for the wide kernel, which loads each activation tile once for two weight
    // tiles (a kernel of 16 rows, the weights as B, loaded it once for one: 12.5% of an inference, perf, against
    // 10% on the wide kernel).
    let (op, weights_are) = match (op.clone(), weights_are) {
        (op, WeightsAre::B) if amx => (transposed(op), WeightsAre::APacked),
        planned => planned,
    };
    let node = model.node(id);
    let weights_fact = pair_fact(model.outlet_fact(node.inputs[weights_input])?.exotic_fact(), weights_are.format(amx));
    let activations_fact =
        pair_fact(model.outlet_fact(node.inputs[activations_input])?.exotic_fact(), PairFormat::activations(amx));
    let (Some(weights_fact), Some(_)) = (weights_fact, activations_fact) else {
        return Ok(None);
    };
    Ok(Some(Int8Plan {
        op,
        weights_are,
        weights_input,
        activations_input,
        activations_r: activations_format.r,
        weights_fact,
        amx,
        gathered: activations_source(model, node.inputs[activations_input], convs)?,
    }))
}

impl Int8Plan {
    /// The matmul on the int8 kernel, reading `weights` (pair panels) and its activations quantised.
    fn apply(self, model: &mut TypedModel, id: usize, weights: Tensor) -> TractResult<()> {
        let node = model.node(id);
        let mut patch = TypedModelPatch::default();
        let mut inputs: TVec<OutletId> =
            node.inputs.iter().map(|&i| patch.tap_model(model, i)).collect::<TractResult<_>>()?;
        let name = format!("{}.pairs", model.node(node.inputs[self.weights_input].node).name);
        let konst = Const::new_with_opt_exotic_fact(Arc::new(weights), Some(self.weights_fact))?;
        inputs[self.weights_input] = patch.wire_node(name, konst, &[])?[0];
        let format = PairFormat::activations(self.amx);
        let name = format!("{}.quantize", node.name);
        inputs[self.activations_input] = if let Some((tensor, im2col)) = self.gathered {
            let tensor = patch.tap_model(model, tensor)?;
            let batch = patch.outlet_fact(inputs[self.activations_input])?.shape.as_concrete().context("batch")?.into();
            patch.wire_node(name, QuantizeGathered { im2col: Arc::new(im2col), format, batch }, &[tensor])?[0]
        } else {
            let quantize = QuantizeActivations { r: self.activations_r, format };
            patch.wire_node(name, quantize, &[inputs[self.activations_input]])?[0]
        };
        let out = patch.wire_node(
            format!("{}.int8", node.name),
            on_int8_kernel(self.op, self.weights_are, self.amx),
            &inputs,
        )?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), out)?;
        crate::optimiser::apply(patch, model)
    }
}

/// The same product with its operands swapped: C's transpose, B' A', stored where C was. Rows and columns swap in
/// each op, and in each store's view of the output.
fn transposed(mut op: OptMatMul) -> OptMatMul {
    let swap = |spec: &OutputStoreSpec| match *spec {
        OutputStoreSpec::View { m_axis, n_axis, mr, nr } => {
            OutputStoreSpec::View { m_axis: n_axis, n_axis: m_axis, mr, nr }
        }
        OutputStoreSpec::Strides { row_byte_stride, col_byte_stride, mr, nr } => {
            OutputStoreSpec::Strides { row_byte_stride: col_byte_stride, col_byte_stride: row_byte_stride, mr, nr }
        }
    };
    for micro_op in &mut op.micro_ops {
        *micro_op = match micro_op.clone() {
            ProtoFusedSpec::AddMatMul { mut geo, a, b, packings } => {
                std::mem::swap(&mut geo.c_to_a_axis_mapping, &mut geo.c_to_b_axis_mapping);
                ProtoFusedSpec::AddMatMul { geo, a: b, b: a, packings }
            }
            ProtoFusedSpec::BinPerRow(input, bin, map) => ProtoFusedSpec::BinPerCol(input, bin, map),
            ProtoFusedSpec::BinPerCol(input, bin, map) => ProtoFusedSpec::BinPerRow(input, bin, map),
            ProtoFusedSpec::AddRowColProducts(rows, cols) => ProtoFusedSpec::AddRowColProducts(cols, rows),
            ProtoFusedSpec::AddUnicast(spec, input, map) => ProtoFusedSpec::AddUnicast(swap(&spec), input, map),
            ProtoFusedSpec::Store(specs) => ProtoFusedSpec::Store(specs.iter().map(swap).collect()),
            other => other,
        };
    }
    std::mem::swap(&mut op.c_m_axis, &mut op.c_n_axis);
    op
}

/// The fact of a packed operand (from a packer, im2col or lazy im2col), as the same operand in a pair layout.
fn pair_fact(packed: Option<&dyn ExoticFact>, format: PairFormat) -> Option<Box<dyn ExoticFact>> {
    let (mn, k) = if let Some(fact) = packed?.downcast_ref::<PackedExoticFact>() {
        (fact.mn.clone(), fact.k.to_dim())
    } else {
        let fact = packed?.downcast_ref::<DynPackedExoticFact>()?;
        (fact.mn.clone(), fact.k.clone())
    };
    Some(Box::new(DynPackedExoticFact { k, mn, packers: vec![Box::new(format)] }))
}

/// The same matmul on [`KERNEL`] (or on AMX's [`AMX_WIDE_KERNEL`], the weights as A): one packing (as
/// `weights_are`; AMX's one), one mode, and stores laid out for its tile.
fn on_int8_kernel(mut op: OptMatMul, weights_are: WeightsAre, amx: bool) -> OptMatMul {
    let ((mr, nr), packing) = if amx { ((WIDE_ROWS, COLS), 0) } else { ((MR, NR), weights_are.packing()) };
    let tile = |spec: &OutputStoreSpec| match *spec {
        OutputStoreSpec::View { m_axis, n_axis, .. } => OutputStoreSpec::View { m_axis, n_axis, mr, nr },
        OutputStoreSpec::Strides { row_byte_stride, col_byte_stride, .. } => {
            OutputStoreSpec::Strides { row_byte_stride, col_byte_stride, mr, nr }
        }
    };
    for micro_op in &mut op.micro_ops {
        match micro_op {
            ProtoFusedSpec::AddMatMul { packings, .. } => *packings = vec![(packing, None)],
            ProtoFusedSpec::Store(specs) => *specs = vec![tile(&specs[0])],
            ProtoFusedSpec::AddUnicast(spec, _, _) => *spec = tile(spec),
            _ => {}
        }
    }
    op.mmm = vec![match amx {
        true => Box::new(CacheBlocked { kernel: AMX_WIDE_KERNEL.clone(), panel_bytes: amx_panel_bytes }),
        false => KERNEL.mmm(),
    }];
    op.mode_picker = ModePicker::Single;
    op
}

/// The bytes of one of AMX's panels, for [`CacheBlocked`]'s order of the tiles.
fn amx_panel_bytes(format: &dyn MMMInputFormat, k: usize) -> Option<usize> {
    let format = format.downcast_ref::<PairFormat>()?;
    let amx = [PairFormat::AmxWideWeights, PairFormat::AmxActivations];
    amx.contains(format).then(|| format.panel_bytes(k))
}

const _: () = assert!(MR == NR, "packing 1 reads a tile as its transpose");

/// int8_matmul's kernel as a tract kernel: an MR x NR f32 tile, AddMatMul on the pair panels, the rest on the tile.
static KERNEL: LazyLock<DynKernel<MR, NR, f32>> = LazyLock::new(|| {
    let mut kernel = DynKernel::new("wrn_int8_pairs", run_kernel, PackedFormat::new(f32::datum_type(), MR, 16), {
        PackedFormat::new(f32::datum_type(), NR, 16)
    });
    kernel.packings = vec![
        (Box::new(PairFormat::WeightRows), Box::new(PairFormat::Activations)),
        (Box::new(PairFormat::Activations), Box::new(PairFormat::Weights)),
        (Box::new(PairFormat::Weights), Box::new(PairFormat::Activations)),
    ];
    kernel
});

/// int8_amx's wide kernel as a tract kernel, as [`KERNEL`]: a WIDE_ROWS x COLS tile, its one packing the weights as A
/// (packed as AMX loads them; int8_plan transposes a product with the weights as B).
static AMX_WIDE_KERNEL: LazyLock<DynKernel<WIDE_ROWS, COLS, f32>> = LazyLock::new(|| {
    let (a, b) = (PackedFormat::new(f32::datum_type(), WIDE_ROWS, 64), PackedFormat::new(f32::datum_type(), COLS, 64));
    let mut kernel = DynKernel::new("wrn_int8_amx_wide", run_amx_wide_kernel, a, b);
    kernel.packings = vec![(Box::new(PairFormat::AmxWideWeights), Box::new(PairFormat::AmxActivations))];
    kernel
});

fn run_kernel(specs: &[FusedKerSpec<f32>]) -> isize {
    run_tile::<MR, NR>(specs, &|k, pa, pb, packing| match packing {
        // SAFETY: pa is a whole weight panel and pb a whole activation panel, of PairPanels for this k.
        2 if reads_weights_unwidened() => Some(unsafe { product_tile(pa, pb, k, tile) }),
        0 | 2 => {
            // SAFETY: pa is a weight rows header (packing 0) or a whole weight panel (2), and pb a whole
            // activation panel, of PairPanels for this k (tract's plan, set by on_int8_kernel). The weight panel is
            // the same for a whole row of tiles: widened once for all of them.
            let product = WIDENED_WEIGHT_PANEL.with_borrow_mut(|widened| unsafe {
                let values = if packing == 0 { widened.of_rows(pa, k) } else { widened.of_packed(pa, k) };
                product_tile_widened(pa, values, pb, k, tile_widened)
            });
            Some(product)
        }
        // SAFETY: as above, activations then weights: the product is the tile's transpose, as run_tile holds it
        // for this packing. The weight panel changes from tile to tile: the kernel widens it as it reads.
        1 => Some(unsafe { product_tile(pb, pa, k, tile) }),
        _ => None,
    })
}

fn run_amx_wide_kernel(specs: &[FusedKerSpec<f32>]) -> isize {
    // SAFETY: this kernel runs only where AMX is (int8_plan), and int8_amx::available checks AVX-512F too.
    #[cfg(target_arch = "x86_64")]
    return unsafe { run_amx_wide_tile(specs) };
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AMX is x86_64 only: int8_amx::available() is false ({} ops)", specs.len())
}

/// [`run_amx_wide_kernel`] with AVX-512F: the tile's epilogue on 16 lanes, in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run_amx_wide_tile(specs: &[FusedKerSpec<f32>]) -> isize {
    // SAFETY: the caller's: AVX-512F and AMX are here, the specs are tract's for one tile of this kernel.
    unsafe { crate::int8_amx_tile::run_wide(specs).unwrap_or_else(|| interpret_amx_wide_tile(specs)) }
}

/// The wide AMX kernel's tile by the interpreter alone: what int8_amx_tile declines, and its reference.
///
/// # Safety
/// As [`run_amx_wide_tile`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn interpret_amx_wide_tile(specs: &[FusedKerSpec<f32>]) -> isize {
    run_tile_held::<WIDE_ROWS, COLS, false>(specs, &|k, pa, pb, packing| match packing {
        // SAFETY: a whole wide weight panel and a whole activation panel of PairPanels for this k (64-byte
        // aligned), on a machine with AMX (int8_plan chose this kernel only then).
        0 => Some(unsafe { int8_amx::product_tile::<WIDE_ROWS>(pa, pb, k) }),
        _ => None,
    })
}

/// Interprets tract's fused ops for one R x C tile (the same semantics as tract-linalg's generic kernel, down to
/// how min and max treat NaN), the product of AddMatMul's panels from `product(k, pa, pb, packing)` (None: not
/// this kernel's packing). With the weights as tract's B (packing 1), the kernels' product is the tile's
/// transpose, and so is the output's layout (a matmul's rows are its output's channels, contiguous along the
/// pixels): the tile is then held transposed, so that neither the product nor the stores need a transposition.
#[inline(always)] // into the kernels' functions, with their target features
fn run_tile<const R: usize, const C: usize>(specs: &[FusedKerSpec<f32>], product: &Product<R, C>) -> isize {
    if specs.iter().any(|s| matches!(s, FusedKerSpec::AddMatMul { packing: 1, .. })) {
        run_tile_held::<R, C, true>(specs, product)
    } else {
        run_tile_held::<R, C, false>(specs, product)
    }
}

/// The product of AddMatMul's panels for one tile: `(k, pa, pb, packing)`.
type Product<const R: usize, const C: usize> = dyn Fn(usize, *const u8, *const u8, usize) -> Option<[[f32; C]; R]>;

/// [`run_tile`] with tract's value (r, c) held at `ab[c][r]` if `T` (transposed; R = C), else at `ab[r][c]`.
#[inline(always)]
fn run_tile_held<const R: usize, const C: usize, const T: bool>(
    specs: &[FusedKerSpec<f32>],
    product: &Product<R, C>,
) -> isize {
    let mut ab = [[0f32; C]; R];
    let each = |ab: &mut [[f32; C]; R], f: &dyn Fn(f32, usize, usize) -> f32| each_held::<R, C, T>(ab, f);
    // Where tract's value (r, c) of a store is, and whether a row of `ab` lies contiguous there.
    let place = |store: &OutputStoreKer, i: usize, j: usize| if T { at(store, j, i) } else { at(store, i, j) };
    let rows_contiguous = |store: &OutputStoreKer| (if T { store.row_byte_stride } else { store.col_byte_stride }) == 4;
    // Or its columns (tract's scratch tile for a tile at the edge of the output is column-major).
    let columns_contiguous =
        |store: &OutputStoreKer| (if T { store.col_byte_stride } else { store.row_byte_stride }) == 4;
    // SAFETY (for the reads below): tract hands per-row pointers to R values, per-column ones to C, and stores
    // covering the whole tile.
    let row = |p: *const f32, r: usize| unsafe { *p.add(r) };
    for spec in specs {
        match *spec {
            FusedKerSpec::Done => break,
            FusedKerSpec::Clear => ab = [[0.0; C]; R],
            FusedKerSpec::ScalarMin(s) => each(&mut ab, &|v, _, _| if s < v { s } else { v }),
            FusedKerSpec::ScalarMax(s) => each(&mut ab, &|v, _, _| if s > v { s } else { v }),
            FusedKerSpec::ScalarAdd(s) => each(&mut ab, &|v, _, _| v + s),
            FusedKerSpec::ScalarMul(s) => each(&mut ab, &|v, _, _| v * s),
            FusedKerSpec::ScalarSub(s) => each(&mut ab, &|v, _, _| s - v),
            FusedKerSpec::ScalarSubF(s) => each(&mut ab, &|v, _, _| v - s),
            FusedKerSpec::LeakyRelu(s) => each(&mut ab, &|v, _, _| if v > 0.0 { v } else { v * s }),
            FusedKerSpec::PerRowMin(p) => each(&mut ab, &|v, r, _| if row(p, r) < v { row(p, r) } else { v }),
            FusedKerSpec::PerRowMax(p) => each(&mut ab, &|v, r, _| if row(p, r) > v { row(p, r) } else { v }),
            FusedKerSpec::PerRowAdd(p) => each(&mut ab, &|v, r, _| v + row(p, r)),
            FusedKerSpec::PerRowMul(p) => each(&mut ab, &|v, r, _| v * row(p, r)),
            FusedKerSpec::PerRowSub(p) => each(&mut ab, &|v, r, _| row(p, r) - v),
            FusedKerSpec::PerRowSubF(p) => each(&mut ab, &|v, r, _| v - row(p, r)),
            FusedKerSpec::PerColMin(p) => each(&mut ab, &|v, _, c| if row(p, c) < v { row(p, c) } else { v }),
            FusedKerSpec::PerColMax(p) => each(&mut ab, &|v, _, c| if row(p, c) > v { row(p, c) } else { v }),
            FusedKerSpec::PerColAdd(p) => each(&mut ab, &|v, _, c| v + row(p, c)),
            FusedKerSpec::PerColMul(p) => each(&mut ab, &|v, _, c| v * row(p, c)),
            FusedKerSpec::PerColSub(p) => each(&mut ab, &|v, _, c| row(p, c) - v),
            FusedKerSpec::PerColSubF(p) => each(&mut ab, &|v, _, c| v - row(p, c)),
            FusedKerSpec::AddRowColProducts(rows, cols) => each(&mut ab, &|v, r, c| v + row(rows, r) * row(cols, c)),
            // Rows of contiguous values (as a matmul's output mostly is) are read and written as rows: a vector
            // each, instead of a value at a time at a computed address.
            FusedKerSpec::AddUnicast(store) if store.item_size == 4 && rows_contiguous(&store) => {
                for (i, values) in ab.iter_mut().enumerate() {
                    // SAFETY: tract's store covers the tile; this row's C values are contiguous.
                    let other = unsafe { (place(&store, i, 0) as *const [f32; C]).read_unaligned() };
                    values.iter_mut().zip(other).for_each(|(v, o)| *v += o);
                }
            }
            FusedKerSpec::AddUnicast(store) if store.item_size == 4 && columns_contiguous(&store) => {
                for j in 0..C {
                    // SAFETY: tract's store covers the tile; this column's R values are contiguous.
                    let other = unsafe { (place(&store, 0, j) as *const [f32; R]).read_unaligned() };
                    ab.iter_mut().zip(other).for_each(|(values, o)| values[j] += o);
                }
            }
            FusedKerSpec::AddUnicast(store) if store.item_size == 4 => {
                each(&mut ab, &|v, r, c| v + unsafe { *at(&store, r, c) })
            }
            FusedKerSpec::Store(store) if store.item_size == 4 && rows_contiguous(&store) => {
                for (i, values) in ab.iter().enumerate() {
                    // SAFETY: as above.
                    unsafe { (place(&store, i, 0) as *mut [f32; C]).write_unaligned(*values) };
                }
            }
            FusedKerSpec::Store(store) if store.item_size == 4 && columns_contiguous(&store) => {
                for j in 0..C {
                    let column: [f32; R] = std::array::from_fn(|i| ab[i][j]);
                    // SAFETY: as above.
                    unsafe { (place(&store, 0, j) as *mut [f32; R]).write_unaligned(column) };
                }
            }
            FusedKerSpec::Store(store) if store.item_size == 4 => {
                for (i, values) in ab.iter().enumerate() {
                    for (j, &v) in values.iter().enumerate() {
                        // SAFETY: tract's store covers the tile.
                        unsafe { *place(&store, i, j) = v };
                    }
                }
            }
            FusedKerSpec::AddMatMul { k, pa, pb, packing } => match product(k, pa as _, pb as _, packing) {
                Some(product) => {
                    // Row by row (a flattened iteration would not be vectorised).
                    for (values, products) in ab.iter_mut().zip(&product) {
                        values.iter_mut().zip(products).for_each(|(v, p)| *v += p);
                    }
                }
                None => return 1,
            },
            // Integer requantisation, other packings or element sizes: not for this kernel.
            _ => return 1,
        }
    }
    0
}

/// `v = f(v, r, c)` for each value of a tile held as [`run_tile_held`] holds it, (r, c) being tract's row and
/// column. Inlined, so that each use is vectorised.
#[inline(always)]
fn each_held<const R: usize, const C: usize, const T: bool>(
    ab: &mut [[f32; C]; R],
    f: &dyn Fn(f32, usize, usize) -> f32,
) {
    for (i, row) in ab.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = if T { f(*v, j, i) } else { f(*v, i, j) };
        }
    }
}

/// How many [`PairPanels`] were dropped: a copy cached under a panel's address ([`WidenedPanel`]) is stale once this
/// moves, as the address may then hold another panel.
static PANELS_DROPPED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static WIDENED_WEIGHT_PANEL: RefCell<WidenedPanel> = const { RefCell::new(WidenedPanel::new()) };
}

/// The weight panel this thread widened last to i16 ([`widen_weight_panel`]), for the kernel that reads it so
/// ([`tile_widened`]), with the address, K and drop count it was made for. tract walks a matmul's tiles row of A by
/// row of A (neither operand being its own packed format, it prefers no other order): with the weights as A
/// (packing 0), one widened panel serves a whole row of tiles. (Natively, where tract knows the cache sizes, it may
/// cut a row into blocks, of one tile for long sums: then once per block. So on AVX-512 VNNI, the kernel reads
/// packed panels as they are instead: [`reads_weights_unwidened`].)
///
/// (Keeping every panel of a matmul widened, for the weights as B too, measured no faster: B's panels are read from
/// beyond L1 for each tile, twice the bytes once widened.)
struct WidenedPanel {
    panel: *const u8,
    k: usize,
    dropped: usize,
    packed: Vec<u8>,
    values: Vec<i16>,
}

impl WidenedPanel {
    const fn new() -> WidenedPanel {
        WidenedPanel { panel: std::ptr::null(), k: 0, dropped: 0, packed: Vec::new(), values: Vec::new() }
    }

    /// The weight panel whose rows header ([`PairFormat::WeightRows`]) is at `a`, widened: the one kept, or made
    /// now (packed into this thread's scratch panel, then widened).
    ///
    /// # Safety
    /// `a` points at a rows header for `k` whose rows are alive; the pointer returned is valid until the next call.
    unsafe fn of_rows(&mut self, a: *const u8, k: usize) -> *const i16 {
        if !self.holds(a, k) {
            // SAFETY: the caller's.
            let (scales, rows) = unsafe { read_weight_rows_header(a, k) };
            self.packed.resize(weight_panel_bytes(k), 0);
            pack_weight_panel_rows(&mut self.packed, k, &scales, &rows);
            self.values.resize(widened_weight_panel_len(k), 0);
            widen_weight_panel(&self.packed, k, &mut self.values);
        }
        self.values.as_ptr()
    }

    /// Weight panel `a`, widened: the one kept, or made now.
    ///
    /// # Safety
    /// `a` points at a whole weight panel for `k`; the pointer returned is valid until the next call.
    unsafe fn of_packed(&mut self, a: *const u8, k: usize) -> *const i16 {
        if !self.holds(a, k) {
            self.values.resize(widened_weight_panel_len(k), 0);
            // SAFETY: the caller's.
            let panel = unsafe { std::slice::from_raw_parts(a, weight_panel_bytes(k)) };
            widen_weight_panel(panel, k, &mut self.values);
        }
        self.values.as_ptr()
    }

    /// Whether the values are panel `a`'s for `k`; if not, they will be (the caller widens it).
    fn holds(&mut self, a: *const u8, k: usize) -> bool {
        let dropped = PANELS_DROPPED.load(Ordering::Acquire);
        let held = (self.panel, self.k, self.dropped) == (a, k, dropped);
        (self.panel, self.k, self.dropped) = (a, k, dropped);
        held
    }
}

/// Bytes of a [`PairFormat::WeightRows`] panel: MR scales (f32, as a packed panel starts, where the kernel reads
/// them), the first row's address, the row stride and the row count.
const WEIGHT_ROWS_HEADER: usize = MR * 4 + 16;

/// Writes a rows header: `scales.len()` (at most MR) rows from `first`, `row_stride` values apart.
fn write_weight_rows_header(out: &mut [u8], scales: &[f32], first: *const i8, row_stride: usize) {
    assert!(out.len() == WEIGHT_ROWS_HEADER && scales.len() <= MR, "one header of at most MR rows");
    out.fill(0);
    write_scales(&mut out[..MR * 4], scales);
    out[MR * 4..][..8].copy_from_slice(&(first as usize as u64).to_le_bytes());
    out[MR * 4 + 8..][..4].copy_from_slice(&(row_stride as u32).to_le_bytes());
    out[MR * 4 + 12..][..4].copy_from_slice(&(scales.len() as u32).to_le_bytes());
}

/// The scales and rows (`k` values each) of the rows header at `header`.
///
/// # Safety
/// `header` was written by [`write_weight_rows_header`] for rows of at least `k` values that are still alive.
unsafe fn read_weight_rows_header<'r>(header: *const u8, k: usize) -> (TVec<f32>, TVec<&'r [i8]>) {
    // SAFETY: the caller's.
    let header = unsafe { std::slice::from_raw_parts(header, WEIGHT_ROWS_HEADER) };
    let word = |at: usize| u32::from_le_bytes(header[at..][..4].try_into().unwrap()) as usize;
    let (first, row_stride, count) = (
        u64::from_le_bytes(header[MR * 4..][..8].try_into().unwrap()) as usize as *const i8,
        word(MR * 4 + 8),
        word(MR * 4 + 12),
    );
    let scales = (0..count).map(|r| f32::from_le_bytes(header[r * 4..][..4].try_into().unwrap())).collect();
    // SAFETY: the caller's: `count` rows of `k` values, `row_stride` apart.
    let rows = (0..count).map(|r| unsafe { std::slice::from_raw_parts(first.add(r * row_stride), k) }).collect();
    (scales, rows)
}

/// What keeps the rows of a [`PairFormat::WeightRows`] weight alive.
#[derive(Clone)]
enum WeightRowsOwner {
    /// Where they lie in the model's bytes, which this keeps alive.
    InPlace(BytesSlice),
    /// A copy, made at load.
    Copied(Arc<[i8]>),
}

impl WeightRowsOwner {
    fn values(&self) -> &[i8] {
        match self {
            WeightRowsOwner::InPlace(q) => q.as_i8(),
            WeightRowsOwner::Copied(q) => q,
        }
    }
}

impl fmt::Debug for WeightRowsOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if matches!(self, WeightRowsOwner::InPlace(_)) { "in place" } else { "copied" };
        write!(f, "{} int8 values {how}", self.values().len())
    }
}

fn at(store: &OutputStoreKer, r: usize, c: usize) -> *mut f32 {
    store.ptr.wrapping_offset(r as isize * store.row_byte_stride + c as isize * store.col_byte_stride) as *mut f32
}

/// The two pair layouts of int8_matmul, as tract packing formats.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum PairFormat {
    /// int8, MR rows a panel, with the row scales.
    Weights,
    /// The same weights as rows, where they lie: a panel is a header of MR row scales and where its rows are
    /// ([`write_weight_rows_header`]). Only the kernel's widened copy reads it (weights as A).
    WeightRows,
    /// int16, NR columns a panel, with the column scales.
    Activations,
    /// int8_amx's weights: int8, WIDE_ROWS rows a panel, with the row scales (as tract's A).
    AmxWideWeights,
    /// int8_amx's activations: int16 split in two bytes, COLS columns a panel, with the column scales.
    AmxActivations,
}

impl PairFormat {
    fn panel_bytes(self, k: usize) -> usize {
        match self {
            PairFormat::Weights => weight_panel_bytes(k),
            PairFormat::WeightRows => WEIGHT_ROWS_HEADER,
            PairFormat::Activations => activation_panel_bytes(k),
            PairFormat::AmxWideWeights => int8_amx::weight_panel_bytes::<WIDE_ROWS>(k),
            PairFormat::AmxActivations => int8_amx::activation_panel_bytes(k),
        }
    }

    /// The activations' format for the pair kernel, or for AMX's.
    fn activations(amx: bool) -> PairFormat {
        if amx { PairFormat::AmxActivations } else { PairFormat::Activations }
    }

    /// Quantises one activation panel in this (activations') format: `columns` is K x r, K-major.
    fn quantize(self, out: &mut [u8], columns: &[f32], k: usize, cols: usize) {
        match self {
            PairFormat::AmxActivations => int8_amx::quantize_activation_panel(out, columns, k, cols),
            _ => quantize_activation_panel(out, columns, k, cols),
        }
    }

    /// As [`PairFormat::quantize`], from the columns' largest |x| (zeros for padding columns), which the caller knows.
    fn quantize_with_max(self, out: &mut [u8], columns: &[f32], k: usize, max_abs: &[f32]) {
        let width = "the format's panel width";
        match self {
            PairFormat::AmxActivations => {
                int8_amx::quantize_activation_panel_with_max(out, columns, k, max_abs.try_into().expect(width))
            }
            _ => quantize_activation_panel_with_max(out, columns, k, max_abs.try_into().expect(width)),
        }
    }

    /// As [`PairFormat::quantize`], the panel's columns from `runs` of tract's panels (gathered into `columns` first
    /// where the quantiser reads contiguous columns).
    ///
    /// # Safety
    /// Each run's panel holds k rows of its r values; the runs cover columns 0..cols.
    unsafe fn quantize_runs(self, out: &mut [u8], runs: &[ColumnRun], k: usize, cols: usize, columns: &mut Vec<f32>) {
        // SAFETY: the caller's.
        unsafe {
            match self {
                PairFormat::AmxActivations => int8_amx::quantize_activation_runs(out, runs, k, cols, columns, None),
                _ => {
                    columns.resize(k * self.r(), 0.0);
                    gather_runs(runs, k, self.r(), columns);
                    quantize_activation_panel(out, columns, k, cols)
                }
            }
        }
    }
}

impl fmt::Display for PairFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} in pairs")
    }
}

impl MMMInputFormat for PairFormat {
    fn prepare_tensor(&self, _t: &Tensor, _k_axis: usize, _mn_axis: usize) -> TractResult<Tensor> {
        bail!("{self} is made by int8_compute only")
    }

    fn prepare_one_view(&self, _t: &TensorView, _k: usize, _mn: usize) -> TractResult<Box<dyn MMMInputValue>> {
        bail!("{self} is made by int8_compute only")
    }

    fn precursor(&self) -> WeightType {
        match self {
            PairFormat::Weights | PairFormat::WeightRows | PairFormat::AmxWideWeights => {
                WeightType::Plain(i8::datum_type())
            }
            PairFormat::Activations | PairFormat::AmxActivations => WeightType::Plain(f32::datum_type()),
        }
    }

    fn r(&self) -> usize {
        match self {
            PairFormat::Weights | PairFormat::WeightRows => MR,
            PairFormat::Activations => NR,
            PairFormat::AmxWideWeights => WIDE_ROWS,
            PairFormat::AmxActivations => COLS,
        }
    }

    fn k_alignment(&self) -> usize {
        1
    }

    fn mem_size(&self, k: TDim, mn: TDim) -> TDim {
        let k = k.to_usize().unwrap_or(0);
        mn.divceil(self.r()) * self.panel_bytes(k)
    }

    fn extract_at_mn_f16(&self, _data: &EagerPackedInput, _mn: usize, _slice: &mut [f16]) -> TractResult<()> {
        bail!("{self} has no f16 view")
    }

    fn extract_at_mn_f32(&self, _data: &EagerPackedInput, _mn: usize, _slice: &mut [f32]) -> TractResult<()> {
        bail!("{self} has no f32 view")
    }
}

/// One operand in a pair layout: panel after panel, each `format.panel_bytes(k)` long.
#[derive(Clone, Debug)]
struct PairPanels {
    format: PairFormat,
    fact: PackedExoticFact,
    mn: usize,
    k: usize,
    bytes: Arc<Blob>,
    /// The rows a [`PairFormat::WeightRows`] operand's headers point into.
    rows: Option<WeightRowsOwner>,
}

impl PairPanels {
    /// Panels filled by `fill(state, i, panel)`, in parallel over runs of whole panels on tract's executor (so the
    /// bytes are the same on any number of threads). Each run has its own `state`, from `new_state`.
    fn new<S>(
        format: PairFormat,
        mn: usize,
        k: usize,
        new_state: impl Fn() -> S + Sync + Send,
        fill: impl Fn(&mut S, usize, &mut [u8]) -> TractResult<()> + Sync + Send,
    ) -> TractResult<PairPanels> {
        let panel = format.panel_bytes(k);
        let panels = mn.div_ceil(format.r());
        // SAFETY: a plain byte buffer, every byte written by `fill` below.
        // 64-byte aligned: AMX loads tiles a cache line a row.
        let mut bytes = unsafe { Blob::new_for_size_and_align(panels * panel, 64) };
        par_chunks_mut(bytes.as_bytes_mut(), panel, mn * k, |first, run| {
            let mut state = new_state();
            for (i, out) in run.chunks_exact_mut(panel).enumerate() {
                fill(&mut state, first + i, out)?;
            }
            Ok(())
        })?;
        let fact = PackedExoticFact { format: Box::new(format), mn: mn.to_dim(), k };
        Ok(PairPanels { format, fact, mn, k, bytes: Arc::new(bytes), rows: None })
    }

    /// tract's f32 panels (`r` columns a panel, K-major, possibly made lazily into a scratch buffer that the next
    /// panel overwrites) quantised into pair panels. In parallel, as tract's kernel would read them: lazily made
    /// panels (im2col) are made on the thread that quantises them.
    fn activations(value: &dyn MMMInputValue, r: usize, format: PairFormat) -> TractResult<PairPanels> {
        let width = format.r();
        ensure!(value.format().r() == r, "activations in panels of {r} columns");
        let (n, k) = (value.mn(), value.k());
        // tract's own layout for this value's scratch panel, one per run of panels. Zeroed: a lazily made partial
        // panel leaves its padding columns unwritten.
        let scratch = || {
            value.scratch_panel_buffer_layout().map(|l| {
                // SAFETY: a plain byte buffer of tract's layout, zeroed before use.
                let mut blob = unsafe { Blob::for_layout(l) };
                blob.as_bytes_mut().fill(0);
                blob
            })
        };
        // Tract panel i, valid until the next call with the same scratch.
        let tract_panel = |scratch: &mut Option<Blob>, i: usize| -> TractResult<&[f32]> {
            let bytes = value.panel_bytes(i, scratch.as_mut().map(|b| b.as_mut_ptr()))?;
            // SAFETY: a tract panel holds k rows of r f32.
            Ok(unsafe { std::slice::from_raw_parts(bytes as *const f32, k * r) })
        };
        if r == width {
            return PairPanels::new(format, n, k, scratch, |scratch, j, out| {
                format.quantize(out, tract_panel(scratch, j)?, k, (n - j * width).min(width));
                Ok(())
            });
        }
        // Other widths: each panel of ours is runs of columns of a few of tract's, which stay made (each in a
        // scratch of its own) while ours reads them. Columns only move forward, so the one made first is the one to
        // reuse, and each run of panels makes each tract panel once (twice for one that two runs share).
        let made = || TractPanelsMade {
            made: (0..width.div_ceil(r) + 1).map(|_| (None, scratch(), std::ptr::null())).collect(),
            columns: Vec::new(),
        };
        PairPanels::new(format, n, k, made, |made, j, out| {
            let cols = (n - j * width).min(width);
            let mut runs: TVec<ColumnRun> = tvec![];
            while let Some(to) = runs.last().map_or(Some(0), |l| Some(l.to + l.len).filter(|&c| c < cols)) {
                let col = j * width + to;
                let values = made.panel(col / r, |scratch, i| Ok(tract_panel(scratch, i)?.as_ptr()))?;
                runs.push(ColumnRun { values, r, from: col % r, to, len: (r - col % r).min(cols - to) });
            }
            // SAFETY: each run is within a tract panel (k rows of r) made above and still held.
            unsafe { format.quantize_runs(out, &runs, k, cols, &mut made.columns) };
            Ok(())
        })
    }
}

/// tract panels made for [`PairPanels::activations`]: (panel index, its scratch, its values) each.
struct TractPanelsMade {
    made: Vec<(Option<usize>, Option<Blob>, *const f32)>,
    /// Where panels are gathered for a quantiser that reads contiguous columns.
    columns: Vec<f32>,
}

impl TractPanelsMade {
    /// Tract panel `i`'s values, made now (over the one made first) if not held.
    fn panel(
        &mut self,
        i: usize,
        make: impl FnOnce(&mut Option<Blob>, usize) -> TractResult<*const f32>,
    ) -> TractResult<*const f32> {
        if let Some(held) = self.made.iter().find(|m| m.0 == Some(i)) {
            return Ok(held.2);
        }
        let first = self.made.iter_mut().min_by_key(|m| m.0.map_or(0, |i| i + 1)).expect("slots");
        first.2 = make(&mut first.1, i)?;
        first.0 = Some(i);
        Ok(first.2)
    }
}

impl MMMInputValue for PairPanels {
    fn format(&self) -> &dyn MMMInputFormat {
        &self.format
    }

    fn scratch_panel_buffer_layout(&self) -> Option<Layout> {
        None
    }

    fn panel_bytes(&self, i: usize, _buffer: Option<*mut u8>) -> TractResult<*const u8> {
        ensure!(i < self.mn.div_ceil(self.format.r()), "panel {i} of {}", self.mn.div_ceil(self.format.r()));
        // SAFETY: panel i is inside the blob (checked above).
        Ok(unsafe { self.bytes.as_ptr().add(i * self.format.panel_bytes(self.k)) })
    }

    fn mn(&self) -> usize {
        self.mn
    }

    fn k(&self) -> usize {
        self.k
    }

    fn exotic_fact(&self) -> &dyn ExoticFact {
        &self.fact
    }

    fn extract_at_mn_f16(&self, _mn: usize, _slice: &mut [f16]) -> TractResult<()> {
        bail!("{} has no f16 view", self.format)
    }

    fn extract_at_mn_f32(&self, _mn: usize, _slice: &mut [f32]) -> TractResult<()> {
        bail!("{} has no f32 view", self.format)
    }
}

impl Drop for PairPanels {
    fn drop(&mut self) {
        // Its bytes may be freed now: widened copies cached by address are stale.
        PANELS_DROPPED.fetch_add(1, Ordering::Release);
    }
}

impl std::hash::Hash for PairPanels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.format, self.mn, self.k, self.bytes.as_ptr()).hash(state)
    }
}

impl PartialEq for PairPanels {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.bytes, &other.bytes)
    }
}

impl Eq for PairPanels {}

impl fmt::Display for PairPanels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} x {})", self.format, self.mn, self.k)
    }
}

/// Turns tract's packed f32 activations (`r` columns a panel) into pair panels, batch entry by batch entry.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct QuantizeActivations {
    r: usize,
    /// The pair panels' format: the pair kernel's or AMX's.
    format: PairFormat,
}

impl Op for QuantizeActivations {
    fn name(&self) -> StaticName {
        "QuantizeActivations".into()
    }

    op_as_typed_op!();
}

impl EvalOp for QuantizeActivations {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let storage = inputs[0].try_storage_as::<PackedMatrixStorage>()?;
        let values: TVec<Box<dyn MMMInputValue>> = storage
            .values()
            .iter()
            .map(|v| PairPanels::activations(&**v, self.r, self.format).map(|p| Box::new(p) as Box<dyn MMMInputValue>))
            .collect::<TractResult<_>>()?;
        let out = PackedMatrixStorage::new_batched(storage.batch_shape(), values).into_tensor(f32::datum_type());
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for QuantizeActivations {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let fact = pair_fact(inputs[0].exotic_fact(), self.format).context("packed activations")?;
        Ok(tvec!(inputs[0].without_value().with_exotic_fact(fact)))
    }

    as_op!();
}

/// Pair panels quantised straight from the tensor that tract's im2col or packer would make f32 panels from, which then
/// are neither written nor read, and the packer does not run: each panel's columns gathered into a scratch of the
/// panel's width (or, for AMX with the AVX-512 quantiser, read where they lie), then quantised as [`QuantizeActivations`] does (the
/// same panels, so the same logits bit for bit).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct QuantizeGathered {
    im2col: Arc<Im2col>,
    format: PairFormat,
    /// The batch shape of the output: one matrix.
    batch: TVec<usize>,
}

impl QuantizeGathered {
    /// The panels of `values`, in the format's width, with the column maxima if known (`maxima`, a convolution's:
    /// [`Im2col::column_max_abs`]).
    fn quantize(&self, values: &[f32], maxima: Option<Vec<f32>>) -> TractResult<PairPanels> {
        match self.format {
            PairFormat::AmxActivations => self.panels::<COLS>(values, maxima),
            _ => self.panels::<NR>(values, maxima),
        }
    }

    /// [`QuantizeGathered::quantize`] for panels of W columns.
    fn panels<const W: usize>(&self, values: &[f32], maxima: Option<Vec<f32>>) -> TractResult<PairPanels> {
        ensure!(self.format.r() == W, "{} columns a panel", self.format.r());
        let (k, n) = (self.im2col.k(), self.im2col.n());
        PairPanels::new(self.format, n, k, Vec::new, |columns, j, out| {
            let max_abs = maxima.as_ref().map(|m| {
                let mut panel = [0f32; W];
                let cols = W.min(n - j * W);
                panel[..cols].copy_from_slice(&m[j * W..][..cols]);
                panel
            });
            // AMX's quantiser (AVX-512 F, BW, VBMI) reads a panel's rows where they lie (masked loads; for stride 2,
            // two and a permute; gathers for other strides),
            // unless it would read them twice (maxima unknown) and they are one run of adjacent values: then a copy
            // into the scratch panel first is faster (natively, WRN-50-2's 1x1 convolutions, which read each value
            // once anyway).
            if self.format == PairFormat::AmxActivations {
                let runs = self.im2col.panel_runs::<W>(j * W);
                let one_copy = matches!(runs[..], [im2col::Run { to: 0, len, step: 1, .. }] if len == W);
                if (max_abs.is_some() || !one_copy) && !runs.is_empty() {
                    let cols = runs.iter().map(|r| r.len).sum();
                    let offsets = self.im2col.k_offsets();
                    let max_abs = max_abs.map(|m| m[..].try_into().expect("AMX's panel width"));
                    // SAFETY: every element a run reads is below the im2col's extent, which `values` holds (eval).
                    if unsafe { int8_amx::quantize_activation_tensor_runs(out, values, offsets, &runs, cols, max_abs) }
                    {
                        return Ok(());
                    }
                }
            }
            columns.resize(k * W, 0.0);
            let cols = self.im2col.panel::<W>(values, j * W, columns);
            match max_abs {
                Some(max_abs) => self.format.quantize_with_max(out, columns, k, &max_abs),
                None => self.format.quantize(out, columns, k, cols),
            }
            Ok(())
        })
    }
}

/// For bench/quantiser.rs: the activation panels of a convolution with a `kernel` x `kernel` kernel and `stride` over
/// `input` (channels x height x width, padded), as the model's quantiser makes them (AMX's where in use, else the pair
/// kernel's); with the column maxima found once for the convolution (`window_max`), or panel by panel. Returns a
/// byte of each panel, so that none is optimised out.
#[doc(hidden)]
pub fn quantize_convolution_patches(
    input: &[f32],
    shape: [usize; 3],
    kernel: usize,
    stride: usize,
    window_max: bool,
) -> TractResult<u64> {
    use tract_onnx::tract_core::ops::cnn::PaddingSpec;
    use tract_onnx::tract_core::ops::nn::DataFormat;
    let pool_spec = PoolSpec {
        data_format: DataFormat::NCHW,
        kernel_shape: tvec![kernel, kernel],
        padding: PaddingSpec::Valid,
        dilations: None,
        strides: Some(tvec![stride, stride]),
        input_channels: shape[0],
        output_channels: 1,
    };
    let im2col = Im2col::conv(&pool_spec, &[1, shape[0], shape[1], shape[2]], shape[0])?;
    ensure!(input.len() >= im2col.extent(), "{} values, {} read", input.len(), im2col.extent());
    let format = PairFormat::activations(int8_amx::in_use());
    let maxima = window_max.then(|| im2col.column_max_abs(input)).flatten();
    let panels = QuantizeGathered { im2col: Arc::new(im2col), format, batch: tvec![] }.quantize(input, maxima)?;
    let bytes = panels.bytes.as_bytes();
    Ok(bytes.iter().step_by(format.panel_bytes(panels.k)).map(|&b| b as u64).sum())
}

impl Op for QuantizeGathered {
    fn name(&self) -> StaticName {
        "QuantizeGathered".into()
    }

    op_as_typed_op!();
}

impl EvalOp for QuantizeGathered {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let view = inputs[0].try_as_plain_ram()?;
        let values = view.as_slice::<f32>()?;
        ensure!(values.len() >= self.im2col.extent(), "{} values, {} read", values.len(), self.im2col.extent());
        // A convolution's column maxima, found once for all its panels: each panel's rows are then read once.
        let panels = self.quantize(values, self.im2col.column_max_abs(values))?;
        let values: TVec<Box<dyn MMMInputValue>> = tvec![Box::new(panels) as Box<dyn MMMInputValue>];
        let out = PackedMatrixStorage::new_batched(&self.batch, values).into_tensor(f32::datum_type());
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for QuantizeGathered {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let (k, mn) = (self.im2col.k().to_dim(), self.im2col.n().to_dim());
        let fact = DynPackedExoticFact { k, mn, packers: vec![Box::new(self.format)] };
        Ok(tvec!(f32::fact(&*self.batch).with_exotic_fact(fact)))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A widened panel is kept by address: the same rows are not widened again while no panel is dropped, and once
    /// one has been (its address may then hold other weights), they are widened anew.
    #[test]
    fn widened_panel_is_kept_until_a_panel_is_dropped() {
        let k = 5;
        let mut rows = vec![0i8; MR * k];
        rows[0] = 3;
        let mut header = vec![0u8; WEIGHT_ROWS_HEADER];
        write_weight_rows_header(&mut header, &[1.0; MR], rows.as_ptr(), k);
        let mut widened = WidenedPanel::new();
        // SAFETY (the reads below): a rows header for k over live rows, read before the next call.
        assert_eq!(unsafe { *widened.of_rows(header.as_ptr(), k) }, 3);
        rows[0] = -7;
        assert_eq!(unsafe { *widened.of_rows(header.as_ptr(), k) }, 3, "kept: no panel was dropped");
        // Other weights at the same address, as after a drop and a new allocation.
        let dropped = PANELS_DROPPED.load(Ordering::Acquire);
        let fill = |_: &mut (), _, out: &mut [u8]| {
            out.fill(0);
            Ok(())
        };
        drop(PairPanels::new(PairFormat::Weights, MR, k, || (), fill).unwrap());
        assert!(PANELS_DROPPED.load(Ordering::Acquire) > dropped, "dropping pair panels is counted");
        assert_eq!(unsafe { *widened.of_rows(header.as_ptr(), k) }, -7, "widened anew after a drop");
    }

    /// A last panel of fewer than MR rows, apart by more than K: each widened pair holds its row's two values, the
    /// missing rows and the odd K's padding are zeros, and the kernel finds the scales where a packed panel has them.
    #[test]
    fn widened_rows_are_the_pairs_of_each_row() {
        let (k, stride, count) = (5, 7, 3);
        let rows: Vec<i8> = (0..count * stride).map(|i| (i as i8).wrapping_mul(37)).collect();
        let scales = [0.5, 0.25, 2.0];
        let mut header = vec![0u8; WEIGHT_ROWS_HEADER];
        write_weight_rows_header(&mut header, &scales, rows.as_ptr(), stride);
        let read: Vec<f32> = (0..MR).map(|r| f32::from_le_bytes(header[r * 4..][..4].try_into().unwrap())).collect();
        assert_eq!(read, [0.5, 0.25, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let mut widened = WidenedPanel::new();
        // SAFETY: a rows header for k over live rows.
        let values =
            unsafe { std::slice::from_raw_parts(widened.of_rows(header.as_ptr(), k), widened_weight_panel_len(k)) };
        for p in 0..k.div_ceil(2) {
            for r in 0..MR {
                for j in 0..2 {
                    let kk = 2 * p + j;
                    let want = if r < count && kk < k { rows[r * stride + kk] as i16 } else { 0 };
                    assert_eq!(values[(p * MR + r) * 2 + j], want, "pair {p}, row {r}, value {j}");
                }
            }
        }
    }
}
