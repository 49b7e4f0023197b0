//! The portable micro-kernel: plain integer dot products, one block at a
//! time. Used where AVX2 is missing (and on aarch64), and as the reference
//! the SIMD kernel is tested against.

use super::activations::ActBlock;
use super::format::{BlockFormat, WeightBlock};
use super::gemm::MicroKernel;

/// The scalar micro-kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scalar;

impl MicroKernel for Scalar {
    fn unpack<F: BlockFormat>(&self, weights: &[u8], out: &mut [WeightBlock]) {
        for (block, out) in weights.chunks_exact(F::BYTES).zip(out) {
            *out = F::unpack(block);
        }
    }

    fn tile<F: BlockFormat, const R: usize, const T: usize>(
        &self,
        weights: &[WeightBlock],
        acts: &[ActBlock],
        blocks: usize,
    ) -> [[f32; T]; R] {
        let mut out = [[0f32; T]; R];
        for (r, out) in out.iter_mut().enumerate() {
            for (b, w) in weights[r * blocks..(r + 1) * blocks].iter().enumerate() {
                for (t, out) in out.iter_mut().enumerate() {
                    *out += block_dot(w, &acts[t * blocks + b]);
                }
            }
        }
        out
    }

    fn rows<F: BlockFormat, const R: usize>(
        &self,
        weights: &[u8],
        row_bytes: usize,
        acts: &[ActBlock],
        blocks: usize,
    ) -> [f32; R] {
        let mut out = [0f32; R];
        for (r, out) in out.iter_mut().enumerate() {
            let row = &weights[r * row_bytes..r * row_bytes + blocks * F::BYTES];
            for (block, act) in row.chunks_exact(F::BYTES).zip(acts) {
                *out += block_dot(&F::unpack(block), act);
            }
        }
        out
    }
}

/// One weight block times one activation block.
fn block_dot(w: &WeightBlock, act: &ActBlock) -> f32 {
    let dot: i32 = w
        .quants
        .iter()
        .zip(&act.quants)
        .map(|(&w, &a)| i32::from(w) * i32::from(a))
        .sum();
    dot as f32 * (w.scale * act.scale) + w.min * act.sum
}
