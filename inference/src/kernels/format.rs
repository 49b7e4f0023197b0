//! The GGML weight block layouts the kernels read, straight from GGUF bytes.
//!
//! Every format packs 32 weights of one row into a block that starts with an
//! `f16` scale `d`:
//!
//! | format | bytes | layout                          | weight `j`                 |
//! |--------|-------|---------------------------------|----------------------------|
//! | Q4_0   | 18    | `d: f16, qs: [u8; 16]`          | `d · (nibble_j − 8)`       |
//! | Q4_1   | 20    | `d: f16, m: f16, qs: [u8; 16]`  | `d · nibble_j + m`         |
//! | Q8_0   | 34    | `d: f16, qs: [i8; 32]`          | `d · qs[j]`                |
//!
//! In the 4-bit formats weight `j < 16` is the low nibble of `qs[j]` and
//! weight `j + 16` the high nibble of `qs[j]`.

use half::f16;

/// Weights per block, in every format here (GGML's `QK4_0`, `QK4_1`, `QK8_0`).
pub(crate) const BLOCK: usize = 32;

/// What the kernels need to know about one block format. Implemented by the
/// marker types [`Q4_0`], [`Q4_1`] and [`Q8_0`]; everything is a constant so
/// each kernel is compiled once per format with the branches folded away.
pub(crate) trait BlockFormat: Send + Sync + 'static {
    /// Bytes per block.
    const BYTES: usize;
    /// Offset of the quants in a block.
    const QUANTS_AT: usize;
    /// Quants are 4-bit, two per byte (else one `i8` per byte).
    const NIBBLES: bool;
    /// Subtracted from each nibble to make it signed (8 for Q4_0).
    const NIBBLE_BIAS: i8;
    /// The block has an `f16` minimum `m` at byte 2, added to every weight
    /// (Q4_1). Such weights are unsigned; their dot product with a row of
    /// activations needs the activations' block sums (GGML's Q8_1), the
    /// others take plain Q8_0 activations.
    const HAS_MIN: bool;

    /// The block's scale `d`.
    #[inline]
    fn scale(block: &[u8]) -> f32 {
        f16_at(block, 0)
    }

    /// The block's minimum `m` (0 for formats without one).
    #[inline]
    fn min(block: &[u8]) -> f32 {
        if Self::HAS_MIN {
            f16_at(block, 2)
        } else {
            0.0
        }
    }

    /// The block unpacked for the tile kernels.
    #[inline]
    fn unpack(block: &[u8]) -> WeightBlock {
        WeightBlock {
            quants: Self::quants(block),
            scale: Self::scale(block),
            min: Self::min(block),
        }
    }

    /// The block's 32 integer quants in weight order (`weight = d·q + m`).
    #[inline]
    fn quants(block: &[u8]) -> [i8; BLOCK] {
        let qs = &block[Self::QUANTS_AT..Self::BYTES];
        let mut q = [0i8; BLOCK];
        if Self::NIBBLES {
            for (j, &byte) in qs.iter().enumerate() {
                q[j] = (byte & 0x0F) as i8 - Self::NIBBLE_BIAS;
                q[j + BLOCK / 2] = (byte >> 4) as i8 - Self::NIBBLE_BIAS;
            }
        } else {
            for (q, &byte) in q.iter_mut().zip(qs) {
                *q = byte as i8;
            }
        }
        q
    }
}

/// A weight block unpacked once per product for the tile kernels, which
/// then reuse it for every token: `weight_j = scale · quants[j] + min`.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct WeightBlock {
    /// One quant per byte, in weight order: signed, or the bare nibble
    /// (`0..=15`) for formats with a minimum.
    pub quants: [i8; BLOCK],
    /// The block's scale `d`.
    pub scale: f32,
    /// The block's minimum `m` (0 for formats without one).
    pub min: f32,
}

/// The little-endian `f16` at `block[at..at + 2]`, widened.
#[inline]
fn f16_at(block: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
}

/// GGML Q4_0: 4-bit signed quants, one scale per 32 weights.
pub(crate) struct Q4_0;

impl BlockFormat for Q4_0 {
    const BYTES: usize = 18;
    const QUANTS_AT: usize = 2;
    const NIBBLES: bool = true;
    const NIBBLE_BIAS: i8 = 8;
    const HAS_MIN: bool = false;
}

/// GGML Q4_1: 4-bit unsigned quants, a scale and a minimum per 32 weights.
pub(crate) struct Q4_1;

impl BlockFormat for Q4_1 {
    const BYTES: usize = 20;
    const QUANTS_AT: usize = 4;
    const NIBBLES: bool = true;
    const NIBBLE_BIAS: i8 = 0;
    const HAS_MIN: bool = true;
}

/// GGML Q8_0: 8-bit signed quants, one scale per 32 weights.
pub(crate) struct Q8_0;

impl BlockFormat for Q8_0 {
    const BYTES: usize = 34;
    const QUANTS_AT: usize = 2;
    const NIBBLES: bool = false;
    const NIBBLE_BIAS: i8 = 0;
    const HAS_MIN: bool = false;
}
