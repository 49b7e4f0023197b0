//! The forward pass of a Llama or Qwen2 decoder (see [`crate::arch`]), for
//! weights from GGUF or safetensors alike.
//!
//! Weights are read-only and shared; each request owns a [`KvCache`]. Every
//! matrix product with a weight goes through [`QLinear`]. Activations are
//! F32. Grouped-query attention multiplies each KV head with its group of
//! query heads at once (no copies of K and V). Rotary angles are computed
//! for the positions of each call, so no table bounds the context.

use candle_core::{Device, IndexOp, Tensor};

mod step;

use crate::arch::{Hyper, Role, RopeStyle};
use crate::qlinear::{Matrix, QLinear};

type CResult<T> = candle_core::Result<T>;

/// Where the loader gets tensors by role (GGUF or safetensors).
pub(crate) trait WeightSource {
    /// A 2-D weight.
    fn matrix(&mut self, role: Role) -> crate::Result<Matrix>;
    /// A norm or bias, as F32.
    fn vector(&mut self, role: Role) -> crate::Result<Tensor>;
}

struct Layer {
    attn_norm: Tensor,
    q: QLinear,
    k: QLinear,
    v: QLinear,
    out: QLinear,
    ffn_norm: Tensor,
    gate: QLinear,
    up: QLinear,
    down: QLinear,
}

/// A loaded decoder.
pub(crate) struct Transformer {
    hp: Hyper,
    embed: candle_core::quantized::QMatMul,
    layers: Vec<Layer>,
    norm: Tensor,
    output: QLinear,
    /// `1 / (theta^(2i/d) · factor_i)` for each rotary pair.
    inv_freq: Vec<f32>,
    device: Device,
}

/// One request's keys and values, per layer.
pub(crate) struct KvCache {
    layers: Vec<LayerCache>,
}

impl KvCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.len)
    }
}

/// Positions a layer's key and value buffers grow by, at least.
const KV_STEP: usize = 256;

/// One layer's keys and values: buffers of shape `(kv_heads, capacity,
/// head_dim)` whose first `len` positions are filled. Appending writes in
/// place; a full buffer is replaced by one of twice the capacity, so a
/// token's step costs no copy of the cache.
#[derive(Default)]
struct LayerCache {
    buffers: Option<(Tensor, Tensor)>,
    len: usize,
}

impl LayerCache {
    /// Appends `k` and `v` (`(kv_heads, seq, head_dim)`) and returns views
    /// of every position held, `(kv_heads, len, head_dim)` each.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> CResult<(Tensor, Tensor)> {
        let total = self.len + k.dim(1)?;
        let capacity = match &self.buffers {
            Some((kb, _)) => kb.dim(1)?,
            None => 0,
        };
        if total > capacity {
            let capacity = total.max(2 * capacity).next_multiple_of(KV_STEP);
            let grow = |old: Option<&Tensor>, new: &Tensor| -> CResult<Tensor> {
                let (heads, _, hd) = new.dims3()?;
                let buffer = Tensor::zeros((heads, capacity, hd), new.dtype(), new.device())?;
                if let Some(old) = old {
                    buffer.slice_set(&old.narrow(1, 0, self.len)?.contiguous()?, 1, 0)?;
                }
                Ok(buffer)
            };
            let old = self.buffers.as_ref();
            self.buffers = Some((grow(old.map(|b| &b.0), k)?, grow(old.map(|b| &b.1), v)?));
        }
        let Some((kb, vb)) = self.buffers.as_ref() else {
            candle_core::bail!("key/value buffers missing after allocation")
        };
        kb.slice_set(&k.contiguous()?, 1, self.len)?;
        vb.slice_set(&v.contiguous()?, 1, self.len)?;
        self.len = total;
        Ok((kb.narrow(1, 0, total)?, vb.narrow(1, 0, total)?))
    }
}

impl Transformer {
    /// Builds the model from `src`, whose tensors' presence and shapes the
    /// caller has checked against `hp.tensors()`.
    pub fn load(hp: Hyper, src: &mut dyn WeightSource, device: &Device) -> crate::Result<Self> {
        let candle = |what: String| move |e| crate::Error::candle(what, e);
        let embed_m = src.matrix(Role::Embed)?;
        let embed = embed_m
            .qmatmul()
            .map_err(candle("token embedding".into()))?;
        let output_m = if hp.tied_embeddings {
            embed_m
        } else {
            src.matrix(Role::Output)?
        };
        let output = QLinear::new(&output_m, None).map_err(candle("output matrix".into()))?;
        let mut layers = Vec::with_capacity(hp.layers);
        for l in 0..hp.layers {
            let mut linear = |w: Role, b: Option<Role>| -> crate::Result<QLinear> {
                let m = src.matrix(w)?;
                let bias = b.map(|b| src.vector(b)).transpose()?;
                QLinear::new(&m, bias).map_err(candle(format!("layer {l}")))
            };
            let bias = |r: Role| hp.arch.qkv_bias().then_some(r);
            layers.push(Layer {
                q: linear(Role::Q(l), bias(Role::QBias(l)))?,
                k: linear(Role::K(l), bias(Role::KBias(l)))?,
                v: linear(Role::V(l), bias(Role::VBias(l)))?,
                out: linear(Role::AttnOut(l), None)?,
                gate: linear(Role::Gate(l), None)?,
                up: linear(Role::Up(l), None)?,
                down: linear(Role::Down(l), None)?,
                attn_norm: src.vector(Role::AttnNorm(l))?,
                ffn_norm: src.vector(Role::FfnNorm(l))?,
            });
        }
        let hd = hp.head_dim();
        let inv_freq = (0..hd / 2)
            .map(|i| {
                let f = 1f32 / hp.rope_theta.powf((2 * i) as f32 / hd as f32);
                hp.rope_factors.as_ref().map_or(f, |r| f / r[i])
            })
            .collect();
        Ok(Transformer {
            norm: src.vector(Role::OutputNorm)?,
            hp,
            embed,
            layers,
            output,
            inv_freq,
            device: device.clone(),
        })
    }

    /// An empty cache for one request.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: (0..self.hp.layers).map(|_| LayerCache::default()).collect(),
        }
    }

    /// Runs `tokens` at positions `pos..`, extending `cache` (which must
    /// hold exactly `pos` positions), and returns the logits after the last
    /// token.
    pub fn forward(&self, tokens: &[u32], pos: usize, cache: &mut KvCache) -> CResult<Vec<f32>> {
        if cache.len() != pos || tokens.is_empty() {
            candle_core::bail!(
                "forward at position {pos} with {} tokens on a cache of {}",
                tokens.len(),
                cache.len()
            );
        }
        match tokens {
            [token] if self.device.is_cpu() => self.step(*token, pos, cache),
            _ => self.forward_tensors(tokens, pos, cache)?.to_vec1::<f32>(),
        }
    }

    /// [`Transformer::forward`] through tensor operations: prompts, and
    /// every pass off the CPU.
    fn forward_tensors(&self, tokens: &[u32], pos: usize, cache: &mut KvCache) -> CResult<Tensor> {
        let seq = tokens.len();
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embed.embedding(&ids)?; // (seq, hidden)
        let (cos, sin) = self.rope_tables(pos, seq)?;
        let mask = (seq > 1)
            .then(|| causal_mask(seq, pos, &self.device))
            .transpose()?;
        for (layer, kv) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.hp.rms_eps as f32)?;
            let a = self.attention(layer, &h, &cos, &sin, mask.as_ref(), kv)?;
            x = (x + layer.out.forward(&a)?)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.hp.rms_eps as f32)?;
            let [gate, up] = group(QLinear::forward_group(&[&layer.gate, &layer.up], &h)?)?;
            let m = layer.down.forward(&(candle_nn::ops::silu(&gate)? * up)?)?;
            x = (x + m)?;
        }
        let last = x.i(seq - 1..seq)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.hp.rms_eps as f32)?;
        self.output.forward(&last)?.flatten_all()
    }

    /// `(seq, head_dim/2)` cosines and sines for positions `pos..pos+seq`.
    fn rope_tables(&self, pos: usize, seq: usize) -> CResult<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(seq * half);
        let mut sin = Vec::with_capacity(seq * half);
        for p in pos..pos + seq {
            for f in &self.inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok((
            Tensor::from_vec(cos, (seq, half), &self.device)?,
            Tensor::from_vec(sin, (seq, half), &self.device)?,
        ))
    }

    /// Self-attention of `h` (`(seq, hidden)`), appending its keys and
    /// values to `kv`; returns `(seq, heads · head_dim)`.
    fn attention(
        &self,
        layer: &Layer,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        kv: &mut LayerCache,
    ) -> CResult<Tensor> {
        let (heads, kv_heads, hd) = (self.hp.heads, self.hp.kv_heads, self.hp.head_dim());
        let seq = h.dim(0)?;
        // (seq, n · hd) → (n, seq, hd)
        let split = |t: Tensor, n: usize| t.reshape((seq, n, hd))?.transpose(0, 1)?.contiguous();
        let rotate = |t: Tensor| -> CResult<Tensor> {
            let t = t.unsqueeze(0)?;
            let r = match self.hp.rope_style {
                RopeStyle::Halves => candle_nn::rotary_emb::rope(&t, cos, sin)?,
                RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&t, cos, sin)?,
            };
            r.squeeze(0)
        };
        let [q, k, v] = group(QLinear::forward_group(&[&layer.q, &layer.k, &layer.v], h)?)?;
        let q = rotate(split(q, heads)?)?;
        let k = rotate(split(k, kv_heads)?)?;
        let v = split(v, kv_heads)?;
        let (k, v) = kv.append(&k, &v)?;
        let total = k.dim(1)?;
        // Query heads h·g … h·g+g-1 share KV head h: group them as rows.
        let group = heads / kv_heads;
        let q = q.reshape((kv_heads, group * seq, hd))?;
        let att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let att = match mask {
            None => att,
            Some(m) => att
                .reshape((kv_heads, group, seq, total))?
                .broadcast_add(m)?
                .reshape((kv_heads, group * seq, total))?,
        };
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        att.matmul(&v)? // (kv_heads, group · seq, hd)
            .reshape((heads, seq, hd))?
            .transpose(0, 1)?
            .reshape((seq, heads * hd))
    }
}

/// The `N` products of a [`QLinear::forward_group`] of `N` layers.
fn group<T, const N: usize>(products: Vec<T>) -> CResult<[T; N]> {
    products
        .try_into()
        .map_err(|v: Vec<T>| candle_core::Error::Msg(format!("{} products of {N} layers", v.len())))
}

/// `(seq, pos + seq)`: 0 where token `i` (at `pos + i`) may attend, −∞ after.
fn causal_mask(seq: usize, pos: usize, device: &Device) -> CResult<Tensor> {
    let total = pos + seq;
    let m: Vec<f32> = (0..seq)
        .flat_map(|i| (0..total).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (seq, total), device)
}
