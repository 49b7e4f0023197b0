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

/// `y = x · Wᵀ`: `weights` holds `rows` rows of `cols / 32` blocks of format
/// `F`, `x` holds `tokens = x.len() / cols` rows of `cols` activations; the
/// result is `tokens × rows`, row-major.
pub(crate) fn matmul<F: BlockFormat>(
    isa: Isa,
    weights: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
) -> Vec<f32> {
    match isa {
        Isa::Scalar => matmul_with::<F, _>(Scalar, weights, rows, cols, x),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2(avx2) => matmul_with::<F, _>(avx2, weights, rows, cols, x),
    }
}

fn matmul_with<F: BlockFormat, K: MicroKernel>(
    kernel: K,
    weights: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
) -> Vec<f32> {
    let blocks = cols / BLOCK;
    assert!(cols > 0 && cols % BLOCK == 0 && x.len() % cols == 0);
    assert_eq!(weights.len(), rows * blocks * F::BYTES, "weight bytes");
    let tokens = x.len() / cols;
    if rows == 0 || tokens == 0 {
        return Vec::new();
    }
    let acts = activations::quantize(x, cols, F::HAS_MIN);

    // Bands of whole rows, a multiple of the tile height; when split, a
    // multiple of the thread count so no thread idles in the last round.
    let threads = rayon::current_num_threads();
    let bands = (rows * cols * tokens / MIN_MACS_PER_BAND).clamp(1, threads * BANDS_PER_THREAD);
    let bands = if bands > 1 {
        bands.next_multiple_of(threads)
    } else {
        1
    };
    let band_rows = rows.div_ceil(bands).next_multiple_of(4);
    let row_bytes = blocks * F::BYTES;

    // Row-major `rows × tokens` (the transpose of the result), so each band
    // owns a contiguous slice.
    let mut out_t = vec![0f32; rows * tokens];
    out_t
        .par_chunks_mut(band_rows * tokens)
        .zip(weights.par_chunks(band_rows * row_bytes))
        .for_each(|(out, weights)| band::<F, K>(kernel, weights, &acts, blocks, tokens, out));
    if tokens == 1 {
        return out_t;
    }
    let mut out = vec![0f32; tokens * rows];
    for (r, row) in out_t.chunks_exact(tokens).enumerate() {
        for (t, &v) in row.iter().enumerate() {
            out[t * rows + r] = v;
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
    let (tile_rows, tile_tokens) = if tokens == 1 { (4, 1) } else { (2, 4) };
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
                (4, 1) => store.put(kernel.tile::<F, 4, 1>(w, a, blocks)),
                (3, 1) => store.put(kernel.tile::<F, 3, 1>(w, a, blocks)),
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
