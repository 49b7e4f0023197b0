//! The kernels against candle: random weights quantized by candle, random
//! activations, real model widths (576 SmolLM2, 896 / 4864 Qwen2.5-0.5B,
//! 1536 SmolLM2's FFN), odd row counts, 1 to 128 tokens.
//!
//! Tolerances, as `max |ours − theirs| / max |theirs|` over the output:
//! - ≤ 1e-4 against the exact product of candle's quantized weights and
//!   candle's quantized activations (Q8_0 / Q8_1 blocks), summed in f64 —
//!   the same integers, so only float rounding differs — and against
//!   candle's own `QMatMul` where it takes the same route;
//! - ≤ 1e-5 between the AVX2 and the scalar micro-kernel;
//! - ≤ 1e-2 against the f32 product of dequantized weights and the
//!   unquantized activations (the error 8-bit activations cost).

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use half::f16;
use proptest::prelude::*;

use super::activations;
use super::gemm::Isa;
use super::QuantizedWeights;

const FORMATS: [GgmlDType; 3] = [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0];

/// `(rows, cols, tokens)`.
const SHAPES: [(usize, usize, usize); 9] = [
    (67, 576, 1),
    (67, 576, 7),
    (129, 576, 128),
    (1, 896, 3),
    (67, 896, 128),
    (33, 1536, 7),
    (19, 1536, 128),
    (7, 4864, 3),
    (5, 4864, 128),
];

/// `n` deterministic pseudo-random values, roughly normal, a few large.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
        .map(|i| {
            let v = uniform() + uniform() + uniform();
            if i % 97 == 0 {
                8.0 * v
            } else {
                v
            }
        })
        .collect()
}

/// Every micro-kernel this CPU runs.
fn isas() -> Vec<Isa> {
    #[cfg(target_arch = "x86_64")]
    match super::avx2::Avx2::detect() {
        Some(avx2) => return vec![Isa::Scalar, Isa::Avx2(avx2)],
        None => eprintln!("no AVX2 here: only the scalar kernel is tested"),
    }
    vec![Isa::Scalar]
}

fn quantized(dtype: GgmlDType, rows: usize, cols: usize, seed: u64) -> Arc<QTensor> {
    let w = Tensor::from_vec(values(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
    Arc::new(QTensor::quantize(&w, dtype).unwrap())
}

fn ours(w: &Arc<QTensor>) -> QuantizedWeights {
    QuantizedWeights::new(w.clone())
        .unwrap()
        .expect("a kernel format")
}

/// `max |got − want| / max |want|`.
fn relative_error(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let err = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (&g, &w)| m.max((f64::from(g) - w).abs()));
    err / want.iter().fold(0f64, |m, w| m.max(w.abs()))
}

fn f16_at(bytes: &[u8], at: usize) -> f64 {
    f64::from(f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32())
}

/// The product as candle defines it, written from the GGML layouts alone:
/// `x` quantized by candle (Q8_1 for Q4_1 weights, else Q8_0), then per
/// block `d_w · d_x · Σ q_w q_x (+ m_w · s_x)`, summed in f64.
fn exact_reference(w: &QTensor, x: &[f32]) -> Vec<f64> {
    let (rows, cols) = w.shape().dims2().unwrap();
    let tokens = x.len() / cols;
    let blocks = cols / 32;
    let act_dtype = match w.dtype() {
        GgmlDType::Q4_1 => GgmlDType::Q8_1,
        _ => GgmlDType::Q8_0,
    };
    let xt = Tensor::from_vec(x.to_vec(), (tokens, cols), &Device::Cpu).unwrap();
    let xq = QTensor::quantize(&xt, act_dtype)
        .unwrap()
        .data()
        .unwrap()
        .into_owned();
    let wq = w.data().unwrap().into_owned();
    let (w_bytes, x_bytes) = (wq.len() / (rows * blocks), xq.len() / (tokens * blocks));
    let mut out = vec![0f64; tokens * rows];
    for t in 0..tokens {
        for r in 0..rows {
            let mut sum = 0f64;
            for b in 0..blocks {
                let wb = &wq[(r * blocks + b) * w_bytes..][..w_bytes];
                let xb = &xq[(t * blocks + b) * x_bytes..][..x_bytes];
                let xs = &xb[x_bytes - 32..];
                let weight = |j: usize| -> i32 {
                    match w.dtype() {
                        GgmlDType::Q4_0 => i32::from((wb[2 + j % 16] >> (4 * (j / 16))) & 15) - 8,
                        GgmlDType::Q4_1 => i32::from((wb[4 + j % 16] >> (4 * (j / 16))) & 15),
                        _ => i32::from(wb[2 + j] as i8),
                    }
                };
                let dot: i32 = (0..32).map(|j| weight(j) * i32::from(xs[j] as i8)).sum();
                sum += f16_at(wb, 0) * f16_at(xb, 0) * f64::from(dot);
                if w.dtype() == GgmlDType::Q4_1 {
                    sum += f16_at(wb, 2) * f16_at(xb, 2);
                }
            }
            out[t * rows + r] = sum;
        }
    }
    out
}

/// `x · Wᵀ` in f64 from candle's dequantized weights and the f32 `x`.
fn float_reference(w: &QTensor, x: &[f32]) -> Vec<f64> {
    let (rows, cols) = w.shape().dims2().unwrap();
    let wd = w.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
    let wd = wd.to_vec1::<f32>().unwrap();
    let mut out = Vec::with_capacity(x.len() / cols * rows);
    for xr in x.chunks_exact(cols) {
        for wr in wd.chunks_exact(cols) {
            out.push(
                wr.iter()
                    .zip(xr)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum(),
            );
        }
    }
    out
}

/// Our activation blocks carry exactly the bits of candle's Q8_0 / Q8_1.
#[test]
fn activations_are_quantized_as_candle_does() {
    let cols = 896;
    let mut x = values(3 * cols, 1);
    x[64..96].fill(0.0); // an all-zero block: scale 0
    let xt = Tensor::from_vec(x.clone(), (3, cols), &Device::Cpu).unwrap();
    for (dtype, with_sums) in [(GgmlDType::Q8_0, false), (GgmlDType::Q8_1, true)] {
        let ours = activations::quantize(&x, cols, with_sums);
        let theirs = QTensor::quantize(&xt, dtype)
            .unwrap()
            .data()
            .unwrap()
            .into_owned();
        let size = theirs.len() / ours.len();
        assert_eq!(ours.len(), 3 * cols / 32);
        for (a, b) in ours.iter().zip(theirs.chunks_exact(size)) {
            assert_eq!(f64::from(a.scale), f16_at(b, 0));
            let qs: Vec<i8> = b[size - 32..].iter().map(|&q| q as i8).collect();
            assert_eq!(a.quants[..], qs[..]);
            let sum = if with_sums { f16_at(b, 2) } else { 0.0 };
            assert_eq!(f64::from(a.sum), sum);
        }
    }
}

#[test]
fn products_match_the_exact_quantized_product() {
    for dtype in FORMATS {
        for (i, &(rows, cols, tokens)) in SHAPES.iter().enumerate() {
            let w = quantized(dtype, rows, cols, i as u64);
            let x = values(tokens * cols, 100 + i as u64);
            let want = exact_reference(&w, &x);
            for isa in isas() {
                let err = relative_error(&ours(&w).matmul(isa, &x).unwrap(), &want);
                assert!(
                    err <= 1e-4,
                    "{dtype:?} {rows}×{cols}, {tokens} tokens, {isa:?}: {err}"
                );
            }
        }
    }
}

#[test]
fn products_match_candle_qmatmul() {
    for dtype in FORMATS {
        for (i, &(rows, cols, tokens)) in SHAPES.iter().enumerate() {
            let w = quantized(dtype, rows, cols, i as u64);
            let x = values(tokens * cols, 100 + i as u64);
            let xt = Tensor::from_vec(x, (tokens, cols), &Device::Cpu).unwrap();
            let ours = ours(&w).forward(&xt).unwrap();
            let theirs = QMatMul::from_arc(w).unwrap().forward(&xt).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let ours = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let theirs = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let theirs: Vec<f64> = theirs.into_iter().map(f64::from).collect();
            let err = relative_error(&ours, &theirs);
            assert!(
                err <= 1e-4,
                "{dtype:?} {rows}×{cols}, {tokens} tokens: {err}"
            );
        }
    }
}

#[test]
fn products_are_close_to_the_float_product() {
    for dtype in FORMATS {
        for (i, &(rows, cols, tokens)) in SHAPES.iter().enumerate().step_by(2) {
            let w = quantized(dtype, rows, cols, i as u64);
            let x = values(tokens * cols, 100 + i as u64);
            let err = relative_error(
                &ours(&w).matmul(Isa::best(), &x).unwrap(),
                &float_reference(&w, &x),
            );
            assert!(
                err <= 1e-2,
                "{dtype:?} {rows}×{cols}, {tokens} tokens: {err}"
            );
        }
    }
}

/// Scalar vs AVX2 (where this CPU has it) on small random shapes.
fn kernels_agree(dtype: GgmlDType, rows: usize, blocks: usize, tokens: usize, seed: u64) {
    let w = quantized(dtype, rows, blocks * 32, seed);
    let x = values(tokens * blocks * 32, seed + 1);
    let want = exact_reference(&w, &x);
    let scalar = ours(&w).matmul(Isa::Scalar, &x).unwrap();
    assert!(relative_error(&scalar, &want) <= 1e-4);
    let scalar: Vec<f64> = scalar.into_iter().map(f64::from).collect();
    for isa in isas() {
        let err = relative_error(&ours(&w).matmul(isa, &x).unwrap(), &scalar);
        assert!(
            err <= 1e-5,
            "{dtype:?} {rows}×{blocks} blocks, {tokens} tokens, {isa:?}: {err}"
        );
    }
}

#[test]
fn simd_and_scalar_agree_at_model_widths() {
    for dtype in FORMATS {
        for (i, &(rows, cols, tokens)) in SHAPES.iter().enumerate() {
            kernels_agree(dtype, rows, cols / 32, tokens, 200 + i as u64);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn simd_and_scalar_agree(format in 0..3usize, rows in 1..12usize, blocks in 1..6usize,
                             tokens in 1..10usize, seed in any::<u64>()) {
        kernels_agree(FORMATS[format], rows, blocks, tokens, seed);
    }
}

/// Types without a kernel (here Q4_K) are left to candle.
#[test]
fn other_types_are_left_to_candle() {
    let w = quantized(GgmlDType::Q4K, 2, 256, 0);
    assert!(QuantizedWeights::new(w).unwrap().is_none());
}
