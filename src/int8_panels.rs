//! Keeps the weights int8 inside tract's optimised plan, widened to f32 one matrix at a time as it runs.
//!
//! With weights folded to f32, tract holds 276 MB of packed f32 panels for WRN-50-2, and wasm memory never shrinks
//! from its load peak (~650 MB). Instead, fold_weights hands tract each int8 weight as an f32 model input read by its
//! Conv or Gemm (so that tract's constant folding leaves it alone), its int8 values and per-channel scales aside, and
//! tract builds a plan that would pack that input at every run. This module then packs each int8 weight once, in
//! exactly the layout tract's f32 packer uses, with one scale per row. The matmul asks for A panel by panel
//! ([`MMMInputValue::panel_bytes`]) and gets `q as f32 * scale`, the very product ONNX's DequantizeLinear computes. A
//! chain of any other shape is left to tract, its weight given back as a constant (dequantised).
//! For int8 compute, the same chain hands the weight's rows to int8_compute instead, which packs them its own way.

use std::alloc;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use tract_linalg::mmm::{EagerPackedInput, MMMInputFormat, MMMInputValue, PackedExoticFact, PackedMatrixStorage};
use tract_linalg::pack::PackedFormat;
use tract_onnx::pb::TensorProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::TractErrorContext;
use tract_onnx::tract_core::internal::{Blob, ExoticFact, TensorView, TypedModelPatch, bail, ensure};
use tract_onnx::tract_core::ops::change_axes::{AxisOp, IntoShape};
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::matmul::pack::DynPackedExoticFact;
use tract_onnx::tract_core::ops::source::TypedSource;

use crate::fold_weights::element_count;
use crate::int8_compute::{Convolutions, switch_with_weight_rows};
use crate::model_bytes::{BytesSlice, ModelBytes, as_i8};
use crate::proto_split::SplitWeights;

/// Replaces every packed weight computed from one of the `lifted` int8 weights (model inputs named after them, see
/// fold_weights::lift_int8_weights) by int8 panels; with int8 compute (`int8_compute`: the model's convolutions), a
/// matmul the int8 kernel can run switches to it instead, its weight packed straight from the rows (int8_compute).
/// Lifted weights are no model inputs afterwards: any not replaced becomes a constant again. Returns how many
/// matrices are int8.
pub fn keep_packed_weights_int8(
    model: &mut TypedModel,
    mut by_name: LiftedWeights,
    int8_compute: Option<&Convolutions>,
) -> TractResult<usize> {
    let lifted_names: HashSet<String> = by_name.keys().cloned().collect();
    let packs: Vec<usize> = model.nodes().iter().filter(|n| n.op.name() == "OptMatMulPack").map(|n| n.id).collect();
    let mut replaced = 0;
    // The widened buffer holds one matrix at a time, so a matmul may read only one Int8Panels.
    let mut consumers = HashSet::new();
    for pack in packs {
        // A packer of activations whose matmul switched to int8 compute is gone by now (int8_compute gathers the
        // activations from the packer's input, and tract drops what nothing reads).
        if model.node(pack).op.name() != "OptMatMulPack" {
            continue;
        }
        let output = OutletId::new(pack, 0);
        let readers: Vec<usize> = model.node(pack).outputs[0].successors.iter().map(|s| s.node).collect();
        if readers.iter().any(|r| consumers.contains(r)) {
            continue;
        }
        let Some(chain) = Int8Chain::find(model, pack, &by_name)? else {
            continue;
        };
        let Some(layout) = chain.layout(model, &by_name)? else {
            continue;
        };
        let q = chain.values(&by_name);
        if q.len() != layout.shape.iter().product::<usize>() {
            continue;
        }
        let switched = match pair_weights_input(model, &readers, output, &layout) {
            Some((matmul, input)) if let Some(convs) = int8_compute => {
                let rows = (layout.mn, layout.k, layout.strides[layout.mn_axis] as usize);
                let in_place = by_name.get(&chain.source).and_then(|w| w.in_place.clone());
                switch_with_weight_rows(model, matmul, input, (q, in_place), rows, &layout.scale, convs)?
            }
            _ => false,
        };
        if !switched && !replace_with_int8_panels(model, pack, &chain, &layout, &by_name)? {
            continue;
        }
        consumers.extend(readers);
        replaced += 1;
        // Done with this weight: a decoded copy (not one read in place from the model's bytes) is freed.
        by_name.remove(&chain.source);
    }
    // Drops the lifted inputs and packers nothing reads any more.
    model.compact()?;
    restore_lifted_weights(model, &lifted_names, &by_name)?;
    Ok(replaced)
}

/// Packer `pack`'s output replaced by the int8 panels of `chain`'s weight, if it can be.
#[inline(never)] // a step of Model::from_onnx
fn replace_with_int8_panels(
    model: &mut TypedModel,
    pack: usize,
    chain: &Int8Chain,
    layout: &Layout,
    by_name: &LiftedWeights,
) -> TractResult<bool> {
    let Some(panels) = chain.pack_int8(layout, by_name)? else {
        return Ok(false);
    };
    let output = OutletId::new(pack, 0);
    let batch: TVec<usize> = model.outlet_fact(output)?.shape.as_concrete().context("packed shape")?.into();
    let storage = PackedMatrixStorage::new_batched(&batch, tvec![Box::new(panels) as Box<dyn MMMInputValue>]);
    let fact = model.outlet_fact(output)?.exotic_fact.clone();
    let konst = Const::new_with_opt_exotic_fact(Arc::new(storage.into_tensor(f32::datum_type())), fact)?;
    let mut patch = TypedModelPatch::default();
    let wire = patch.wire_node(format!("{}.int8", model.node(pack).name), konst, &[])?[0];
    patch.shunt_outside(model, output, wire)?;
    crate::optimiser::apply(patch, model)?;
    Ok(true)
}

/// The lifted weights (`lifted_names`) are model inputs no more: a weight some chain still reads goes back in as an
/// f32 constant.
#[inline(never)] // a step of Model::from_onnx
fn restore_lifted_weights(
    model: &mut TypedModel,
    lifted_names: &HashSet<String>,
    by_name: &LiftedWeights,
) -> TractResult<()> {
    let lifted_inputs: Vec<usize> =
        model.inputs.iter().map(|o| o.node).filter(|&id| lifted_names.contains(&model.node(id).name)).collect();
    for &id in &lifted_inputs {
        if let Some(weight) = by_name.get(&model.node(id).name) {
            let mut patch = TypedModelPatch::default();
            let wire = patch.wire_node(
                format!("{}.const", model.node(id).name),
                Const::new(weight.dequantized()?.into())?,
                &[],
            )?[0];
            patch.shunt_outside(model, OutletId::new(id, 0), wire)?;
            crate::optimiser::apply(patch, model)?;
        }
    }
    model.inputs.retain(|o| !lifted_inputs.contains(&o.node));
    model.compact()
}

/// The matmul and its input that `output` feeds, if that matmul is its only reader and the weight's rows hold K
/// contiguously (what [`switch_with_weight_rows`] packs from).
fn pair_weights_input(
    model: &TypedModel,
    readers: &[usize],
    output: OutletId,
    layout: &Layout,
) -> Option<(usize, usize)> {
    let ([matmul], 1) = (readers, layout.strides[layout.k_axis]) else {
        return None;
    };
    let input = model.node(*matmul).inputs.iter().position(|&i| i == output)?;
    Some((*matmul, input))
}

/// The lifted int8 weights by name.
pub type LiftedWeights<'a> = HashMap<String, LiftedWeight<'a>>;

/// One lifted int8 weight: its dims, its values (where they lie in the model's bytes, or as decoded) and the scale of
/// each output channel (axis 0).
pub struct LiftedWeight<'a> {
    dims: Vec<usize>,
    values: Cow<'a, [u8]>,
    scale: Vec<f32>,
    /// The values again, if they lie in model bytes that outlive the load.
    in_place: Option<BytesSlice>,
}

impl LiftedWeight<'_> {
    pub(crate) fn values(&self) -> &[i8] {
        as_i8(&self.values)
    }

    pub(crate) fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// One scale per output channel (axis 0).
    pub(crate) fn scales(&self) -> &[f32] {
        &self.scale
    }

    /// The weight as a tract tensor (a copy).
    fn tensor(&self) -> TractResult<Tensor> {
        // SAFETY: every byte is a valid i8.
        unsafe { Tensor::from_raw::<i8>(&self.dims, &self.values) }
    }

    /// The weight in f32, each value times its channel's scale (ONNX's DequantizeLinear).
    fn dequantized(&self) -> TractResult<Tensor> {
        let per_channel = self.values.len() / self.scale.len().max(1);
        let values: Vec<f32> =
            self.values().iter().enumerate().map(|(i, &q)| q as f32 * self.scale[i / per_channel]).collect();
        Tensor::from_shape(&self.dims, &values)
    }
}

/// The lifted weights by name, each one's values read in place if proto_split took them out of the model's bytes.
/// `lasting_bytes` are those bytes if they outlive the load.
#[inline(never)] // a step of Model::from_onnx
pub fn lifted_weights<'a>(
    lifted: Vec<(TensorProto, Vec<f32>)>,
    split: &SplitWeights<'a>,
    lasting_bytes: Option<&ModelBytes>,
) -> TractResult<LiftedWeights<'a>> {
    let mut by_name = HashMap::new();
    for (t, scale) in lifted {
        let int8 = t.data_type == tract_onnx::pb::tensor_proto::DataType::Int8 as i32;
        let (count, dims): (_, Vec<usize>) = (element_count(&t.dims), t.dims.iter().map(|&d| d as usize).collect());
        let name = t.name.clone();
        let values = split.take(t);
        ensure!(int8 && count == Some(values.len()), "{name} is not raw int8 of its shape");
        ensure!(
            dims.first() == Some(&scale.len()) && values.len().is_multiple_of(scale.len()),
            "{name}: one scale per output channel"
        );
        let in_place = match (&values, lasting_bytes) {
            (Cow::Borrowed(values), Some(bytes)) => bytes.slice_of(values),
            _ => None,
        };
        by_name.insert(name, LiftedWeight { dims, values, scale, in_place });
    }
    Ok(by_name)
}

/// What feeds a weight packer: a lifted weight (an f32 Source whose int8 values and scales are aside) behind reshapes
/// that keep the row-major order. Anything else is left to tract.
struct Int8Chain {
    /// The lifted weight's name.
    source: String,
    pack: usize,
}

/// The packer's input, which the int8 weight's values are (row-major), and the scale of each of its rows.
struct Layout {
    shape: TVec<usize>,
    strides: TVec<isize>,
    k_axis: usize,
    mn_axis: usize,
    k: usize,
    mn: usize,
    scale: Vec<f32>,
    f32_format: PackedFormat,
    packer: Box<dyn MMMInputFormat>,
}

impl Int8Chain {
    #[inline(never)] // a step of Model::from_onnx
    fn find(model: &TypedModel, pack: usize, lifted: &LiftedWeights) -> TractResult<Option<Int8Chain>> {
        let mut node = model.node(pack);
        loop {
            let [data] = node.inputs.as_slice() else {
                return Ok(None);
            };
            if node.id != pack && !keeps_row_major_order(node) {
                return Ok(None);
            }
            let producer = model.node(data.node);
            if producer.outputs.len() != 1 || producer.outputs[0].successors.len() != 1 {
                return Ok(None);
            }
            if producer.op_is::<TypedSource>() {
                let chain = Int8Chain { source: producer.name.clone(), pack };
                return Ok(lifted.contains_key(&producer.name).then_some(chain));
            }
            node = producer;
        }
    }

    /// The int8 weight's values, row-major.
    fn values<'s>(&self, lifted: &'s LiftedWeights) -> &'s [i8] {
        lifted.get(&self.source).map_or(&[], LiftedWeight::values)
    }

    /// What the packer packs, if the int8 weight's values are it (with one scale per row).
    #[inline(never)] // a step of Model::from_onnx
    fn layout(&self, model: &TypedModel, lifted: &LiftedWeights) -> TractResult<Option<Layout>> {
        let pack = model.node(self.pack);
        let input = model.outlet_fact(pack.inputs[0])?;
        let output = model.outlet_fact(pack.id.into())?;
        let Some(packers) = output.exotic_fact.as_ref().and_then(|f| f.downcast_ref::<DynPackedExoticFact>()) else {
            return Ok(None);
        };
        let [packer] = packers.packers.as_slice() else {
            return Ok(None);
        };
        let Some(f32_format) = packer.downcast_ref::<PackedFormat>() else {
            return Ok(None);
        };
        let (Some(shape), Some(batch)) = (input.shape.as_concrete(), output.shape.as_concrete()) else {
            return Ok(None);
        };
        if f32_format.dt != f32::datum_type() || batch.iter().product::<usize>() != 1 {
            return Ok(None);
        }
        let mapping = pack.op.as_typed().context("typed")?.axes_mapping(&[input], &[output])?;
        let (k_axis, mn_axis) = (mapping.axis('K')?.inputs[0][0], mapping.axis('M')?.inputs[0][0]);
        let (k, mn) = (shape[k_axis], shape[mn_axis]);
        let Some(scale) = self.row_scales(shape, mn_axis, lifted)? else {
            return Ok(None);
        };
        // The chain's reshapes keep row-major order, so the packer's input is the int8 weight's values in the
        // packer's shape. (The count is checked against the values when they are read.)
        let (shape, strides) = (shape.into(), Tensor::natural_strides(shape));
        Ok(Some(Layout {
            shape,
            strides,
            k_axis,
            mn_axis,
            k,
            mn,
            scale,
            f32_format: f32_format.clone(),
            packer: packer.clone(),
        }))
    }

    /// The int8 weight packed the way tract would pack its f32 form, and the scale of each row.
    fn pack_int8(&self, layout: &Layout, lifted: &LiftedWeights) -> TractResult<Option<Int8Panels>> {
        let Layout { ref shape, ref strides, k_axis, mn_axis, k, mn, ref f32_format, ref packer, .. } = *layout;
        let source = lifted.get(&self.source).context("lifted weight")?.tensor()?;
        // SAFETY: the view covers the source's elements exactly once (the same count, which the caller checked, and
        // natural strides), and i8 is the source's datum type (LiftedWeight::tensor).
        let q = unsafe { TensorView::from_bytes(&source, 0, shape, strides) };
        let int8_format = PackedFormat { dt: i8::datum_type(), ..f32_format.clone() };
        let packed = int8_format.pack_tensor_view(&q, k_axis, mn_axis)?;
        let Ok(packed) = packed.downcast::<EagerPackedInput>() else { bail!("int8 packing is not eager") };
        let r = f32_format.r;
        let panel_len = packed.panel_bytes;
        if panel_len < k * r || panel_len == 0 || packed.packed.len() != mn.div_ceil(r) * panel_len {
            return Ok(None);
        }
        let mut values = Arc::try_unwrap(packed.packed).unwrap_or_else(|shared| (*shared).clone());
        // Whatever the alignment padding holds, widen it to zeros.
        values.as_bytes_mut().chunks_exact_mut(panel_len).for_each(|panel| panel[k * r..].fill(0));
        let fact = PackedExoticFact { format: packer.clone(), mn: mn.to_dim(), k };
        let scale = layout.scale.clone();
        Ok(Some(Int8Panels::new(fact, mn, r, panel_len, f32_format.alignment_bytes.max(16), values, scale)))
    }

    /// One scale per row of the packed matrix: the lifted weight's, if its output channels are the rows. Reshapes
    /// keep row-major order, so channel c (axis 0) stays row c iff the channel axis has the same size and the same
    /// number of elements after it on both sides.
    fn row_scales(
        &self,
        packed_shape: &[usize],
        mn_axis: usize,
        lifted: &LiftedWeights,
    ) -> TractResult<Option<Vec<f32>>> {
        let inner = |shape: &[usize], axis: usize| shape[axis + 1..].iter().product::<usize>();
        let weight = lifted.get(&self.source).context("lifted weight")?;
        let rows_are_channels =
            weight.dims[0] == packed_shape[mn_axis] && inner(&weight.dims, 0) == inner(packed_shape, mn_axis);
        Ok(rows_are_channels.then(|| weight.scale.clone()))
    }
}

/// Reshapes: IntoShape with plain row-major strides, and AxisOp's add, remove and reshape (not its moves).
fn keeps_row_major_order(node: &TypedNode) -> bool {
    if let Some(into) = node.op_as::<IntoShape>() {
        return into.strides == Tensor::natural_strides(&into.dims);
    }
    matches!(node.op_as::<AxisOp>(), Some(AxisOp::Add(_) | AxisOp::Rm(_) | AxisOp::Reshape(..)))
}

/// The matrix being multiplied now, widened to f32 panel by panel as the matmul first asks for each, shared by the
/// threads working on it. tract's own scratch keeps one A panel per thread, and its tile order (made to reuse
/// im2col's B panels) would widen each panel again for every column tile. One matrix at a time bounds the buffer to
/// the largest weight (38 MB for WRN-50-2's layer4 3x3), whatever the number of threads, and each weight is widened
/// once per run instead of being repacked.
static WIDENED: Mutex<Option<Widened>> = Mutex::new(None);

struct Widened {
    matrix: u64,
    values: Blob,
    /// Per panel: EMPTY, WIDENING (one thread is writing it) or READY.
    state: Arc<[AtomicU8]>,
}

const EMPTY: u8 = 0;
const WIDENING: u8 = 1;
const READY: u8 = 2;

/// Tells matrices apart for `WIDENED` (an address could be reused by a matrix loaded later).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// One packed weight matrix: tract's f32 panel layout in int8, each value to be multiplied by its row's scale.
#[derive(Clone)]
pub struct Int8Panels {
    id: u64,
    fact: PackedExoticFact,
    mn: usize,
    /// Rows per panel (the kernel's tile height).
    r: usize,
    /// Values per panel, padding included (as in the f32 packing).
    panel_len: usize,
    alignment: usize,
    /// The int8 values (as bytes).
    q: Arc<Blob>,
    /// One per row, panels' padding rows included.
    scale: Arc<[f32]>,
}

impl Int8Panels {
    fn new(
        fact: PackedExoticFact,
        mn: usize,
        r: usize,
        panel_len: usize,
        alignment: usize,
        q: Blob,
        mut scale: Vec<f32>,
    ) -> Int8Panels {
        scale.resize(mn.div_ceil(r) * r, 0.0);
        Int8Panels {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            fact,
            mn,
            r,
            panel_len,
            alignment,
            q: Arc::new(q),
            scale: scale.into(),
        }
    }

    fn q(&self) -> &[i8] {
        let bytes = self.q.as_bytes();
        // SAFETY: i8 and u8 have the same size and alignment, and every byte is a valid i8.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const i8, bytes.len()) }
    }

    /// Row `mn`'s value at `kk`, in int8.
    fn value(&self, mn: usize, kk: usize) -> i8 {
        self.q()[(mn / self.r) * self.panel_len + kk * self.r + mn % self.r]
    }

    /// Panel `i` as f32: each value its int8 times its row's scale.
    fn widen(&self, i: usize, out: &mut [f32]) {
        let q = &self.q()[i * self.panel_len..][..self.panel_len];
        let scale = &self.scale[i * self.r..][..self.r];
        // The wasm f32 kernel's tile height: a fixed width lets the compiler vectorise with the scales in registers.
        // (Natively, fixed widths of 16 and 32 measured slower than this general loop.)
        match self.r {
            8 => widen_rows::<8>(q, scale, out),
            _ => {
                for (o, q) in out.chunks_exact_mut(self.r).zip(q.chunks_exact(self.r)) {
                    for j in 0..self.r {
                        o[j] = q[j] as f32 * scale[j];
                    }
                }
            }
        }
        let whole_rows = self.panel_len / self.r * self.r;
        out[whole_rows..].fill(0.0);
    }
}

/// `out[k][j] = q[k][j] * scale[j]` for rows of `R` values.
fn widen_rows<const R: usize>(q: &[i8], scale: &[f32], out: &mut [f32]) {
    let scale: &[f32; R] = scale.try_into().expect("one scale per row");
    for (o, q) in out.chunks_exact_mut(R).zip(q.chunks_exact(R)) {
        for j in 0..R {
            o[j] = q[j] as f32 * scale[j];
        }
    }
}

impl MMMInputValue for Int8Panels {
    fn format(&self) -> &dyn MMMInputFormat {
        &*self.fact.format
    }

    fn scratch_panel_buffer_layout(&self) -> Option<alloc::Layout> {
        None // panels go to this thread's widened copy of the matrix instead, see `WIDENED`
    }

    fn panel_bytes(&self, i: usize, _buffer: Option<*mut u8>) -> TractResult<*const u8> {
        ensure!(i < self.mn.div_ceil(self.r), "panel {i} of {}", self.mn.div_ceil(self.r));
        let panels = self.mn.div_ceil(self.r);
        let (base, state) = {
            let mut widened = WIDENED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let w = widened.get_or_insert_with(|| Widened {
                matrix: u64::MAX,
                values: unsafe { Blob::new_for_size_and_align(0, 64) },
                state: Arc::new([]),
            });
            if w.matrix != self.id {
                // SAFETY: this may free the previous matrix's panels. No pointer to them is in use any more: tract
                // runs one matmul at a time (its threads all on the same one), asks again for every panel after each
                // matmul's `prepare`, and a matmul reads one Int8Panels at most (keep_packed_weights_int8 sees to it).
                unsafe { w.values.ensure_size_and_align(4 * self.q().len(), self.alignment) };
                w.state = (0..panels).map(|_| AtomicU8::new(EMPTY)).collect();
                w.matrix = self.id;
            }
            (w.values.as_mut_ptr() as *mut f32, w.state.clone())
        };
        // SAFETY: the blob holds q.len() f32, aligned as the f32 packing was, and panel i is in it (checked above).
        let panel = unsafe { base.add(i * self.panel_len) };
        match state[i].compare_exchange(EMPTY, WIDENING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {
                // SAFETY: the state makes this thread the panel's only writer, and no reader has its pointer yet.
                self.widen(i, unsafe { std::slice::from_raw_parts_mut(panel, self.panel_len) });
                state[i].store(READY, Ordering::Release);
            }
            Err(READY) => {}
            // Another thread is widening it: a few microseconds.
            Err(_) => {
                while state[i].load(Ordering::Acquire) != READY {
                    std::hint::spin_loop();
                }
            }
        }
        Ok(panel as *const u8)
    }

    fn mn(&self) -> usize {
        self.mn
    }

    fn k(&self) -> usize {
        self.fact.k
    }

    fn exotic_fact(&self) -> &dyn ExoticFact {
        &self.fact
    }

    fn extract_at_mn_f16(&self, _mn: usize, _slice: &mut [f16]) -> TractResult<()> {
        bail!("Int8Panels holds f32 weights")
    }

    fn extract_at_mn_f32(&self, mn: usize, slice: &mut [f32]) -> TractResult<()> {
        ensure!(mn < self.mn && slice.len() == self.k());
        for (kk, s) in slice.iter_mut().enumerate() {
            *s = self.value(mn, kk) as f32 * self.scale[mn];
        }
        Ok(())
    }
}

impl Hash for Int8Panels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fact.hash(state);
        self.q.hash(state);
        self.scale.iter().for_each(|s| s.to_bits().hash(state));
    }
}

impl PartialEq for Int8Panels {
    fn eq(&self, other: &Self) -> bool {
        self.fact == other.fact
            && self.q == other.q
            && self.scale.iter().map(|s| s.to_bits()).eq(other.scale.iter().map(|s| s.to_bits()))
    }
}

impl Eq for Int8Panels {}

impl fmt::Debug for Int8Panels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "int8 panels of {} (mn={} k={})", self.fact.format, self.mn, self.fact.k)
    }
}

impl fmt::Display for Int8Panels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lifted weight that no chain took is put back dequantised, as DequantizeLinear computes it: each output
    /// channel (axis 0) times its own scale.
    #[test]
    fn a_lifted_weight_dequantises_per_output_channel() {
        let values: Vec<u8> = [1i8, -2, 3, 4, -128, 127].iter().map(|&q| q as u8).collect();
        let weight =
            LiftedWeight { dims: vec![2, 3, 1, 1], values: Cow::Owned(values), scale: vec![0.5, 0.25], in_place: None };
        let tensor = weight.dequantized().unwrap();
        assert_eq!(tensor.shape(), &[2, 3, 1, 1]);
        let got: Vec<f32> = tensor.to_plain_array_view::<f32>().unwrap().iter().copied().collect();
        assert_eq!(got, [0.5, -1.0, 1.5, 1.0, -32.0, 31.75]);
    }
}
