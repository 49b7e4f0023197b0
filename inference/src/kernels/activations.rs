//! Activations quantized to 8 bits, once per forward, for the integer dot
//! products.
//!
//! Each block of 32 activations becomes `scale · q` with
//! `scale = max|x| / 127` and `q = round(x / scale)` (GGML's Q8_0); for
//! weights with a minimum (Q4_1) the block also carries `sum = scale · Σq`
//! (GGML's Q8_1). Both are rounded exactly as candle's `BlockQ8_0` /
//! `BlockQ8_1::from_float` round them — the scale through `f16`, the sum as
//! `f16(Σq) · f16(scale)` in `f16` — so our products equal candle's up to the
//! order of the float additions.

use half::f16;
use rayon::prelude::*;

use super::format::BLOCK;

/// 32 quantized activations with their scale (and, where asked, sum).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub(crate) struct ActBlock {
    /// `round(x / scale)`, in `-127..=127`.
    pub quants: [i8; BLOCK],
    /// The block's scale, an `f16` value widened.
    pub scale: f32,
    /// `scale · Σ quants` rounded like GGML's Q8_1 `s` (0 unless asked for).
    pub sum: f32,
}

/// Quantizes `tokens` rows of `x` (each `cols` long, a multiple of 32) into
/// `tokens · cols / 32` blocks, row after row; `with_sums` fills
/// [`ActBlock::sum`]. Rows are quantized in parallel when there are several.
pub(crate) fn quantize(x: &[f32], cols: usize, with_sums: bool) -> Vec<ActBlock> {
    assert!(cols > 0 && cols.is_multiple_of(BLOCK), "{cols} columns");
    let empty = ActBlock {
        quants: [0; BLOCK],
        scale: 0.0,
        sum: 0.0,
    };
    let mut blocks = vec![empty; x.len() / BLOCK];
    let blocks_per_row = cols / BLOCK;
    let fill = |(row, out): (&[f32], &mut [ActBlock])| {
        for (xs, block) in row.chunks_exact(BLOCK).zip(out) {
            *block = quantize_block(xs, with_sums);
        }
    };
    if x.len() > cols {
        x.par_chunks_exact(cols)
            .zip(blocks.par_chunks_mut(blocks_per_row))
            .for_each(fill);
    } else {
        x.chunks_exact(cols)
            .zip(blocks.chunks_mut(blocks_per_row))
            .for_each(fill);
    }
    blocks
}

/// `v.round() as i8` for `|v| < 128` (half away from zero, NaN to 0),
/// without a call to `roundf`: truncate, then step by the exact remainder.
#[inline]
fn round_half_away(v: f32) -> i8 {
    let t = v as i32;
    let frac = v - t as f32;
    (t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)) as i8
}

/// One block, as candle's `from_float` for `BlockQ8_0` / `BlockQ8_1`.
fn quantize_block(xs: &[f32], with_sum: bool) -> ActBlock {
    let amax = xs.iter().fold(0f32, |m, x| m.max(x.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut quants = [0i8; BLOCK];
    for (q, &x) in quants.iter_mut().zip(xs) {
        *q = round_half_away(x * id);
    }
    let d16 = f16::from_f32(d);
    let sum = if with_sum {
        let total: i32 = quants.iter().map(|&q| i32::from(q)).sum();
        (f16::from_f32(total as f32) * d16).to_f32()
    } else {
        0.0
    };
    ActBlock {
        quants,
        scale: d16.to_f32(),
        sum,
    }
}

#[cfg(test)]
mod tests {
    use super::round_half_away;

    /// Exactly `f32::round` (half away from zero) over the quant range,
    /// ties and neighbours of ties included.
    #[test]
    fn rounding_is_half_away_from_zero() {
        let mut cases = vec![
            0.0f32,
            -0.0,
            f32::NAN,
            0.49999997,
            -0.49999997,
            127.0,
            -127.0,
        ];
        for i in -127..127 {
            let tie = i as f32 + 0.5;
            cases.extend([tie, tie.next_down(), tie.next_up(), i as f32]);
        }
        cases.extend((0..10_000).map(|i| (i as f32 * 0.0254) - 127.0));
        for v in cases {
            assert_eq!(round_half_away(v), v.round() as i8, "{v}");
        }
    }
}
