//! The AMX kernel's tiles held in sixteen AVX-512 registers at a time while tract's fused ops run on them
//! (natively, x86_64).
//!
//! int8_compute's general interpreter holds a tile as an array and runs each op a value at a time through a closure;
//! natively on AMX that epilogue took a fifth of an inference, as much as half the tile multiplies (perf, 40
//! inferences). Here each of 16 rows is one `__m512`, each op one instruction a row, and the scaled sums come
//! straight from AMX's tiles. The same ops in the same order on the same f32 values (no contraction into FMAs;
//! `min`/`max` with the interpreter's NaN rules), so the same logits bit for bit.
//!
//! A held row is a row of tract's tile (the weights are tract's A), the kernel's 32 rows held 16 at a time: the ops
//! run once for each half. A held row's values are contiguous in a matmul's output; in tract's scratch tile at the
//! output's edges (laid out column by column) they are gathered and scattered, so edge tiles stay here too (they
//! are a quarter of layer 4's: 49 pixels make 4 panels of 16). Ops this version does not know go to the
//! interpreter: [`run_wide`] declines them before touching anything.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use tract_linalg::mmm::{FusedKerSpec, OutputStoreKer};

use crate::int8_amx::{self, COLS, ROWS, SplitSums, WIDE_ROWS};

/// The parts of ROWS rows a tile is held in.
const PARTS: usize = WIDE_ROWS / ROWS;

/// Runs one WIDE_ROWS x COLS tile of the wide kernel's `specs`; None (and nothing done) if one of them is not for
/// this version. The tile is held as two parts of ROWS rows, one after the other, each running the whole list of ops
/// on its rows; AMX's sums are taken once, at the first part's AddMatMul.
///
/// # Safety
/// AVX-512F and AMX are here (the AMX kernel runs only then); the specs are tract's for one tile of the wide kernel
/// (whole panels for their K, stores covering the tile).
#[target_feature(enable = "avx512f")]
pub unsafe fn run_wide(specs: &[FusedKerSpec<f32>]) -> Option<isize> {
    let products = specs.iter().filter(|s| matches!(s, FusedKerSpec::AddMatMul { .. })).count();
    // The sums are taken once, for one product.
    if products > 1 || !specs.iter().all(held_here) {
        return None;
    }
    // Written by AMX's tile stores at the first AddMatMul (`taken`); not zeroed before, nor moved after.
    let (mut sums, mut taken) = (MaybeUninit::uninit(), false);
    for part in 0..PARTS {
        // SAFETY: the caller's; part < PARTS.
        unsafe { run_part(specs, part, (&mut sums, &mut taken)) };
    }
    Some(0)
}

/// Rows `part * ROWS..` of the tile, held in registers through the ops (`sums`: AMX's, once `taken`).
///
/// # Safety
/// As [`run_wide`].
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn run_part(
    specs: &[FusedKerSpec<f32>],
    part: usize,
    (sums, taken): (&mut MaybeUninit<SplitSums<PARTS>>, &mut bool),
) {
    // This part's rows of tract's per-row values and of the stores.
    let first = part * ROWS;
    // Tract's per-row values vary along the held rows (each broadcast), its per-column ones along the lanes.
    let per_row = |p: *const f32, h: usize| _mm512_set1_ps(unsafe { *p.add(first + h) });
    let per_col = |p: *const f32| unsafe { _mm512_loadu_ps(p) };
    let mut held = [_mm512_setzero_ps(); ROWS];
    // SAFETY (loads and stores): tract's pointers to a tile's row and column values and its stores covering the
    // tile (the caller's).
    unsafe {
        for spec in specs {
            match *spec {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => held = [_mm512_setzero_ps(); ROWS],
                FusedKerSpec::ScalarMin(s) => each!(held, v => _mm512_min_ps(_mm512_set1_ps(s), v)),
                FusedKerSpec::ScalarMax(s) => each!(held, v => _mm512_max_ps(_mm512_set1_ps(s), v)),
                FusedKerSpec::ScalarAdd(s) => each!(held, v => _mm512_add_ps(v, _mm512_set1_ps(s))),
                FusedKerSpec::ScalarMul(s) => each!(held, v => _mm512_mul_ps(v, _mm512_set1_ps(s))),
                FusedKerSpec::ScalarSub(s) => each!(held, v => _mm512_sub_ps(_mm512_set1_ps(s), v)),
                FusedKerSpec::ScalarSubF(s) => each!(held, v => _mm512_sub_ps(v, _mm512_set1_ps(s))),
                FusedKerSpec::PerRowMin(p) => each!(held, h, v => _mm512_min_ps(per_row(p, h), v)),
                FusedKerSpec::PerRowMax(p) => each!(held, h, v => _mm512_max_ps(per_row(p, h), v)),
                FusedKerSpec::PerRowAdd(p) => each!(held, h, v => _mm512_add_ps(v, per_row(p, h))),
                FusedKerSpec::PerRowMul(p) => each!(held, h, v => _mm512_mul_ps(v, per_row(p, h))),
                FusedKerSpec::PerRowSub(p) => each!(held, h, v => _mm512_sub_ps(per_row(p, h), v)),
                FusedKerSpec::PerRowSubF(p) => each!(held, h, v => _mm512_sub_ps(v, per_row(p, h))),
                FusedKerSpec::PerColMin(p) => each!(held, v => _mm512_min_ps(per_col(p), v)),
                FusedKerSpec::PerColMax(p) => each!(held, v => _mm512_max_ps(per_col(p), v)),
                FusedKerSpec::PerColAdd(p) => each!(held, v => _mm512_add_ps(v, per_col(p))),
                FusedKerSpec::PerColMul(p) => each!(held, v => _mm512_mul_ps(v, per_col(p))),
                FusedKerSpec::PerColSub(p) => each!(held, v => _mm512_sub_ps(per_col(p), v)),
                FusedKerSpec::PerColSubF(p) => each!(held, v => _mm512_sub_ps(v, per_col(p))),
                FusedKerSpec::AddUnicast(store) => {
                    let lanes = lane_offsets(&store);
                    each!(held, h, v => _mm512_add_ps(v, load_row(held_row(&store, first + h), lanes)))
                }
                FusedKerSpec::Store(store) => {
                    let lanes = lane_offsets(&store);
                    for (h, &v) in held.iter().enumerate() {
                        store_row(held_row(&store, first + h), lanes, v);
                    }
                }
                FusedKerSpec::AddMatMul { k, pa, pb, .. } => {
                    // The weight panel is tract's A.
                    let (weights, activations) = (pa, pb);
                    if !*taken {
                        int8_amx::wide_split_sums(sums.as_mut_ptr(), weights, activations, k);
                        *taken = true;
                    }
                    let product = int8_amx::scaled_rows(sums.assume_init_ref(), weights, activations, part);
                    each!(held, h, v => _mm512_add_ps(v, product[h]));
                }
                _ => unreachable!("declined by held_here"),
            }
        }
    }
}

/// `held[h] = expr` for each held row, with `v` its value (and `h` its index): unrolled, so the rows stay in
/// registers.
macro_rules! each {
    ($held:ident, $v:ident => $e:expr) => {
        each!($held, _h, $v => $e)
    };
    ($held:ident, $h:ident, $v:ident => $e:expr) => {
        for $h in 0..ROWS {
            let $v = $held[$h];
            $held[$h] = $e;
        }
    };
}
use each;

/// Whether `spec` runs here: the ops above, the AddMatMul of the kernel's one packing, and stores of f32.
fn held_here(spec: &FusedKerSpec<f32>) -> bool {
    use FusedKerSpec::*;
    match spec {
        Done | Clear | ScalarMin(_) | ScalarMax(_) | ScalarAdd(_) | ScalarMul(_) | ScalarSub(_) | ScalarSubF(_) => true,
        PerRowMin(_) | PerRowMax(_) | PerRowAdd(_) | PerRowMul(_) | PerRowSub(_) | PerRowSubF(_) => true,
        PerColMin(_) | PerColMax(_) | PerColAdd(_) | PerColMul(_) | PerColSub(_) | PerColSubF(_) => true,
        AddMatMul { packing, .. } => *packing == 0,
        AddUnicast(store) | Store(store) => store.item_size == 4 && lane_stride(store).is_some(),
        _ => false,
    }
}

/// The byte stride between a held row's 16 values in a store, if a gather's 32-bit offsets reach them all.
fn lane_stride(store: &OutputStoreKer) -> Option<i32> {
    i32::try_from(store.col_byte_stride).ok().filter(|s| s.checked_mul(COLS as i32 - 1).is_some())
}

/// A held row's lanes in a store: None if they are contiguous (a matmul's output), else their byte offsets
/// (tract's scratch tile at the output's edges, which it lays out column by column).
///
/// # Safety
/// AVX-512F; `store` is held here (held_here).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn lane_offsets(store: &OutputStoreKer) -> Option<__m512i> {
    let stride = lane_stride(store).unwrap_or(4);
    (stride != 4).then(|| _mm512_mullo_epi32(_mm512_set1_epi32(stride), LANES))
}

/// The lane indices 0 to 15.
// SAFETY: sixteen i32 are the 64 bytes of an __m512i.
const LANES: __m512i = unsafe { std::mem::transmute([0i32, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]) };

/// A held row's 16 values from a store, contiguous or at `lanes`' byte offsets.
///
/// # Safety
/// AVX-512F; the 16 values lie in the store.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_row(row: *mut f32, lanes: Option<__m512i>) -> __m512 {
    // SAFETY: the caller's.
    unsafe {
        match lanes {
            None => _mm512_loadu_ps(row),
            Some(offsets) => _mm512_i32gather_ps::<1>(offsets, row),
        }
    }
}

/// Stores a held row's 16 values, contiguous or at `lanes`' byte offsets.
///
/// # Safety
/// As [`load_row`].
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_row(row: *mut f32, lanes: Option<__m512i>, v: __m512) {
    // SAFETY: the caller's.
    unsafe {
        match lanes {
            None => _mm512_storeu_ps(row, v),
            Some(offsets) => _mm512_i32scatter_ps::<1>(row, offsets, v),
        }
    }
}

/// Where held row `h` of the tile lies in a store (its first value).
fn held_row(store: &OutputStoreKer, h: usize) -> *mut f32 {
    store.ptr.wrapping_offset(h as isize * store.row_byte_stride) as *mut f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8_amx::{
        WIDE_ROWS, activation_panel_bytes, pack_weight_panel, quantize_activation_panel, weight_panel_bytes,
    };
    use crate::int8_compute::interpret_amx_wide_tile;

    /// Deterministic values with a NaN, infinities, zeros of both signs and ties.
    fn values(n: usize, seed: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n).map(|i| ((i * 7 + seed * 13) as f32 * 0.61).sin() * 9.0).collect();
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, 0.5, -2.5];
        for (i, s) in specials.iter().enumerate() {
            v[(i * 37 + seed) % n] = *s;
        }
        v
    }

    /// Every op this version holds, in one list: the tile stored, and tract's tile as the interpreter leaves it.
    fn ops(rows: &[f32], cols: &[f32], unicast: OutputStoreKer, out: OutputStoreKer) -> Vec<FusedKerSpec<f32>> {
        use FusedKerSpec::*;
        let (r, c) = (rows.as_ptr(), cols.as_ptr());
        vec![
            AddUnicast(unicast),
            ScalarMul(1.5),
            PerRowAdd(r),
            PerColMul(c),
            ScalarSub(0.25),
            PerRowSubF(r),
            PerColSub(c),
            ScalarSubF(-3.0),
            PerRowMul(c),
            PerColAdd(r),
            PerRowSub(c),
            PerColSubF(r),
            ScalarAdd(2.0),
            PerRowMax(r),
            PerColMin(c),
            ScalarMax(-4.0),
            PerRowMin(c),
            PerColMax(r),
            ScalarMin(6.0),
            AddUnicast(unicast),
            Store(out),
            Done,
        ]
    }

    /// A store of a tile held in `buffer`, rows `row` floats apart and columns `col`.
    fn store(buffer: &mut [f32], row: usize, col: usize) -> OutputStoreKer {
        OutputStoreKer {
            ptr: buffer.as_mut_ptr() as _,
            row_byte_stride: 4 * row as isize,
            col_byte_stride: 4 * col as isize,
            item_size: 4,
        }
    }

    /// A 64-byte aligned buffer, as tract's panels are.
    fn aligned(len: usize) -> Vec<[u8; 64]> {
        vec![[0; 64]; len.div_ceil(64)]
    }

    #[test]
    fn ops_in_registers_are_the_interpreters_bit_for_bit() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 on this machine: the AMX kernel never runs here");
            return;
        }
        const R: usize = WIDE_ROWS;
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        // R values each (R > COLS): ops() reads each vector as per-row values too.
        let (rows, cols) = (values(R, 1), values(R, 2));
        let mut unicast = values(R * 20, 3);
        // Tract's tile (r, c) at [r * 20 + c], rows contiguous as a matmul's output is; then at [r + c * R], as
        // tract lays out its scratch tile at the output's edges (held rows gathered and scattered).
        let layouts = [(20, 1), (1, R)];
        for (row, col) in layouts {
            let (mut ours, mut reference) = (vec![0f32; R * 20], vec![0f32; R * 20]);
            let mut specs = vec![FusedKerSpec::Clear];
            specs.extend(ops(&rows, &cols, store(&mut unicast, row, col), store(&mut ours, row, col)));
            // SAFETY: AVX-512F is here; the pointers cover the tile. No AddMatMul: AMX is not used.
            assert_eq!(unsafe { run_wide(&specs) }, Some(0));
            *specs.iter_mut().rev().nth(1).unwrap() = FusedKerSpec::Store(store(&mut reference, row, col));
            // SAFETY: as above.
            assert_eq!(unsafe { interpret_amx_wide_tile(&specs) }, 0);
            assert!(ours.iter().any(|v| v.is_nan()) && ours.iter().any(|v| v.is_finite() && *v != 0.0));
            assert_eq!(bits(&ours), bits(&reference), "rows {row} and columns {col} apart");
        }

        if !int8_amx::available() {
            eprintln!("no AMX on this machine: the tile's products are checked by tests/int8_amx.rs elsewhere");
            return;
        }
        let k = 300;
        let q: Vec<i8> = (0..R * k).map(|i| (i * 31 % 255) as i8).collect();
        let weight_rows: Vec<&[i8]> = q.chunks(k).collect();
        let mut w = aligned(weight_panel_bytes::<R>(k));
        pack_weight_panel::<R>(
            &mut w.as_flattened_mut()[..weight_panel_bytes::<R>(k)],
            k,
            &values(R, 4).iter().map(|v| v.abs() + 0.1).collect::<Vec<_>>(),
            &weight_rows,
        );
        let mut x = aligned(activation_panel_bytes(k));
        quantize_activation_panel(
            &mut x.as_flattened_mut()[..activation_panel_bytes(k)],
            &values(k * COLS, 5),
            k,
            COLS,
        );
        let (pa, pb) = (w.as_ptr() as *const u8, x.as_ptr() as *const u8);
        for (row, col) in layouts {
            let (mut ours, mut reference) = (vec![0f32; R * 20], vec![0f32; R * 20]);
            let mut specs = vec![FusedKerSpec::Clear, FusedKerSpec::AddMatMul { k, pa, pb, packing: 0 }];
            specs.extend(ops(&rows, &cols, store(&mut unicast, row, col), store(&mut ours, row, col)));
            // SAFETY: AVX-512F and AMX are here; whole aligned panels of k; the stores cover the tile.
            assert_eq!(unsafe { run_wide(&specs) }, Some(0));
            *specs.iter_mut().rev().nth(1).unwrap() = FusedKerSpec::Store(store(&mut reference, row, col));
            // SAFETY: as above.
            assert_eq!(unsafe { interpret_amx_wide_tile(&specs) }, 0);
            assert_eq!(bits(&ours), bits(&reference), "a product, rows {row} and columns {col} apart");
            // The last weight row's products (the second part's).
            let last_row = (0..COLS).map(|c| reference[(R - 1) * row + c * col]);
            assert!(last_row.into_iter().any(|v| v.is_finite() && v != 0.0), "the last weight row");
        }
        // Two products, or a packing the kernel has not: the interpreter's, which declines the packing too.
        let two = vec![FusedKerSpec::AddMatMul { k, pa, pb, packing: 0 }; 2];
        let other = vec![FusedKerSpec::Clear, FusedKerSpec::AddMatMul { k, pa, pb, packing: 1 }, FusedKerSpec::Done];
        // SAFETY: as above; nothing runs.
        assert_eq!(unsafe { interpret_amx_wide_tile(&other) }, 1);
        for specs in [two, other] {
            // SAFETY: as above; nothing runs.
            assert_eq!(unsafe { run_wide(&specs) }, None);
        }
    }
}
