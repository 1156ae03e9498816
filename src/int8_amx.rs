//! int8 compute on Intel AMX (natively, x86_64 Linux): the integer sums of int8_matmul's pair kernel, on AMX's
//! tile multiplies.
//!
//! AMX multiplies int8 by int8 only. The activations here are int16 (11 to 15 bits, [`activation_qmax`]), so each
//! is split into a signed high byte and an unsigned low byte, x = 256 h + l, and the two sums are taken apart:
//! `TDPBSSD` (signed weights x signed h) and `TDPBSUD` (signed weights x unsigned l), each into its own i32 tile.
//! Then sum(w x) = 256 sum(w h) + sum(w l), exactly, in i32 (qmax keeps the whole sum inside it, so its parts are
//! too): the same integer sums as the pair kernel, and, scaled the same way, the same tile bit for bit.
//!
//! The kernel's tile is [`WIDE_ROWS`] x [`COLS`], the weights as tract's A (int8_compute transposes the products
//! tract makes with the weights as B). It multiplies two weight tiles by each load of the activations' two tiles,
//! into four accumulators: against a [`ROWS`]-row tile (`split_sums_16`, which no matmul runs on, kept as the
//! benchmark's baseline), a third less loaded a tile multiply, and four independent chains instead of two. With
//! panels in L2 (K of 1152 and more, WRN's 3x3 convolutions) it took 10 ns a tile multiply against 14.5
//! (`cargo run --release --example amx_kernel`).
//!
//! Layouts, panel by panel; every panel and every tile row 64-byte aligned, as tile loads want (4x faster than
//! unaligned ones here):
//! - weights, R rows (ROWS or WIDE_ROWS): `[R] f32` row scales, then per 64 of K, the R rows' 64 bytes (`[R][64]`:
//!   AMX's first operand, one or two tiles), K padded with zeros to a multiple of 64;
//! - activations, [`COLS`] columns: `[COLS] f32` column scales, then per 64 of K, the high bytes as AMX's second
//!   operand wants them (`[16 quads of K][COLS][4]`), then the low bytes the same way. Padding is zero.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(target_arch = "x86_64")]
use tract_onnx::prelude::TVec;

use crate::im2col::Run;
use crate::int8_matmul::{
    ColumnRun, activation_qmax, column_max_abs_portable, column_scales, gather_runs, scaled, write_scales,
};

/// Rows of an AMX tile, and of each half of the kernel's tile that int8_amx_tile holds in registers.
pub const ROWS: usize = 16;
/// Rows of a wide weight panel and of the wide kernel's tile: two AMX tiles.
pub const WIDE_ROWS: usize = 2 * ROWS;
/// Columns of an activation panel and of a tile (an AMX tile's 16 i32 a row).
pub const COLS: usize = 16;
/// K in one tile multiply: 64 bytes a row.
const K_STEP: usize = 64;
/// Bytes of an activation panel's scales header (16 f32: one cache line, so what follows stays aligned).
const HEADER: usize = 64;

/// Bytes of the scales header of a weight panel of `rows` rows (whole cache lines).
const fn weight_header(rows: usize) -> usize {
    4 * rows
}
/// Bytes of one K step of an activation panel: the high bytes' tile, then the low bytes'.
const ACTIVATION_STEP: usize = 2 * COLS * K_STEP;

/// Whether this machine runs AMX's int8 tile multiplies and the OS lets this process use them (asked once).
pub fn available() -> bool {
    static AVAILABLE: LazyLock<bool> = LazyLock::new(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            // CPUID leaf 7: EDX bit 24 is AMX-TILE, bit 25 AMX-INT8. AVX-512 (F, BW, VBMI) quantises the activations
            // and runs the tiles' epilogue.
            let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
            let amx = leaf7.edx & (3 << 24) == 3 << 24;
            amx && quantiser_features() && request_tile_data()
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        false
    });
    *AVAILABLE
}

static TURNED_OFF: AtomicBool = AtomicBool::new(false);

/// Whether models loaded from now on run their int8 matmuls on AMX: when [`available`], unless turned off.
pub fn in_use() -> bool {
    !TURNED_OFF.load(Ordering::Relaxed) && available()
}

/// Turns AMX off (or back on, where available) for models loaded from now on: they then run int8_matmul's pair
/// kernel, which gives the same logits bit for bit (for tests and benchmarks).
pub fn turn_off(off: bool) {
    TURNED_OFF.store(off, Ordering::Relaxed);
}

/// Linux hands AMX's tile data to a process that asks: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_data() -> bool {
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: a syscall that only changes this process's permissions; syscall clobbers rcx and r11.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

/// K padded to whole tile multiplies.
fn padded(k: usize) -> usize {
    k.div_ceil(K_STEP).max(1) * K_STEP
}

/// Bytes of one weight panel of R rows for a sum over `k`.
pub fn weight_panel_bytes<const R: usize>(k: usize) -> usize {
    weight_header(R) + R * padded(k)
}

/// Bytes of one activation panel for a sum over `k`.
pub fn activation_panel_bytes(k: usize) -> usize {
    HEADER + padded(k) / K_STEP * ACTIVATION_STEP
}

/// Writes one weight panel of R rows from the rows of a row-major weight (`rows.len()` <= R, each with its scale).
pub fn pack_weight_panel<const R: usize>(out: &mut [u8], k: usize, scales: &[f32], rows: &[&[i8]]) {
    assert!(R == ROWS || R == WIDE_ROWS, "a kernel's rows");
    assert!(rows.len() == scales.len() && rows.len() <= R, "at most R rows, one scale each");
    assert!(out.len() == weight_panel_bytes::<R>(k) && rows.iter().all(|r| r.len() >= k), "one panel of rows of k");
    out.fill(0);
    let (header, rest) = out.split_at_mut(weight_header(R));
    write_scales(header, scales);
    for (r, row) in rows.iter().enumerate() {
        // SAFETY: i8 and u8 have the same size and alignment.
        let row = unsafe { std::slice::from_raw_parts(row.as_ptr() as *const u8, k) };
        for (step, values) in row.chunks(K_STEP).enumerate() {
            rest[weight_at::<R>(step * K_STEP, r)..][..values.len()].copy_from_slice(values);
        }
    }
}

/// Where weight (r, kk) is in a panel of R rows, after its header: per 64 of K, the panel's R rows of 64 bytes, one
/// after the other. So each of AMX's tile loads reads 1 KB in one run, and a panel is read as one stream (rows K
/// bytes apart were R streams a page or more apart: more than the prefetchers follow).
fn weight_at<const R: usize>(kk: usize, r: usize) -> usize {
    kk / K_STEP * R * K_STEP + r * K_STEP + kk % K_STEP
}

/// Writes one activation panel from `columns` (K x COLS, K-major, as tract packs activations; `cols` columns exist,
/// the others are padding, whatever they hold), each column quantised as int8_matmul quantises it: symmetric, scale
/// max|x| / qmax, rounded half to even (NaN to 0). With AVX-512 (F, BW, VBMI) where the CPU has it, as every CPU with
/// AMX does.
pub fn quantize_activation_panel(out: &mut [u8], columns: &[f32], k: usize, cols: usize) {
    quantize_columns(out, columns, k, cols, None)
}

/// As [`quantize_activation_panel`], from the columns' largest |x| (`max_abs`, zeros for padding columns), which the
/// caller knows (a convolution's, src/im2col.rs), instead of a pass over the panel to find them.
pub fn quantize_activation_panel_with_max(out: &mut [u8], columns: &[f32], k: usize, max_abs: [f32; COLS]) {
    quantize_columns(out, columns, k, COLS, Some(max_abs))
}

/// A panel from `columns` (K x COLS) as one run of `cols` columns, with the columns' maxima if known.
fn quantize_columns(out: &mut [u8], columns: &[f32], k: usize, cols: usize, max_abs: Option<[f32; COLS]>) {
    assert!(cols <= COLS && columns.len() >= k * COLS, "k rows of COLS");
    let all = ColumnRun { values: columns.as_ptr(), r: COLS, from: 0, to: 0, len: cols };
    // SAFETY: the run is within `columns` (asserted).
    unsafe { quantize_activation_runs(out, &[all], k, cols, &mut Vec::new(), max_abs) }
}

/// As [`quantize_activation_panel`], the panel's columns read from `runs` of tract's panels. `columns` is a scratch
/// for CPUs without the AVX-512 quantiser, which gather the runs into one K x COLS panel first. With the columns'
/// maxima if the caller knows them (as [`quantize_activation_panel_with_max`]).
///
/// # Safety
/// Each run's panel holds k rows of its r values; the runs cover columns 0..cols.
pub unsafe fn quantize_activation_runs(
    out: &mut [u8],
    runs: &[ColumnRun],
    k: usize,
    cols: usize,
    columns: &mut Vec<f32>,
    max_abs: Option<[f32; COLS]>,
) {
    assert!(cols <= COLS && out.len() == activation_panel_bytes(k), "one panel");
    #[cfg(target_arch = "x86_64")]
    if quantiser_features() {
        // SAFETY: AVX-512F, BW and VBMI are here; the runs are the caller's, the levels' size is asserted above.
        unsafe { return quantize_runs_avx512(out, &TractRows(runs), k, cols, max_abs) };
    }
    columns.resize(k * COLS, 0.0);
    // SAFETY: the caller's.
    unsafe { gather_runs(runs, k, COLS, columns) };
    quantize_portable(out, columns, k, cols, max_abs)
}

/// As [`quantize_activation_panel`], the panel's columns read straight from a tensor: row kk of `runs` starts at
/// element `k_offsets[kk]` of `values`, as a convolution's patches lie in its input (im2col.rs); with the columns'
/// maxima if the caller knows them. With the AVX-512 quantiser only: false, and nothing written, without it.
///
/// # Safety
/// Every element read, `k_offsets[kk] + from + i` for i <= (len - 1) * step, is below `values.len()`, which fits an
/// i32.
pub(crate) unsafe fn quantize_activation_tensor_runs(
    out: &mut [u8],
    values: &[f32],
    k_offsets: &[usize],
    runs: &[Run],
    cols: usize,
    max_abs: Option<[f32; COLS]>,
) -> bool {
    let k = k_offsets.len();
    assert!(cols <= COLS && out.len() == activation_panel_bytes(k), "one panel");
    let in_panel = |r: &Run| r.len >= 1 && r.to + r.len <= COLS;
    assert!(i32::try_from(values.len()).is_ok() && runs.iter().all(in_panel), "i32 offsets, runs in the panel");
    #[cfg(target_arch = "x86_64")]
    if quantiser_features() {
        // SAFETY: AVX-512F, BW and VBMI are here; the runs are the caller's.
        unsafe {
            let rows = TensorRows::new(values.as_ptr(), k_offsets, runs);
            quantize_runs_avx512(out, &rows, k, cols, max_abs);
        }
        return true;
    }
    let _ = max_abs;
    false
}

/// Whether this CPU runs the AVX-512 quantiser: F, BW and VBMI (as every CPU with AMX does).
#[cfg(target_arch = "x86_64")]
fn quantiser_features() -> bool {
    use std::arch::is_x86_feature_detected as has;
    has!("avx512f") && has!("avx512bw") && has!("avx512vbmi")
}

/// The AVX-512 quantiser, the panel's rows from `rows`, the columns' maxima from `max_abs` or found here.
///
/// # Safety
/// AVX-512F, BW and VBMI; the rows' reads are within their panels or tensors; `out` is one panel of k.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn quantize_runs_avx512<P: PanelRows>(
    out: &mut [u8],
    rows: &P,
    k: usize,
    cols: usize,
    max_abs: Option<[f32; COLS]>,
) {
    // SAFETY: the caller's.
    unsafe {
        let mut max_abs = max_abs.unwrap_or_else(|| column_max_abs_avx512(rows, k));
        // Padding columns count as zeros.
        max_abs[cols..].fill(0.0);
        let (scales, multipliers) = column_scales(max_abs, k);
        split_levels_avx512(write_header(out, &scales), rows, k, &multipliers)
    }
}

/// As [`quantize_activation_panel`], in plain Rust: the reference for the AVX-512 version.
pub fn quantize_activation_panel_portable(out: &mut [u8], columns: &[f32], k: usize, cols: usize) {
    quantize_portable(out, columns, k, cols, None)
}

/// [`quantize_activation_panel_portable`], with the columns' maxima if the caller knows them.
fn quantize_portable(out: &mut [u8], columns: &[f32], k: usize, cols: usize, max_abs: Option<[f32; COLS]>) {
    assert!(cols <= COLS && out.len() == activation_panel_bytes(k) && columns.len() >= k * COLS, "one panel");
    let mut max_abs = max_abs.unwrap_or_else(|| column_max_abs_portable::<COLS>(columns, k, cols));
    max_abs[cols..].fill(0.0);
    let (scales, multipliers) = column_scales(max_abs, k);
    let levels = write_header(out, &scales);
    let qmax = activation_qmax(k) as f32;
    levels.fill(0);
    for kk in 0..k {
        for (c, &m) in multipliers.iter().enumerate() {
            let level = level(columns[kk * COLS + c], m, qmax);
            levels[level_at(kk, c)] = (level >> 8) as u8;
            levels[level_at(kk, c) + COLS * K_STEP] = level as u8;
        }
    }
}

/// Writes a panel's scales; returns what follows them.
fn write_header<'o>(out: &'o mut [u8], scales: &[f32]) -> &'o mut [u8] {
    let (header, rest) = out.split_at_mut(HEADER);
    write_scales(header, scales);
    rest
}

/// Where the AVX-512 quantiser reads a panel's rows from.
#[cfg(target_arch = "x86_64")]
trait PanelRows {
    /// Row kk, as one vector, zeros where no column is.
    ///
    /// # Safety
    /// AVX-512F; kk < k; the reads the source was made for are within their panels or tensors.
    unsafe fn row(&self, kk: usize) -> std::arch::x86_64::__m512;
}

/// Runs of tract's panels: row kk of a run `kk * r` past its values.
#[cfg(target_arch = "x86_64")]
struct TractRows<'r>(&'r [ColumnRun]);

#[cfg(target_arch = "x86_64")]
impl PanelRows for TractRows<'_> {
    /// A masked load per run (masked-off lanes are not read, so a run's load may start before its panel).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn row(&self, kk: usize) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        let mut row = _mm512_setzero_ps();
        for run in self.0 {
            let mask = (((1u32 << run.len) - 1) << run.to) as __mmask16;
            let first = run.values.wrapping_add(kk * run.r + run.from).wrapping_sub(run.to);
            // SAFETY: the lanes in the mask are the run's values of row kk (the caller's).
            row = unsafe { _mm512_mask_loadu_ps(row, mask, first) };
        }
        row
    }
}

/// Runs of a tensor (im2col's), row kk at element `k_offsets[kk]`; how each run reads its lanes, made once.
#[cfg(target_arch = "x86_64")]
struct TensorRows<'r> {
    values: *const f32,
    k_offsets: &'r [usize],
    runs: TVec<RunRead>,
}

/// How a run's lanes (`mask`) are read from a row, past its start.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum RunRead {
    /// Adjacent elements: one masked load from `first` (an offset that may be before the row: masked off).
    Load { mask: std::arch::x86_64::__mmask16, first: isize },
    /// Every other element (a convolution of stride 2): the 2 len - 1 elements the run spans in two masked loads
    /// from `from`, lanes `spans` of each, and the even ones picked out by `index`: 3 instructions, where a gather
    /// is one load per lane.
    EveryOther {
        mask: std::arch::x86_64::__mmask16,
        from: usize,
        spans: [std::arch::x86_64::__mmask16; 2],
        index: std::arch::x86_64::__m512i,
    },
    /// Any other step: a masked gather at `offsets`.
    Gather { mask: std::arch::x86_64::__mmask16, offsets: std::arch::x86_64::__m512i },
}

#[cfg(target_arch = "x86_64")]
impl<'r> TensorRows<'r> {
    #[target_feature(enable = "avx512f")]
    fn new(values: *const f32, k_offsets: &'r [usize], runs: &[Run]) -> TensorRows<'r> {
        use std::arch::x86_64::*;
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let runs = runs
            .iter()
            .map(|run| {
                let mask = (((1u32 << run.len) - 1) << run.to) as __mmask16;
                // Lane l reads element (l - to) * step of the run (masked-off lanes' are not used).
                let lane = _mm512_sub_epi32(lanes, _mm512_set1_epi32(run.to as i32));
                let in_run = _mm512_mullo_epi32(lane, _mm512_set1_epi32(run.step as i32));
                match (run.step, run.len) {
                    (1, _) | (_, 1) => RunRead::Load { mask, first: run.from as isize - run.to as isize },
                    (2, len) => {
                        let span = 2 * len - 1;
                        let spans = [(1u32 << span.min(16)) - 1, (1u32 << span.saturating_sub(16)) - 1];
                        let spans = spans.map(|m| m as __mmask16);
                        RunRead::EveryOther { mask, from: run.from, spans, index: in_run }
                    }
                    _ => {
                        let offsets = _mm512_add_epi32(in_run, _mm512_set1_epi32(run.from as i32));
                        RunRead::Gather { mask, offsets }
                    }
                }
            })
            .collect();
        TensorRows { values, k_offsets, runs }
    }
}

#[cfg(target_arch = "x86_64")]
impl PanelRows for TensorRows<'_> {
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn row(&self, kk: usize) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        let start = self.k_offsets[kk];
        let mut row = _mm512_setzero_ps();
        for read in &self.runs {
            // SAFETY: the lanes in the masks are the run's values of row kk (for every other element, the elements
            // from the run's first to its last), within the tensor (the caller's).
            row = unsafe {
                match *read {
                    RunRead::Load { mask, first } => {
                        _mm512_mask_loadu_ps(row, mask, self.values.wrapping_offset(start as isize + first))
                    }
                    RunRead::EveryOther { mask, from, spans, index } => {
                        let at = self.values.wrapping_add(start + from);
                        let low = _mm512_maskz_loadu_ps(spans[0], at);
                        let high = _mm512_maskz_loadu_ps(spans[1], at.wrapping_add(16));
                        _mm512_mask_mov_ps(row, mask, _mm512_permutex2var_ps(low, index, high))
                    }
                    RunRead::Gather { mask, offsets } => {
                        let offsets = _mm512_add_epi32(offsets, _mm512_set1_epi32(start as i32));
                        _mm512_mask_i32gather_ps::<4>(row, mask, offsets, self.values)
                    }
                }
            };
        }
        row
    }
}

/// As int8_matmul's `column_max_abs_portable`: `max(|x|, m)` keeps m when x is NaN.
///
/// # Safety
/// AVX-512F; as [`quantize_activation_runs`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn column_max_abs_avx512<P: PanelRows>(rows: &P, k: usize) -> [f32; COLS] {
    use std::arch::x86_64::*;
    let mut max_abs = [0f32; COLS];
    // SAFETY: the caller's.
    unsafe {
        let mut m = _mm512_setzero_ps();
        for kk in 0..k {
            m = _mm512_max_ps(_mm512_abs_ps(rows.row(kk)), m);
        }
        _mm512_storeu_ps(max_abs.as_mut_ptr(), m);
    }
    max_abs
}

/// One level as int8_matmul's quantisers make it.
fn level(x: f32, multiplier: f32, qmax: f32) -> i32 {
    (x * multiplier).round_ties_even().clamp(-qmax, qmax) as i16 as i32
}

/// Where value (row kk of K, column c) of an activation panel goes, after the header: its high byte there, its low
/// byte a tile further.
fn level_at(kk: usize, c: usize) -> usize {
    (kk / K_STEP) * ACTIVATION_STEP + (kk % K_STEP / 4) * COLS * 4 + c * 4 + kk % 4
}

/// The levels' bytes, as [`quantize_activation_panel_portable`] writes them: a row of K is 16 columns, one zmm of
/// i32 levels; four rows (a quad of K) make one u32 per column, byte i from row i, which is the quad AMX's second
/// operand wants for that column. A quad's rows are paired into i16 halves of each lane, then two byte permutes
/// pick the high bytes and the low bytes of the four rows.
///
/// # Safety
/// AVX-512F, BW and VBMI; as [`quantize_activation_runs`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn split_levels_avx512<P: PanelRows>(levels: &mut [u8], rows: &P, k: usize, multipliers: &[f32; COLS]) {
    use std::arch::x86_64::*;
    assert!(levels.len() == padded(k) / K_STEP * ACTIVATION_STEP);
    // Byte 4c + i of column c's quad: from lane c of the rows' pairs, rows 0 and 1 in the first (bytes 4c and
    // 4c + 2 for their low bytes), rows 2 and 3 in the second (64 on); the high bytes one further.
    let low_bytes: [u8; 64] = std::array::from_fn(|b| ((b & 2) << 5 | (b & !3) | (b & 1) << 1) as u8);
    // SAFETY (loads and stores): rows kk < k of the runs exist (the caller's), quads of `levels` are in bounds.
    unsafe {
        let low_index = _mm512_loadu_si512(low_bytes.as_ptr() as *const _);
        let high_index = _mm512_add_epi8(low_index, _mm512_set1_epi8(1));
        let multiplier = _mm512_loadu_ps(multipliers.as_ptr());
        let qmax = _mm512_set1_epi32(activation_qmax(k));
        for quad in 0..padded(k) / 4 {
            let kk = quad * 4;
            let l0 = level_avx512(rows, kk, k, multiplier, qmax);
            let l1 = level_avx512(rows, kk + 1, k, multiplier, qmax);
            let l2 = level_avx512(rows, kk + 2, k, multiplier, qmax);
            let l3 = level_avx512(rows, kk + 3, k, multiplier, qmax);
            // Each lane: row 0's (or 2's) level in its low i16, row 1's (or 3's) in its high one.
            let odd = 0xaaaa_aaaa;
            let first = _mm512_mask_blend_epi16(odd, l0, _mm512_slli_epi32::<16>(l1));
            let second = _mm512_mask_blend_epi16(odd, l2, _mm512_slli_epi32::<16>(l3));
            let at = levels.as_mut_ptr().add(level_at(kk, 0));
            _mm512_storeu_si512(at as *mut _, _mm512_permutex2var_epi8(first, high_index, second));
            _mm512_storeu_si512(at.add(COLS * K_STEP) as *mut _, _mm512_permutex2var_epi8(first, low_index, second));
        }
    }
}

/// Row kk's levels as i32 (zeros past k): scaled, rounded half to even (MXCSR's default), NaN to 0, clamped to
/// +-qmax, as the portable version makes them.
///
/// # Safety
/// AVX-512F; as [`quantize_activation_runs`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn level_avx512<P: PanelRows>(
    rows: &P,
    kk: usize,
    k: usize,
    multiplier: std::arch::x86_64::__m512,
    qmax: std::arch::x86_64::__m512i,
) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    if kk >= k {
        return _mm512_setzero_si512();
    }
    // SAFETY: kk < k (the caller's).
    let x = _mm512_mul_ps(unsafe { rows.row(kk) }, multiplier);
    let level = _mm512_maskz_cvtps_epi32(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(x, x), x);
    _mm512_min_epi32(_mm512_max_epi32(level, _mm512_sub_epi32(_mm512_setzero_si512(), qmax)), qmax)
}

/// One tile of integer sums, R rows: `acc[row][col]`.
pub type Tile<const R: usize> = [[i32; COLS]; R];

/// One tile of C, R rows (ROWS or WIDE_ROWS, as many as weight panel `a` has): the integer sums of `a` and
/// activation panel `b` times their row and column scales, as int8_matmul scales its tiles.
///
/// # Safety
/// `a` and `b` are whole panels for the same `k`, 64-byte aligned, and [`available`] is true.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
pub unsafe fn product_tile<const R: usize>(a: *const u8, b: *const u8, k: usize) -> [[f32; COLS]; R] {
    // SAFETY: the caller's; both panels start with their scales.
    unsafe { scaled(sums::<R>(a, b, k), a, b) }
}

/// The tile's integer sums on AMX.
///
/// # Safety
/// As [`product_tile`].
#[cfg(target_arch = "x86_64")]
pub unsafe fn sums<const R: usize>(a: *const u8, b: *const u8, k: usize) -> Tile<R> {
    /// The sums of a tile of R rows, from `split`'s T tiles of high and low bytes.
    ///
    /// # Safety
    /// As [`sums`], R = 16 T.
    unsafe fn joined<const T: usize, const R: usize>(
        split: SplitFn<T>,
        a: *const u8,
        b: *const u8,
        k: usize,
    ) -> Tile<R> {
        let mut sums = std::mem::MaybeUninit::uninit();
        // SAFETY: the caller's; `split` writes every sum.
        let sums = unsafe {
            split(sums.as_mut_ptr(), a, b, k);
            sums.assume_init_ref()
        };
        std::array::from_fn(|r| std::array::from_fn(|c| sums.sum(r, c)))
    }
    // SAFETY: the caller's.
    unsafe {
        if R == WIDE_ROWS { joined::<2, R>(wide_split_sums, a, b, k) } else { joined::<1, R>(split_sums_16, a, b, k) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn sums<const R: usize>(_a: *const u8, _b: *const u8, _k: usize) -> Tile<R> {
    unreachable!("AMX is x86_64 only: available() is false")
}

/// A tile of i32 as AMX stores it fastest: 64-byte aligned.
#[cfg(target_arch = "x86_64")]
#[repr(align(64))]
struct AlignedTile(Tile<ROWS>);

/// The sums of the high bytes and of the low bytes apart, for each AMX tile of rows (one, or two for the wide
/// kernel): `high[t]` and `low[t]` are rows 16 t to 16 t + 15.
#[cfg(target_arch = "x86_64")]
pub struct SplitSums<const T: usize> {
    high: [AlignedTile; T],
    low: [AlignedTile; T],
}

#[cfg(target_arch = "x86_64")]
impl<const T: usize> SplitSums<T> {
    fn sum(&self, r: usize, c: usize) -> i32 {
        let (t, r) = (r / ROWS, r % ROWS);
        self.high[t].0[r][c].wrapping_mul(256).wrapping_add(self.low[t].0[r][c])
    }
}

/// How a kernel writes the split sums of a panel pair (weights, activations, K) into T tiles of each.
#[cfg(target_arch = "x86_64")]
pub type SplitFn<const T: usize> = unsafe fn(*mut SplitSums<T>, *const u8, *const u8, usize);

/// Writes the split sums of a ROWS-row weight panel into `sums` (every value: it may be uninitialised; written by
/// AMX's tile stores, with no zeroing or copy of 2 KB a tile before or after). No matmul runs on it: the baseline
/// `amx_kernel` compares [`wide_split_sums`] with.
///
/// # Safety
/// As [`product_tile`]; `sums` is valid for writes.
#[cfg(target_arch = "x86_64")]
#[inline]
pub unsafe fn split_sums_16(sums: *mut SplitSums<1>, a: *const u8, b: *const u8, k: usize) {
    configure_tiles();
    // SAFETY: the panels hold padded(k) / 64 steps after their headers (the caller's); the tiles are configured as
    // 16 rows of 64 bytes; the stores write 16 rows of 64 bytes into the two tiles.
    unsafe {
        std::arch::asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "2:",
            "tileloadd tmm2, [{a} + {row} * 1]",
            "tileloadd tmm3, [{b} + {row} * 1]",
            "tileloadd tmm4, [{b} + {row} * 1 + 1024]",
            "tdpbssd tmm0, tmm2, tmm3",
            "tdpbsud tmm1, tmm2, tmm4",
            "add {a}, 1024",
            "add {b}, 2048",
            "dec {steps}",
            "jnz 2b",
            "tilestored [{high} + {row} * 1], tmm0",
            "tilestored [{low} + {row} * 1], tmm1",
            a = inout(reg) a.add(weight_header(ROWS)) => _,
            b = inout(reg) b.add(HEADER) => _,
            steps = inout(reg) padded(k) / K_STEP => _,
            row = in(reg) 64usize,
            high = in(reg) &raw mut (*sums).high,
            low = in(reg) &raw mut (*sums).low,
            options(nostack),
        );
    }
}

/// Writes the split sums of a WIDE_ROWS-row weight panel into `sums`, as [`split_sums_16`]: each step loads the
/// activations' two tiles once for both weight tiles, into four accumulators.
///
/// # Safety
/// As [`split_sums_16`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub unsafe fn wide_split_sums(sums: *mut SplitSums<2>, a: *const u8, b: *const u8, k: usize) {
    configure_tiles();
    // SAFETY: as split_sums_16's; the second weight tile of a step starts 1 KB after the first.
    unsafe {
        std::arch::asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a} + {row} * 1]",
            "tileloadd tmm6, [{b} + {row} * 1]",
            "tdpbssd tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b} + {row} * 1 + 1024]",
            "tdpbsud tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a} + {row} * 1 + 1024]",
            "tdpbssd tmm2, tmm5, tmm6",
            "tdpbsud tmm3, tmm5, tmm7",
            "add {a}, 2048",
            "add {b}, 2048",
            "dec {steps}",
            "jnz 2b",
            "tilestored [{high0} + {row} * 1], tmm0",
            "tilestored [{low0} + {row} * 1], tmm1",
            "tilestored [{high1} + {row} * 1], tmm2",
            "tilestored [{low1} + {row} * 1], tmm3",
            a = inout(reg) a.add(weight_header(WIDE_ROWS)) => _,
            b = inout(reg) b.add(HEADER) => _,
            steps = inout(reg) padded(k) / K_STEP => _,
            row = in(reg) 64usize,
            high0 = in(reg) &raw mut (*sums).high[0],
            low0 = in(reg) &raw mut (*sums).low[0],
            high1 = in(reg) &raw mut (*sums).high[1],
            low1 = in(reg) &raw mut (*sums).low[1],
            options(nostack),
        );
    }
}

/// Rows 16 t to 16 t + 15 of the tile of split sums `sums` of weight panel `a` (R rows) and activation panel `b`,
/// scaled as [`product_tile`] scales them (the same f32 values), a row a vector: for int8_amx_tile, which keeps them
/// in registers.
///
/// # Safety
/// AVX-512F; `a` and `b` are the panels `sums` were taken from, t < T.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn scaled_rows<const T: usize>(
    sums: &SplitSums<T>,
    a: *const u8,
    b: *const u8,
    t: usize,
) -> [std::arch::x86_64::__m512; ROWS] {
    use std::arch::x86_64::*;
    // SAFETY: the caller's; both panels start with their scales.
    unsafe {
        let column_scales = _mm512_loadu_ps(b as *const f32);
        let mut rows = [_mm512_setzero_ps(); ROWS];
        for (r, row) in rows.iter_mut().enumerate() {
            let high = _mm512_load_si512(sums.high[t].0[r].as_ptr() as *const _);
            let low = _mm512_load_si512(sums.low[t].0[r].as_ptr() as *const _);
            let sums = _mm512_add_epi32(_mm512_slli_epi32::<8>(high), low);
            let row_scale = (a as *const f32).add(t * ROWS + r).read_unaligned();
            let scales = _mm512_mul_ps(_mm512_set1_ps(row_scale), column_scales);
            *row = _mm512_mul_ps(_mm512_cvtepi32_ps(sums), scales);
        }
        rows
    }
}

/// The same sums in plain Rust, from the same panels: the reference for the AMX kernels.
///
/// # Safety
/// `a` (R rows) and `b` are whole panels for the same `k`.
pub unsafe fn sums_portable<const R: usize>(a: *const u8, b: *const u8, k: usize) -> Tile<R> {
    let mut acc = [[0i32; COLS]; R];
    for (r, row) in acc.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            for kk in 0..k {
                // SAFETY: within the panels (the caller's).
                let (w, h, l) = unsafe {
                    let w = *a.add(weight_header(R) + weight_at::<R>(kk, r)) as i8 as i32;
                    let at = b.add(HEADER + level_at(kk, c));
                    (w, *at as i8 as i32, *at.add(COLS * K_STEP) as i32)
                };
                *v += w * (256 * h + l);
            }
        }
    }
    acc
}

/// Loads this thread's tile configuration, once: the eight tiles as 16 rows of 64 bytes.
#[cfg(target_arch = "x86_64")]
fn configure_tiles() {
    use std::cell::Cell;
    thread_local! {
        static CONFIGURED: Cell<bool> = const { Cell::new(false) };
    }
    if CONFIGURED.get() {
        return;
    }
    // Palette 1; bytes 16.. are each tile's bytes a row (u16), bytes 48.. its rows.
    let mut config = [0u8; 64];
    config[0] = 1;
    for tile in 0..8 {
        config[16 + 2 * tile..][..2].copy_from_slice(&(K_STEP as u16).to_le_bytes());
        config[48 + tile] = ROWS as u8;
    }
    // SAFETY: a valid palette-1 configuration; AMX is available (the callers').
    unsafe { std::arch::asm!("ldtilecfg [{}]", in(reg) config.as_ptr(), options(nostack, readonly)) };
    CONFIGURED.set(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panels of `k` with deterministic values, extremes included; returns (weights, activations) panels.
    fn panels<const R: usize>(k: usize, rows: usize, cols: usize) -> (AlignedBytes, AlignedBytes) {
        let q: Vec<i8> = (0..rows * k).map(|i| [-128, 127, -1, 0, 5][i % 5] as i8 ^ (i / 7) as i8).collect();
        let row_refs: Vec<&[i8]> = q.chunks(k).collect();
        let scales: Vec<f32> = (0..rows).map(|r| 0.01 * (r + 1) as f32).collect();
        let mut a = AlignedBytes::new(weight_panel_bytes::<R>(k));
        pack_weight_panel::<R>(a.bytes(), k, &scales, &row_refs);
        let mut columns: Vec<f32> = (0..k * COLS).map(|i| ((i * 7919) % 2001) as f32 - 1000.0).collect();
        columns[3] = f32::NAN;
        let mut b = AlignedBytes::new(activation_panel_bytes(k));
        quantize_activation_panel(b.bytes(), &columns, k, cols);
        (a, b)
    }

    /// A 64-byte aligned buffer, as the panels are in tract's blobs.
    struct AlignedBytes(Vec<[u8; 64]>, usize);

    impl AlignedBytes {
        fn new(len: usize) -> AlignedBytes {
            AlignedBytes(vec![[0; 64]; len.div_ceil(64)], len)
        }
        fn bytes(&mut self) -> &mut [u8] {
            &mut self.0.as_flattened_mut()[..self.1]
        }
    }

    #[test]
    fn avx512_panels_are_the_portable_ones() {
        for (k, cols) in [(1, 16), (147, 5), (576, 16), (1000, 9)] {
            let mut columns: Vec<f32> = (0..k * COLS).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            columns.iter_mut().step_by(97).for_each(|x| *x = f32::NAN);
            // Padding columns may hold anything: they must not count.
            columns.chunks_exact_mut(COLS).for_each(|row| row[cols..].fill(1e30));
            let mut out = vec![0u8; activation_panel_bytes(k)];
            quantize_activation_panel(&mut out, &columns, k, cols);
            let mut portable = vec![0u8; activation_panel_bytes(k)];
            quantize_activation_panel_portable(&mut portable, &columns, k, cols);
            assert_eq!(out, portable, "k {k}, {cols} columns");
            assert!(out[HEADER..].iter().any(|&b| b > 128), "levels with high bytes");
        }
    }

    /// A panel of ours read from three panels of tract's 12 columns each (columns 4 to 19 of them; then 9 only).
    #[test]
    fn panels_from_runs_of_tract_panels_are_the_gathered_ones() {
        let (k, r) = (300, 12);
        let tract: Vec<f32> = (0..3 * k * r).map(|i| (i as f32 * 0.11).cos() * (1 + i % 13) as f32).collect();
        let panel = |t: usize| tract[t * k * r..].as_ptr();
        for cols in [16, 9] {
            let runs = [
                ColumnRun { values: panel(0), r, from: 4, to: 0, len: 8 },
                ColumnRun { values: panel(1), r, from: 0, to: 8, len: (cols - 8).min(12) },
            ];
            let mut gathered = vec![0f32; k * COLS];
            // SAFETY: runs within the panels.
            unsafe { gather_runs(&runs[..1 + (cols > 8) as usize], k, COLS, &mut gathered) };
            let mut expected = vec![0u8; activation_panel_bytes(k)];
            quantize_activation_panel_portable(&mut expected, &gathered, k, cols);
            let mut out = vec![0u8; activation_panel_bytes(k)];
            // SAFETY: as above.
            unsafe { quantize_activation_runs(&mut out, &runs, k, cols, &mut Vec::new(), None) };
            assert_eq!(out, expected, "{cols} columns");
        }
    }

    /// A panel read straight from a tensor (rows at scattered offsets; runs of adjacent values, of every other value
    /// (spanning one vector and two) and of every third, one starting at its row's first element, one ending at the
    /// tensor's last): the panel quantised from the same values gathered first; the same with the columns' maxima
    /// handed in.
    #[test]
    fn panels_from_tensor_runs_are_the_gathered_ones() {
        let mixed = vec![
            Run { to: 0, from: 0, len: 4, step: 1 },
            Run { to: 4, from: 300, len: 7, step: 2 },
            Run { to: 11, from: 700, len: 3, step: 3 },
            Run { to: 14, from: 800, len: 1, step: 1 },
        ];
        let every_other = vec![Run { to: 0, from: 5, len: 16, step: 2 }];
        let k_offsets: Vec<usize> = (0..150).map(|kk| (kk * 29) % 4000).collect();
        for (runs, cols) in [(mixed, 15), (every_other, 16)] {
            // The last row's last run ends at the tensor's last element: no read past it.
            let last = runs.iter().map(|r| r.from + (r.len - 1) * r.step).max().unwrap();
            let len = k_offsets.iter().max().unwrap() + last + 1;
            let tensor: Vec<f32> = (0..len).map(|i| (i as f32 * 0.23).sin() * (1 + i % 11) as f32).collect();
            let k = k_offsets.len();
            let mut gathered = vec![0f32; k * COLS];
            for (kk, &start) in k_offsets.iter().enumerate() {
                for run in &runs {
                    for i in 0..run.len {
                        gathered[kk * COLS + run.to + i] = tensor[start + run.from + i * run.step];
                    }
                }
            }
            let mut expected = vec![0u8; activation_panel_bytes(k)];
            quantize_activation_panel_portable(&mut expected, &gathered, k, cols);
            let max_abs = column_max_abs_portable::<COLS>(&gathered, k, cols);
            for known in [None, Some(max_abs)] {
                let mut out = vec![0u8; activation_panel_bytes(k)];
                // SAFETY: every element read is within the tensor.
                if unsafe { quantize_activation_tensor_runs(&mut out, &tensor, &k_offsets, &runs, cols, known) } {
                    assert_eq!(out, expected, "{} runs, maxima handed in: {}", runs.len(), known.is_some());
                } else {
                    eprintln!("no AVX-512 quantiser on this machine: tensor runs are not read directly here");
                }
            }
        }
    }

    #[test]
    fn amx_sums_are_the_portable_sums() {
        if !available() {
            eprintln!("no AMX on this machine: only the portable sums are checked");
        }
        for (k, rows, cols) in [(1, 16, 16), (64, 16, 16), (147, 3, 16), (1152, 16, 7), (4608, 16, 16)] {
            check_sums::<ROWS>(k, rows, cols);
        }
        for (k, rows, cols) in [(1, 32, 16), (64, 32, 16), (147, 19, 16), (1152, 32, 7), (4608, 32, 16), (300, 5, 3)] {
            check_sums::<WIDE_ROWS>(k, rows, cols);
        }
    }

    /// AMX's sums of a panel of R rows (`rows` of them filled) are the portable ones.
    fn check_sums<const R: usize>(k: usize, rows: usize, cols: usize) {
        let (mut a, mut b) = panels::<R>(k, rows, cols);
        let (a, b) = (a.bytes().as_ptr(), b.bytes().as_ptr());
        // SAFETY: whole, aligned panels of k.
        let reference = unsafe { sums_portable::<R>(a, b, k) };
        assert!(reference.iter().flatten().any(|&s| s.abs() > 1 << 20), "large sums, high bytes used");
        assert!(reference[rows..].iter().flatten().all(|&s| s == 0), "padding rows sum to 0");
        if rows > ROWS {
            assert!(reference[ROWS..].iter().flatten().any(|&s| s != 0), "the second weight tile counts");
        }
        if available() {
            // SAFETY: as above, and AMX is available.
            assert_eq!(unsafe { sums::<R>(a, b, k) }, reference, "k {k}, {R} rows");
        }
    }
}
