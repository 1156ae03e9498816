//! The order a matmul's tiles run in on one thread, sized from what its panels really weigh.
//!
//! tract (tract-linalg's `run_blocked`) walks a product's tiles row of A by row of A where all of B's panels fit in
//! L2, and otherwise in blocks of columns, each block of as many panels of A and of B as a third of L2 holds, row by
//! row within the block: all of it estimated for f32 panels. The int8 kernels' panels are 2 to 4 times lighter. On
//! AMX, tract's estimate gives blocks of one tile for layer 4's 3x3 convolutions (9.4 MB of weights, 1.2 MB of
//! activations in 4 columns of panels), so it walks them column by column and reads all the weights from the
//! last-level cache 4 times; here, in 2 blocks of 2 columns that stay in L2, twice. For layer 3's (2.4 MB of weights
//! in 16 rows of panels, 1.9 MB of activations in 13 columns), tract reads the weights 13 times; here, in 3 blocks
//! of up to 6 rows that stay in L2, columns outer, the weights once and the activations 3 times. Reordering tiles
//! changes no value: each tile is the same call.
//!
//! [`CacheBlocked`] is a kernel that runs as the one it wraps, with this walk on tract's single-thread executor
//! (tract's chunked dispatch on a thread pool).

use std::borrow::Cow;
use std::fmt;

use tract_linalg::mmm::{
    DynKernel, FusedSpec, MMMInputFormat, MatMatMul, MatMatMulKer, OutputStoreSpec, ScratchSpace, ScratchSpaceImpl,
};
use tract_linalg::multithread::{Executor, current_tract_executor};

use tract_onnx::tract_core::internal::*;

/// The bytes of one panel of an operand in `format` for a sum over `k`, if the walk knows its format.
pub(crate) type PanelBytes = fn(format: &dyn MMMInputFormat, k: usize) -> Option<usize>;

/// [`DynKernel`] `kernel`, its tiles run in [`for_each_tile`]'s order on one thread. It has the kernel's name, so
/// that counts of the matmuls on a kernel find it.
#[derive(Clone)]
pub(crate) struct CacheBlocked<const MR: usize, const NR: usize> {
    pub kernel: DynKernel<MR, NR, f32>,
    /// The bytes of one of its operands' panels.
    pub panel_bytes: PanelBytes,
}

impl<const MR: usize, const NR: usize> fmt::Debug for CacheBlocked<MR, NR> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} (tiles in cache-sized blocks)", self.kernel)
    }
}

impl<const MR: usize, const NR: usize> CacheBlocked<MR, NR> {
    /// The grid of tiles of `specs`' product of m x n, if it has one and its formats are known.
    fn grid(&self, m: usize, n: usize, specs: &[FusedSpec]) -> Option<Grid> {
        let (a, b) = specs.iter().find_map(|spec| match spec {
            FusedSpec::AddMatMul { a, b, .. } => Some((a, b)),
            _ => None,
        })?;
        Some(Grid {
            m_panels: m.div_ceil(MR),
            n_panels: n.div_ceil(NR),
            a_panel: (self.panel_bytes)(a.format(), a.k())?,
            b_panel: (self.panel_bytes)(b.format(), b.k())?,
        })
    }
}

impl<const MR: usize, const NR: usize> MatMatMul for CacheBlocked<MR, NR> {
    fn name(&self) -> &str {
        MatMatMulKer::name(&self.kernel)
    }
    fn mr(&self) -> usize {
        MR
    }
    fn nr(&self) -> usize {
        NR
    }
    fn arch(&self) -> Option<tract_linalg::isa::Arch> {
        MatMatMul::arch(&self.kernel)
    }
    fn emulated(&self) -> bool {
        MatMatMul::emulated(&self.kernel)
    }
    fn boost(&self) -> isize {
        MatMatMul::boost(&self.kernel)
    }
    fn preference(&self) -> isize {
        MatMatMul::preference(&self.kernel)
    }
    fn runnable_on(&self, isa: &tract_linalg::isa::IsaSet) -> bool {
        MatMatMul::runnable_on(&self.kernel, isa)
    }
    fn runnable(&self) -> bool {
        MatMatMul::runnable(&self.kernel)
    }
    fn built(&self) -> bool {
        MatMatMul::built(&self.kernel)
    }
    fn isa(&self) -> tract_linalg::isa::IsaReq {
        MatMatMul::isa(&self.kernel)
    }
    fn packings(&self) -> &[(Box<dyn MMMInputFormat>, Box<dyn MMMInputFormat>)] {
        MatMatMul::packings(&self.kernel)
    }
    fn internal_type(&self) -> DatumType {
        MatMatMul::internal_type(&self.kernel)
    }
    unsafe fn c_view(&self, m_axis: Option<usize>, n_axis: Option<usize>) -> OutputStoreSpec {
        // SAFETY: the caller's.
        unsafe { MatMatMul::c_view(&self.kernel, m_axis, n_axis) }
    }
    unsafe fn c_from_data_and_strides(
        &self,
        item_size: usize,
        row_stride: isize,
        col_stride: isize,
    ) -> OutputStoreSpec {
        // SAFETY: the caller's.
        unsafe { MatMatMul::c_from_data_and_strides(&self.kernel, item_size, row_stride, col_stride) }
    }
    fn can_fuse(&self, spec: &FusedSpec) -> bool {
        MatMatMul::can_fuse(&self.kernel, spec)
    }
    fn stores(&self) -> Cow<'_, [DatumType]> {
        MatMatMul::stores(&self.kernel)
    }
    unsafe fn allocate_scratch_space(&self) -> Box<dyn ScratchSpace> {
        // SAFETY: the caller's.
        unsafe { MatMatMul::allocate_scratch_space(&self.kernel) }
    }
    unsafe fn can_use_scratch_space(&self, scratch: &dyn ScratchSpace) -> bool {
        // SAFETY: the caller's.
        unsafe { MatMatMul::can_use_scratch_space(&self.kernel, scratch) }
    }

    unsafe fn run_with_scratch_space(
        &self,
        m: usize,
        n: usize,
        scratch: &mut dyn ScratchSpace,
        specs: &[FusedSpec],
    ) -> TractResult<()> {
        let one_thread = matches!(current_tract_executor(), Executor::SingleThread);
        let (Some(grid), true) = (self.grid(m, n, specs), one_thread) else {
            // SAFETY: the caller's.
            return unsafe { MatMatMul::run_with_scratch_space(&self.kernel, m, n, scratch, specs) };
        };
        let scratch = scratch.downcast_mut::<ScratchSpaceImpl<f32>>().context("Wrong scratch space type")?;
        // SAFETY: the caller's (specs for an m x n product on this kernel); prepare sets the scratch up for them,
        // and each tile is one of the grid's. `run` enters the thread's scratch for each tile (tract's own walk
        // enters it once, through a function private to tract-linalg); after the first tile it finds the scratch
        // in sync and keeps the operands' panels it holds.
        unsafe {
            scratch.prepare(&self.kernel, m, n, specs)?;
            for_each_tile(grid, cache_bytes(), |ia, ib| scratch.run(&self.kernel, specs, ia, ib))
        }
    }
}

/// The bytes the walk may count on holding in cache between two reads: half of L2, the rest for the tiles' outputs
/// and whatever else the thread touches. Natively on AMX (a 2 MB L2), alternating builds in four rounds of 21
/// inferences: 44.7-48.1 ms with half, 44.9-53.0 with three quarters, 48.3-52.2 with a quarter.
fn cache_bytes() -> usize {
    tract_linalg::cache::cache_info().l2_or_default() / 2
}

/// A product's grid of tiles: its panels of A (rows) and of B (columns), and the bytes of one of each.
#[derive(Clone, Copy, Debug)]
struct Grid {
    m_panels: usize,
    n_panels: usize,
    a_panel: usize,
    b_panel: usize,
}

/// Calls `tile(ia, ib)` for each tile of `grid` once, in blocks of one operand's panels that fit in `cache` bytes
/// beside one panel of the other: for each block, each panel of the other operand is read once and run against
/// the whole block, which stays in cache. Of the two ways round (blocks of columns with rows outer, or blocks of
/// rows with columns outer), the one that reads fewer bytes from beyond the cache: the blocked operand once, the
/// other once per block.
fn for_each_tile(grid: Grid, cache: usize, mut tile: impl FnMut(usize, usize) -> TractResult<()>) -> TractResult<()> {
    let Grid { m_panels, n_panels, a_panel, b_panel } = grid;
    let columns = Blocks::of((n_panels, b_panel), (m_panels, a_panel), cache);
    let rows = Blocks::of((m_panels, a_panel), (n_panels, b_panel), cache);
    if columns.bytes_read <= rows.bytes_read {
        for block in (0..n_panels).step_by(columns.panels) {
            for ia in 0..m_panels {
                for ib in block..(block + columns.panels).min(n_panels) {
                    tile(ia, ib)?;
                }
            }
        }
    } else {
        for block in (0..m_panels).step_by(rows.panels) {
            for ib in 0..n_panels {
                for ia in block..(block + rows.panels).min(m_panels) {
                    tile(ia, ib)?;
                }
            }
        }
    }
    Ok(())
}

/// One way round: blocks of `panels` of the blocked operand, and the bytes read in all.
#[derive(Debug, PartialEq)]
struct Blocks {
    panels: usize,
    bytes_read: usize,
}

impl Blocks {
    /// `blocked`'s (count, bytes) panels in blocks that fit in `cache` beside one of `other`'s (count, bytes) panels.
    fn of((count, bytes): (usize, usize), (other_count, other_bytes): (usize, usize), cache: usize) -> Blocks {
        let panels = (cache.saturating_sub(other_bytes) / bytes.max(1)).clamp(1, count.max(1));
        let bytes_read = count * bytes + count.div_ceil(panels) * other_count * other_bytes;
        Blocks { panels, bytes_read }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(grid: Grid, cache: usize) -> Vec<(usize, usize)> {
        let mut tiles = vec![];
        for_each_tile(grid, cache, |ia, ib| {
            tiles.push((ia, ib));
            Ok(())
        })
        .unwrap();
        tiles
    }

    fn each_once(grid: Grid, tiles: &[(usize, usize)]) -> bool {
        let mut sorted = tiles.to_vec();
        sorted.sort();
        let all: Vec<_> = (0..grid.m_panels).flat_map(|ia| (0..grid.n_panels).map(move |ib| (ia, ib))).collect();
        sorted == all
    }

    /// WRN-50-2's 3x3 convolutions of K = 9 x `channels` on AMX's wide kernel (32 weight rows a panel, 16
    /// activation columns), with `columns` of activations and the cache this machine's walk counts on (1 MiB).
    fn amx_grid(channels: usize, columns: usize) -> Grid {
        use crate::int8_amx::{WIDE_ROWS, activation_panel_bytes, weight_panel_bytes};
        let k = 9 * channels;
        Grid {
            m_panels: channels / WIDE_ROWS,
            n_panels: columns.div_ceil(16),
            a_panel: weight_panel_bytes::<WIDE_ROWS>(k),
            b_panel: activation_panel_bytes(k),
        }
    }

    #[test]
    fn layer_4_reads_its_weights_twice() {
        // 32 weight panels of 295 KB, 4 activation panels of 295 KB: blocks of 2 columns, rows outer.
        let grid = amx_grid(1024, 49);
        let tiles = order(grid, 1 << 20);
        assert!(each_once(grid, &tiles));
        assert_eq!(&tiles[..5], &[(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]);
        assert_eq!(tiles[32 * 2], (0, 2), "the second block");
    }

    #[test]
    fn layer_3_reads_its_weights_once() {
        // 16 weight panels of 148 KB, 13 activation panels of 148 KB: blocks of 6 rows, columns outer.
        let grid = amx_grid(512, 196);
        let tiles = order(grid, 1 << 20);
        assert!(each_once(grid, &tiles));
        assert_eq!(&tiles[..7], &[(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (0, 1)]);
        assert_eq!(tiles[6 * 13], (6, 0), "the second block");
    }

    #[test]
    fn layer_1_keeps_its_weights_while_columns_stream() {
        // 4 weight panels of 37 KB (all in one block), 196 activation panels of 37 KB.
        let grid = amx_grid(128, 3136);
        let tiles = order(grid, 1 << 20);
        assert!(each_once(grid, &tiles));
        assert_eq!(&tiles[..6], &[(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1)]);
    }

    #[test]
    fn blocks_of_columns_when_neither_fits() {
        // 16 rows of 100 bytes, 10 columns of 100 bytes, a cache of 400 bytes: blocks of 3 columns (300 bytes
        // beside a row's 100) read the rows 4 times (6400 + 1000 bytes); blocks of 3 rows read the columns 6 times
        // (6000 + 1600).
        let grid = Grid { m_panels: 16, n_panels: 10, a_panel: 100, b_panel: 100 };
        assert_eq!(Blocks::of((10, 100), (16, 100), 400), Blocks { panels: 3, bytes_read: 7400 });
        assert_eq!(Blocks::of((16, 100), (10, 100), 400), Blocks { panels: 3, bytes_read: 7600 });
        let tiles = order(grid, 400);
        assert!(each_once(grid, &tiles));
        assert_eq!(&tiles[..4], &[(0, 0), (0, 1), (0, 2), (1, 0)]);
        assert_eq!(tiles[16 * 3], (0, 3));
        assert_eq!(tiles.last(), Some(&(15, 9)));
    }

    #[test]
    fn any_grid_runs_each_tile_once() {
        for (m_panels, n_panels) in [(0, 0), (0, 5), (5, 0), (1, 1), (1, 7), (7, 1), (5, 9)] {
            for cache in [0, 150, 1000, 1 << 30] {
                let grid = Grid { m_panels, n_panels, a_panel: 100, b_panel: 60 };
                assert!(each_once(grid, &order(grid, cache)), "{m_panels} x {n_panels}, cache {cache}");
            }
        }
    }
}
