//! The matrix product `y = x · Wᵀ` on quantized weights: activations are
//! quantized once, output rows are split into bands computed in parallel,
//! and each band is swept in small `R × T` tiles (rows × tokens) so a weight
//! block is unpacked once for up to four tokens while the band's rows stay
//! in cache across all tokens.

use rayon::prelude::*;

use super::activations::{self, ActBlock};
use super::format::{BlockFormat, WeightBlock, BLOCK};
use super::scalar::Scalar;

/// Unpacks weight rows and computes `R × T` tiles of dot products.
pub(crate) trait MicroKernel: Copy + Send + Sync {
    /// Unpacks the format-`F` blocks of `weights` into `out`, in order.
    fn unpack<F: BlockFormat>(&self, weights: &[u8], out: &mut [WeightBlock]);

    /// Dot products of `R` unpacked weight rows (each `blocks` blocks, one
    /// after the other from the start of `weights`) with `T` tokens (each
    /// `blocks` activation blocks, one after the other from the start of
    /// `acts`): `out[r][t] = Σ_b w[r][b] · a[t][b]`.
    fn tile<F: BlockFormat, const R: usize, const T: usize>(
        &self,
        weights: &[WeightBlock],
        acts: &[ActBlock],
        blocks: usize,
    ) -> [[f32; T]; R];

    /// Dot products of `R` packed rows (row `r` is the `blocks` format-`F`
    /// blocks at `weights[r · row_bytes..]`) with one token's `blocks`
    /// activation blocks: the single-token product, which reads each
    /// weight once and so gains nothing from unpacking first.
    fn rows<F: BlockFormat, const R: usize>(
        &self,
        weights: &[u8],
        row_bytes: usize,
        acts: &[ActBlock],
        blocks: usize,
    ) -> [f32; R];
}

/// Which micro-kernel runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Isa {
    /// Portable integer code.
    Scalar,
    /// AVX2 + FMA + F16C (x86-64, detected at run time).
    #[cfg(target_arch = "x86_64")]
    Avx2(super::avx2::Avx2),
}

impl Isa {
    /// The fastest kernel this CPU runs.
    pub(crate) fn best() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if let Some(avx2) = super::avx2::Avx2::detect() {
            return Isa::Avx2(avx2);
        }
        Isa::Scalar
    }
}

/// Multiply-accumulates below which splitting work across threads costs
/// more than it saves (a band gets at least this many).
const MIN_MACS_PER_BAND: usize = 1 << 16;

/// Bands per thread, so uneven progress evens out.
const BANDS_PER_THREAD: usize = 4;

/// `y_i = x · W_iᵀ` for each matrix `W_i` of `group` (its blocks and its row
/// count; every row `cols / 32` blocks of format `F`): `x` holds
/// `tokens = x.len() / cols` rows of `cols` activations, quantized once for
/// the whole group, and each result is `tokens × rows_i`, row-major. The
/// group's bands run in one parallel sweep, so several products of one
/// input (queries, keys and values) cost one fork-join.
pub(crate) fn matmul<F: BlockFormat>(
    isa: Isa,
    group: &[(&[u8], usize)],
    cols: usize,
    x: &[f32],
) -> Vec<Vec<f32>> {
    match isa {
        Isa::Scalar => matmul_with::<F, _>(Scalar, group, cols, x),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2(avx2) => matmul_with::<F, _>(avx2, group, cols, x),
    }
}

fn matmul_with<F: BlockFormat, K: MicroKernel>(
    kernel: K,
    group: &[(&[u8], usize)],
    cols: usize,
    x: &[f32],
) -> Vec<Vec<f32>> {
    let blocks = cols / BLOCK;
    assert!(cols > 0 && cols.is_multiple_of(BLOCK) && x.len().is_multiple_of(cols));
    let row_bytes = blocks * F::BYTES;
    for (weights, rows) in group {
        assert_eq!(weights.len(), rows * row_bytes, "weight bytes");
    }
    let tokens = x.len() / cols;
    // Row-major `rows × tokens` (the transpose of each result), so each band
    // owns a contiguous slice.
    let mut outs: Vec<Vec<f32>> = group
        .iter()
        .map(|(_, rows)| vec![0f32; rows * tokens])
        .collect();
    let total_rows: usize = group.iter().map(|(_, rows)| rows).sum();
    if total_rows == 0 || tokens == 0 {
        return outs;
    }
    let acts = activations::quantize(x, cols, F::HAS_MIN);

    // Bands of whole rows, a multiple of the tile height; when split, a
    // multiple of the thread count so no thread idles in the last round.
    let threads = rayon::current_num_threads();
    let bands =
        (total_rows * cols * tokens / MIN_MACS_PER_BAND).clamp(1, threads * BANDS_PER_THREAD);
    let bands = if bands > 1 {
        bands.next_multiple_of(threads)
    } else {
        1
    };
    let band_rows = total_rows.div_ceil(bands).next_multiple_of(4);
    let work: Vec<(&mut [f32], &[u8])> = outs
        .iter_mut()
        .zip(group)
        .flat_map(|(out, (weights, _))| {
            out.chunks_mut(band_rows * tokens)
                .zip(weights.chunks(band_rows * row_bytes))
        })
        .collect();
    work.into_par_iter()
        .for_each(|(out, weights)| band::<F, K>(kernel, weights, &acts, blocks, tokens, out));
    if tokens > 1 {
        for (out_t, (_, rows)) in outs.iter_mut().zip(group) {
            *out_t = transpose(out_t, *rows, tokens);
        }
    }
    outs
}

/// The `cols × rows` transpose of a row-major `rows × cols` matrix.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; m.len()];
    for (r, row) in m.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    out
}

/// One band: `out` is `rows × tokens` for the rows in `weights`. One token
/// takes 4-row tiles; several take 2 rows × 4 tokens. A tile's rows are
/// unpacked once, then used for every token.
fn band<F: BlockFormat, K: MicroKernel>(
    kernel: K,
    weights: &[u8],
    acts: &[ActBlock],
    blocks: usize,
    tokens: usize,
    out: &mut [f32],
) {
    let row_bytes = blocks * F::BYTES;
    let rows = weights.len() / row_bytes;
    if tokens == 1 {
        return single_token::<F, K>(kernel, weights, acts, blocks, out);
    }
    let (tile_rows, tile_tokens) = (2, 4);
    let mut unpacked = vec![WeightBlock::default(); tile_rows * blocks];
    let mut r = 0;
    while r < rows {
        let rr = tile_rows.min(rows - r);
        let w = &mut unpacked[..rr * blocks];
        kernel.unpack::<F>(&weights[r * row_bytes..(r + rr) * row_bytes], w);
        let w = &*w;
        let mut t = 0;
        while t < tokens {
            let tt = tile_tokens.min(tokens - t);
            let a = &acts[t * blocks..(t + tt) * blocks];
            let store = Store {
                out: &mut *out,
                tokens,
                r,
                t,
            };
            match (rr, tt) {
                (2, 1) => store.put(kernel.tile::<F, 2, 1>(w, a, blocks)),
                (1, 1) => store.put(kernel.tile::<F, 1, 1>(w, a, blocks)),
                (2, 4) => store.put(kernel.tile::<F, 2, 4>(w, a, blocks)),
                (2, 3) => store.put(kernel.tile::<F, 2, 3>(w, a, blocks)),
                (2, 2) => store.put(kernel.tile::<F, 2, 2>(w, a, blocks)),
                (1, 4) => store.put(kernel.tile::<F, 1, 4>(w, a, blocks)),
                (1, 3) => store.put(kernel.tile::<F, 1, 3>(w, a, blocks)),
                (1, 2) => store.put(kernel.tile::<F, 1, 2>(w, a, blocks)),
                _ => unreachable!("tile {rr} × {tt}"),
            }
            t += tt;
        }
        r += rr;
    }
}

/// One token through a band: rows four at a time, read straight from their
/// packed blocks.
fn single_token<F: BlockFormat, K: MicroKernel>(
    kernel: K,
    weights: &[u8],
    acts: &[ActBlock],
    blocks: usize,
    out: &mut [f32],
) {
    let row_bytes = blocks * F::BYTES;
    let whole = out.len() / 4 * 4;
    let mut quads = out.chunks_exact_mut(4);
    for (r, quad) in (&mut quads).enumerate() {
        let w = &weights[4 * r * row_bytes..];
        quad.copy_from_slice(&kernel.rows::<F, 4>(w, row_bytes, acts, blocks));
    }
    let w = &weights[whole * row_bytes..];
    for (r, y) in quads.into_remainder().iter_mut().enumerate() {
        [*y] = kernel.rows::<F, 1>(&w[r * row_bytes..], row_bytes, acts, blocks);
    }
}

/// Where a tile's results go in a band's `rows × tokens` output.
struct Store<'a> {
    out: &'a mut [f32],
    tokens: usize,
    r: usize,
    t: usize,
}

impl Store<'_> {
    fn put<const R: usize, const T: usize>(self, tile: [[f32; T]; R]) {
        for (i, row) in tile.iter().enumerate() {
            let at = (self.r + i) * self.tokens + self.t;
            self.out[at..at + T].copy_from_slice(row);
        }
    }
}
