//! AMX's tile kernels alone (x86-64 Linux with AMX): ns per 256 outputs (a 16 x 16 tile) and per tile multiply, for
//! the K of WRN-50-2's matmuls, a 16-row kernel (no matmul runs on it since every product is put on the wide one: the
//! baseline) against the wide (32-row) one in the same run, with the panels hot in cache and with the weights
//! streamed from memory as a layer streams them.
//! `cargo run --release --example amx_kernel`

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;
    use std::time::Instant;
    use wrn_wasm::int8_amx::{self, ROWS, SplitSums, WIDE_ROWS};

    #[repr(align(64))]
    #[derive(Clone, Copy)]
    struct Line(#[allow(dead_code)] [u8; 64]);
    let aligned = |bytes: usize| vec![Line([0; 64]); bytes.div_ceil(64)];
    // SAFETY: Line is 64 plain bytes.
    let bytes = |v: &mut [Line]| unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, v.len() * 64) };

    /// One tile's sums, scaled into registers as the epilogue takes them; returns a lane, so none is optimised out.
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const T: usize>(
        split: unsafe fn(*mut SplitSums<T>, *const u8, *const u8, usize),
        w: *const u8,
        a: *const u8,
        k: usize,
    ) -> f32 {
        let mut sums = MaybeUninit::uninit();
        let mut sink = _mm512_setzero_ps();
        // SAFETY: the caller's: whole aligned panels of k, AMX available.
        unsafe {
            split(sums.as_mut_ptr(), w, a, k);
            for t in 0..T {
                let rows = int8_amx::scaled_rows(sums.assume_init_ref(), w, a, t);
                rows.iter().for_each(|&r| sink = _mm512_add_ps(sink, r));
            }
            _mm512_reduce_add_ps(sink)
        }
    }

    if !int8_amx::available() {
        println!("no AMX here");
        return;
    }
    let mut seed = 1u32;
    let mut next = || {
        seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
        seed
    };
    println!("ns per 256 outputs (ns per tile multiply): 16 rows | 32 rows | ratio 32/16");
    for k in [64usize, 256, 576, 1152, 2304, 4608, 9216] {
        let rows: Vec<Vec<i8>> = (0..WIDE_ROWS).map(|_| (0..k).map(|_| next() as i8).collect()).collect();
        let row_refs: Vec<&[i8]> = rows.iter().map(|r| r.as_slice()).collect();
        let columns: Vec<f32> = (0..k * 16).map(|_| next() as i32 as f32 / 1e9).collect();
        let mut acts = aligned(int8_amx::activation_panel_bytes(k));
        int8_amx::quantize_activation_panel(bytes(&mut acts), &columns, k, 16);
        let a = acts.as_ptr() as *const u8;
        // ~8 MB of weight panels (a late layer's weights), for either kernel.
        let (wb16, wb32) = (int8_amx::weight_panel_bytes::<ROWS>(k), int8_amx::weight_panel_bytes::<WIDE_ROWS>(k));
        let panels = (8 << 20) / wb32 + 1;
        let (mut w16, mut w32) = (aligned(wb16 * 2 * panels), aligned(wb32 * panels));
        for panel in bytes(&mut w16).chunks_exact_mut(wb16) {
            int8_amx::pack_weight_panel::<ROWS>(panel, k, &[0.01; ROWS], &row_refs[..ROWS]);
        }
        for panel in bytes(&mut w32).chunks_exact_mut(wb32) {
            int8_amx::pack_weight_panel::<WIDE_ROWS>(panel, k, &[0.01; WIDE_ROWS], &row_refs);
        }
        let (w16, w32) = (w16.as_ptr() as *const u8, w32.as_ptr() as *const u8);
        let steps = k.div_ceil(64) as f64;
        let mut sink = 0f32;
        for (name, streamed) in [("hot", false), ("streamed", true)] {
            // Outputs per run: the same for both kernels; the 32-row one makes half as many calls.
            let calls = (40_000_000 / k).max(4000) & !1;
            let (mut best16, mut best32) = (f64::MAX, f64::MAX);
            for _ in 0..5 {
                let t = Instant::now();
                for i in 0..calls {
                    let at = if streamed { i % (2 * panels) } else { 0 };
                    // SAFETY: whole aligned panels of k; AMX is available.
                    sink += unsafe { tile::<1>(int8_amx::split_sums_16, w16.add(at * wb16), a, k) };
                }
                best16 = best16.min(t.elapsed().as_secs_f64() * 1e9 / calls as f64);
                let t = Instant::now();
                for i in 0..calls / 2 {
                    let at = if streamed { i % panels } else { 0 };
                    // SAFETY: as above.
                    sink += unsafe { tile::<2>(int8_amx::wide_split_sums, w32.add(at * wb32), a, k) };
                }
                best32 = best32.min(t.elapsed().as_secs_f64() * 1e9 / calls as f64);
            }
            println!(
                "k {k:5} {name:8}: {best16:8.1} ({:5.2}) | {best32:8.1} ({:5.2}) | {:4.2}",
                best16 / (2.0 * steps),
                best32 / (2.0 * steps),
                best32 / best16
            );
        }
        std::hint::black_box(sink);
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("AMX is x86-64 only");
}
