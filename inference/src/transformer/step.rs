//! The one-token forward pass on the CPU, on plain vectors: what every
//! generated token runs. Each layer is a handful of loops between the
//! matrix products instead of some twenty tensor operations (each with its
//! allocation and, in attention, a general matrix product of a few rows), and
//! keys and values are read in place from the request's cache.
//!
//! It computes what the tensor path computes (tested against it): RMS norm
//! as candle's `rms_norm`, rotary embeddings as `rope` / `rope_i`, softmax
//! with the maximum subtracted, SiLU as `x / (1 + e^-x)`.

use candle_core::{CpuStorage, Layout, Storage, Tensor};
use rayon::prelude::*;

use super::{group, CResult, KvCache, Layer, LayerCache, Transformer};
use crate::arch::RopeStyle;
use crate::qlinear::QLinear;

/// Multiply-adds of one token's attention scores from which its heads run
/// in parallel.
const PARALLEL_ATTENTION_MACS: usize = 1 << 16;

impl Transformer {
    /// Runs `token` at position `pos` (the cache holds exactly `pos`
    /// positions) and returns the logits after it.
    pub(super) fn step(&self, token: u32, pos: usize, cache: &mut KvCache) -> CResult<Vec<f32>> {
        let ids = Tensor::new(&[token], &self.device)?;
        let mut x = self
            .embed
            .embedding(&ids)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let (cos, sin) = self.rope_angles(pos);
        let eps = self.hp.rms_eps as f32;
        for (layer, kv) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let h = rms_norm(&x, &layer.attn_norm, eps)?;
            let a = self.step_attention(layer, &h, &cos, &sin, kv)?;
            let [o] = group(QLinear::forward_group_vec(&[&layer.out], &a)?)?;
            add(&mut x, &o);
            let h = rms_norm(&x, &layer.ffn_norm, eps)?;
            let [mut gate, up] = group(QLinear::forward_group_vec(&[&layer.gate, &layer.up], &h)?)?;
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            let [m] = group(QLinear::forward_group_vec(&[&layer.down], &gate)?)?;
            add(&mut x, &m);
        }
        let last = rms_norm(&x, &self.norm, eps)?;
        let [logits] = group(QLinear::forward_group_vec(&[&self.output], &last)?)?;
        Ok(logits)
    }

    /// The cosines and sines of position `pos`, one per rotary pair.
    fn rope_angles(&self, pos: usize) -> (Vec<f32>, Vec<f32>) {
        self.inv_freq
            .iter()
            .map(|f| {
                let angle = pos as f32 * f;
                (angle.cos(), angle.sin())
            })
            .unzip()
    }

    /// Self-attention of one normed token `h`, appending its key and value
    /// to `kv`; returns `heads · head_dim` values.
    fn step_attention(
        &self,
        layer: &Layer,
        h: &[f32],
        cos: &[f32],
        sin: &[f32],
        kv: &mut LayerCache,
    ) -> CResult<Vec<f32>> {
        let (heads, kv_heads, hd) = (self.hp.heads, self.hp.kv_heads, self.hp.head_dim());
        let [mut q, mut k, v] = group(QLinear::forward_group_vec(
            &[&layer.q, &layer.k, &layer.v],
            h,
        )?)?;
        for head in q.chunks_exact_mut(hd).chain(k.chunks_exact_mut(hd)) {
            rotate(head, cos, sin, self.hp.rope_style);
        }
        let shape = (kv_heads, 1, hd);
        let (keys, values) = kv.append(
            &Tensor::from_vec(k, shape, &self.device)?,
            &Tensor::from_vec(v, shape, &self.device)?,
        )?;
        let (key_storage, key_layout) = keys.storage_and_layout();
        let (value_storage, value_layout) = values.storage_and_layout();
        let keys = Heads::of(&key_storage, key_layout)?;
        let values = Heads::of(&value_storage, value_layout)?;
        let scale = 1.0 / (hd as f32).sqrt();
        let group_size = heads / kv_heads;
        let mut out = vec![0f32; heads * hd];
        let one_head = |(head, (q, out)): (usize, (&[f32], &mut [f32]))| {
            let g = head / group_size;
            let mut scores: Vec<f32> = (0..keys.positions)
                .map(|j| dot(q, keys.row(g, j)) * scale)
                .collect();
            softmax(&mut scores);
            for (j, &p) in scores.iter().enumerate() {
                for (o, v) in out.iter_mut().zip(values.row(g, j)) {
                    *o += p * v;
                }
            }
        };
        if heads * keys.positions * hd >= PARALLEL_ATTENTION_MACS {
            (q.par_chunks_exact(hd).zip(out.par_chunks_exact_mut(hd)))
                .enumerate()
                .for_each(one_head);
        } else {
            (q.chunks_exact(hd).zip(out.chunks_exact_mut(hd)))
                .enumerate()
                .for_each(one_head);
        }
        Ok(out)
    }
}

/// A cache buffer's filled part, `(kv_heads, positions, head_dim)` (a
/// narrowed CPU tensor: rows `head_dim` apart, heads `head_stride` apart).
struct Heads<'a> {
    data: &'a [f32],
    head_stride: usize,
    head_dim: usize,
    positions: usize,
}

impl<'a> Heads<'a> {
    fn of(storage: &'a Storage, layout: &Layout) -> CResult<Heads<'a>> {
        let (_, positions, head_dim) = layout.shape().dims3()?;
        let stride = layout.stride();
        if stride[1..] != [head_dim, 1] {
            candle_core::bail!("key/value view with strides {stride:?}");
        }
        match storage {
            Storage::Cpu(CpuStorage::F32(data)) => Ok(Heads {
                data: &data[layout.start_offset()..],
                head_stride: stride[0],
                head_dim,
                positions,
            }),
            _ => candle_core::bail!("the one-token step needs F32 keys and values on the CPU"),
        }
    }

    fn row(&self, head: usize, pos: usize) -> &[f32] {
        let at = head * self.head_stride + pos * self.head_dim;
        &self.data[at..at + self.head_dim]
    }
}

/// `x / rms(x) · alpha`, as candle's `rms_norm`; `alpha` (a norm's
/// weights, F32 on the CPU) is read in place, not copied per token.
fn rms_norm(x: &[f32], alpha: &Tensor, eps: f32) -> CResult<Vec<f32>> {
    let (storage, layout) = alpha.storage_and_layout();
    let alpha = match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) => &data[start..end],
        _ => candle_core::bail!("the one-token step needs contiguous F32 norm weights on the CPU"),
    };
    if alpha.len() != x.len() {
        candle_core::bail!("norm of {} weights for {} values", alpha.len(), x.len());
    }
    let sum2: f32 = x.iter().map(|v| v * v).sum();
    let m = (sum2 / x.len() as f32 + eps).sqrt();
    Ok(x.iter().zip(alpha).map(|(v, a)| v / m * a).collect())
}

/// `x += y`.
fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
}

/// `Σ a_i · b_i`, in eight running sums so the compiler vectorizes it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in a8.zip(b8) {
        for i in 0..8 {
            sums[i] += a[i] * b[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// In place, the maximum subtracted before exponentiating.
fn softmax(s: &mut [f32]) {
    let max = s.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0;
    for v in s.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    s.iter_mut().for_each(|v| *v /= sum);
}

/// Rotates one head's `head_dim` values by the position's angles.
fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32], style: RopeStyle) {
    let half = x.len() / 2;
    for (i, (&c, &s)) in cos.iter().zip(sin).enumerate() {
        let (a, b) = match style {
            RopeStyle::Halves => (i, i + half),
            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
        };
        let (xa, xb) = (x[a], x[b]);
        x[a] = xa * c - xb * s;
        x[b] = xa * s + xb * c;
    }
}
