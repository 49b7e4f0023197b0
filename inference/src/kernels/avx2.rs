//! The x86-64 micro-kernel: AVX2 integer dot products (`vpmaddubsw` +
//! `vpmaddwd`), FMA accumulation in eight float lanes per output.
//!
//! Weight blocks are unpacked once per product (nibbles to bytes, `f16` to
//! `f32`); per block step, each of a tile's `R` unpacked weight blocks and
//! `T` activation blocks is loaded once, so an `R × T` tile loads every
//! weight block once for `T` tokens. `vpmaddubsw` multiplies
//! unsigned by signed bytes: Q4_1's nibbles are unsigned already (their
//! minimum enters through the activation sums), Q4_0 and Q8_0 quants are
//! signed, so their absolute value is multiplied by the activation carrying
//! the weight's sign (GGML's trick; exact since no quant is −128).

use std::arch::x86_64::*;

use super::activations::ActBlock;
use super::format::{BlockFormat, WeightBlock, BLOCK};
use super::gemm::MicroKernel;

/// Proof that this CPU has AVX2, FMA and F16C: only [`Avx2::detect`] makes
/// one, so the safe [`MicroKernel::tile`] may call the `avx2,fma,f16c`
/// functions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The kernel, if the CPU supports it.
    pub(crate) fn detect() -> Option<Avx2> {
        let ok = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        ok.then_some(Avx2(()))
    }
}

impl MicroKernel for Avx2 {
    fn unpack<F: BlockFormat>(&self, weights: &[u8], out: &mut [WeightBlock]) {
        assert!(weights.len() >= out.len() * F::BYTES);
        // SAFETY: `self` exists only if `detect` found avx2, fma and f16c;
        // the assert above keeps every block read in bounds.
        unsafe { unpack::<F>(weights.as_ptr(), out) }
    }

    fn tile<F: BlockFormat, const R: usize, const T: usize>(
        &self,
        weights: &[WeightBlock],
        acts: &[ActBlock],
        blocks: usize,
    ) -> [[f32; T]; R] {
        assert!(weights.len() >= R * blocks && acts.len() >= T * blocks);
        // SAFETY: as in `unpack`; the assert keeps `tile`'s reads in bounds.
        unsafe { tile::<F, R, T>(weights.as_ptr(), acts.as_ptr(), blocks) }
    }

    fn rows<F: BlockFormat, const R: usize>(
        &self,
        weights: &[u8],
        row_bytes: usize,
        acts: &[ActBlock],
        blocks: usize,
    ) -> [f32; R] {
        assert!(R > 0 && blocks * F::BYTES <= row_bytes && acts.len() >= blocks);
        assert!(weights.len() >= (R - 1) * row_bytes + blocks * F::BYTES);
        // SAFETY: as in `unpack`; the asserts keep every read in bounds.
        unsafe { rows::<F, R>(weights.as_ptr(), row_bytes, acts.as_ptr(), blocks) }
    }
}

/// Unpacks `out.len()` format-`F` blocks starting at `weights`.
///
/// # Safety
/// The CPU has avx2, fma and f16c; `weights` is readable for
/// `out.len() · F::BYTES` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack<F: BlockFormat>(weights: *const u8, out: &mut [WeightBlock]) {
    for (i, out) in out.iter_mut().enumerate() {
        let block = unsafe { weights.add(i * F::BYTES) };
        let quants = unsafe { load_quants::<F>(block) };
        unsafe { _mm256_storeu_si256(out.quants.as_mut_ptr().cast(), quants) };
        out.scale = unsafe { f16_at(block) };
        out.min = match F::HAS_MIN {
            true => unsafe { f16_at(block.add(2)) },
            false => 0.0,
        };
    }
}

/// How far ahead of the block it reads a row asks for memory.
const PREFETCH_AHEAD: usize = 1024;

/// `R` packed rows, `row_bytes` apart from `weights`, times one token's
/// `blocks` activation blocks: each block's quants are unpacked in
/// registers and used at once.
///
/// # Safety
/// The CPU has avx2, fma and f16c; `weights` is readable for
/// `(R − 1) · row_bytes + blocks · F::BYTES` bytes and `acts` for `blocks`
/// blocks.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows<F: BlockFormat, const R: usize>(
    weights: *const u8,
    row_bytes: usize,
    acts: *const ActBlock,
    blocks: usize,
) -> [f32; R] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut acc_min = [_mm256_setzero_ps(); R];
    for b in 0..blocks {
        // SAFETY: block `b < blocks`.
        let act = unsafe { &*acts.add(b) };
        let aq = unsafe { _mm256_loadu_si256(act.quants.as_ptr().cast()) };
        let act_scale = _mm256_set1_ps(act.scale);
        // Spread over the 8 lanes that are summed at the end (exact: ×2⁻³).
        let act_sum = _mm256_set1_ps(act.sum * 0.125);
        for r in 0..R {
            // SAFETY: row `r < R`, block `b < blocks`.
            let block = unsafe { weights.add(r * row_bytes + b * F::BYTES) };
            _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(PREFETCH_AHEAD).cast());
            let quants = unsafe { load_quants::<F>(block) };
            let pairs = if F::HAS_MIN {
                let min = unsafe { f16_lanes(block.add(2)) };
                acc_min[r] = _mm256_fmadd_ps(min, act_sum, acc_min[r]);
                _mm256_maddubs_epi16(quants, aq)
            } else {
                let magnitudes = _mm256_sign_epi8(quants, quants);
                _mm256_maddubs_epi16(magnitudes, _mm256_sign_epi8(aq, quants))
            };
            let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
            let scale = _mm256_mul_ps(unsafe { f16_lanes(block) }, act_scale);
            acc[r] = _mm256_fmadd_ps(dot, scale, acc[r]);
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        let total = if F::HAS_MIN {
            _mm256_add_ps(acc[r], acc_min[r])
        } else {
            acc[r]
        };
        out[r] = unsafe { horizontal_sum(total) };
    }
    out
}

/// The little-endian `f16` at `at`, widened, in all 8 lanes.
///
/// # Safety
/// The CPU has avx2 and f16c; `at` is readable for 2 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_lanes(at: *const u8) -> __m256 {
    let bits = unsafe { at.cast::<i16>().read_unaligned() };
    _mm256_cvtph_ps(_mm_set1_epi16(bits))
}

/// `R` rows × `T` tokens of dot products over `blocks` blocks: each row's
/// `blocks` unpacked weight blocks follow each other from `weights`, each
/// token's activation blocks from `acts`.
///
/// # Safety
/// The CPU has avx2, fma and f16c; `weights` is readable for `R · blocks`
/// blocks and `acts` for `T · blocks`.
// The loops index several register arrays (and two dimensions) at once.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<F: BlockFormat, const R: usize, const T: usize>(
    weights: *const WeightBlock,
    acts: *const ActBlock,
    blocks: usize,
) -> [[f32; T]; R] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    for b in 0..blocks {
        let mut quants = [_mm256_setzero_si256(); R];
        let mut magnitudes = [_mm256_setzero_si256(); R];
        let mut scales = [_mm256_setzero_ps(); R];
        let mut mins = [_mm256_setzero_ps(); R];
        for r in 0..R {
            // SAFETY: row `r < R`, block `b < blocks`.
            let w = unsafe { &*weights.add(r * blocks + b) };
            quants[r] = unsafe { _mm256_loadu_si256(w.quants.as_ptr().cast()) };
            scales[r] = _mm256_set1_ps(w.scale);
            if F::HAS_MIN {
                mins[r] = _mm256_set1_ps(w.min);
            } else {
                magnitudes[r] = _mm256_sign_epi8(quants[r], quants[r]);
            }
        }
        for t in 0..T {
            // SAFETY: token `t < T`, block `b < blocks`.
            let act = unsafe { &*acts.add(t * blocks + b) };
            let aq = unsafe { _mm256_loadu_si256(act.quants.as_ptr().cast()) };
            let act_scale = _mm256_set1_ps(act.scale);
            // Spread over the 8 lanes that are summed at the end (exact: ×2⁻³).
            let act_sum = _mm256_set1_ps(act.sum * 0.125);
            for r in 0..R {
                let pairs = if F::HAS_MIN {
                    _mm256_maddubs_epi16(quants[r], aq)
                } else {
                    _mm256_maddubs_epi16(magnitudes[r], _mm256_sign_epi8(aq, quants[r]))
                };
                let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                let scale = _mm256_mul_ps(scales[r], act_scale);
                acc[r][t] = _mm256_fmadd_ps(dot, scale, acc[r][t]);
                if F::HAS_MIN {
                    acc[r][t] = _mm256_fmadd_ps(mins[r], act_sum, acc[r][t]);
                }
            }
        }
    }
    let mut out = [[0f32; T]; R];
    for r in 0..R {
        for t in 0..T {
            out[r][t] = unsafe { horizontal_sum(acc[r][t]) };
        }
    }
    out
}

/// A block's 32 quants as bytes in weight order: Q4_0 as `nibble − 8`
/// (signed), Q4_1 as the bare nibble, Q8_0 as loaded.
///
/// # Safety
/// The CPU has avx2; `block` is readable for `F::BYTES` bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_quants<F: BlockFormat>(block: *const u8) -> __m256i {
    let qs = unsafe { block.add(F::QUANTS_AT) };
    if F::NIBBLES {
        let packed = unsafe { _mm_loadu_si128(qs.cast()) };
        let mask = _mm_set1_epi8(0x0F);
        let low = _mm_and_si128(packed, mask);
        let high = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
        let nibbles = _mm256_set_m128i(high, low);
        _mm256_sub_epi8(nibbles, _mm256_set1_epi8(F::NIBBLE_BIAS))
    } else {
        const _: () = assert!(BLOCK == 32);
        unsafe { _mm256_loadu_si256(qs.cast()) }
    }
}

/// The little-endian `f16` at `at`, widened.
///
/// # Safety
/// The CPU has f16c; `at` is readable for 2 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_at(at: *const u8) -> f32 {
    let bits = unsafe { at.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// The sum of the 8 lanes.
///
/// # Safety
/// The CPU has avx2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn horizontal_sum(v: __m256) -> f32 {
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)))
}
