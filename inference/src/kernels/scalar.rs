//! The portable micro-kernel: plain integer dot products, one block at a
//! time. Used where AVX2 is missing (and on aarch64), and as the reference
//! the SIMD kernel is tested against.

use super::activations::ActBlock;
use super::format::BlockFormat;
use super::gemm::MicroKernel;

/// The scalar micro-kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scalar;

impl MicroKernel for Scalar {
    fn tile<F: BlockFormat, const R: usize, const T: usize>(
        &self,
        weights: &[u8],
        acts: &[ActBlock],
        blocks: usize,
    ) -> [[f32; T]; R] {
        let row_bytes = blocks * F::BYTES;
        let mut out = [[0f32; T]; R];
        for (r, out) in out.iter_mut().enumerate() {
            let row = &weights[r * row_bytes..(r + 1) * row_bytes];
            for (b, block) in row.chunks_exact(F::BYTES).enumerate() {
                let (quants, scale, min) = (F::quants(block), F::scale(block), F::min(block));
                for (t, out) in out.iter_mut().enumerate() {
                    let act = &acts[t * blocks + b];
                    let dot: i32 = quants
                        .iter()
                        .zip(&act.quants)
                        .map(|(&w, &a)| i32::from(w) * i32::from(a))
                        .sum();
                    *out += dot as f32 * (scale * act.scale) + min * act.sum;
                }
            }
        }
        out
    }
}
