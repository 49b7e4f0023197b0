//! What a decoder-only model is: its architecture's hyperparameters and the
//! weight tensors it needs, under their GGUF (llama.cpp) and Hugging Face
//! names.
//!
//! Two architectures share one forward pass ([`crate::transformer`]):
//!
//! - **Llama** (Llama 2/3.x, SmolLM2 …): RMSNorm, rotary positions, grouped
//!   query attention without biases, a SwiGLU MLP. Llama 3.x frequency
//!   scaling comes from GGUF's `rope_freqs.weight` or config.json's
//!   `rope_scaling` (`rope_type = "llama3"`).
//! - **Qwen2** (Qwen 2 / 2.5): the same with biases on the Q, K and V
//!   projections.
//!
//! Rotary embeddings rotate *halves* of each head in Hugging Face weights
//! and in llama.cpp's Qwen2; llama.cpp's converter permutes Llama's Q and K
//! rows so that GGUF Llama rotates *interleaved pairs*.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};

use crate::error::{Error, Result};

/// A supported architecture (serialized as its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Llama (Llama 2/3, SmolLM2, …).
    Llama,
    /// Qwen2 (Qwen 2 / 2.5).
    Qwen2,
}

impl Arch {
    /// The name GGUF's `general.architecture` and config.json's
    /// `model_type` use.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }

    /// The architecture of that name, if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            _ => None,
        }
    }

    /// Whether Q, K and V projections carry biases.
    pub fn qkv_bias(self) -> bool {
        self == Arch::Qwen2
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How rotary embeddings pair a head's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RopeStyle {
    /// Dimension `i` with `i + head_dim/2` (Hugging Face; GGUF Qwen2).
    Halves,
    /// Dimension `2i` with `2i + 1` (GGUF Llama).
    Interleaved,
}

/// The hyperparameters the forward pass needs, from GGUF metadata or
/// config.json, checked for consistency.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hyper {
    pub arch: Arch,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    /// The context length the model declares.
    pub context: usize,
    pub rms_eps: f64,
    pub rope_theta: f32,
    pub rope_style: RopeStyle,
    /// Per-frequency divisors (Llama 3.x scaling), `head_dim / 2` of them.
    pub rope_factors: Option<Vec<f32>>,
    /// No separate output matrix: logits use the embedding.
    pub tied_embeddings: bool,
}

impl Hyper {
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// The tensors the model needs: (role, shape in candle order).
    pub fn tensors(&self) -> Vec<(Role, Vec<usize>)> {
        let (h, hd, i, v) = (self.hidden, self.head_dim(), self.intermediate, self.vocab);
        let (q, kv) = (self.heads * hd, self.kv_heads * hd);
        let mut out = vec![(Role::Embed, vec![v, h]), (Role::OutputNorm, vec![h])];
        if !self.tied_embeddings {
            out.push((Role::Output, vec![v, h]));
        }
        for l in 0..self.layers {
            out.extend([
                (Role::AttnNorm(l), vec![h]),
                (Role::Q(l), vec![q, h]),
                (Role::K(l), vec![kv, h]),
                (Role::V(l), vec![kv, h]),
                (Role::AttnOut(l), vec![h, q]),
                (Role::FfnNorm(l), vec![h]),
                (Role::Gate(l), vec![i, h]),
                (Role::Up(l), vec![i, h]),
                (Role::Down(l), vec![h, i]),
            ]);
            if self.arch.qkv_bias() {
                out.extend([
                    (Role::QBias(l), vec![q]),
                    (Role::KBias(l), vec![kv]),
                    (Role::VBias(l), vec![kv]),
                ]);
            }
        }
        out
    }

    /// Checks the relations between the dimensions; `path` names the file
    /// they came from.
    fn check(&self, path: &Path) -> Result<()> {
        let bad = |reason: &str| Err(Error::invalid(path, reason.to_string()));
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return bad("the head count must be non-zero and divide the hidden size");
        }
        if self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            return bad("the KV head count must be non-zero and divide the head count");
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad("the head dimension must be even");
        }
        if self.layers == 0 || self.intermediate == 0 || self.vocab == 0 || self.context == 0 {
            return bad("layers, intermediate size, vocabulary and context must be non-zero");
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return bad("the RMSNorm epsilon must be finite and positive");
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return bad("the RoPE base must be finite and positive");
        }
        if let Some(f) = &self.rope_factors {
            if f.len() != self.head_dim() / 2 || f.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
                return bad("RoPE frequency factors must be head_dim/2 finite positive numbers");
            }
        }
        Ok(())
    }

    /// With Llama 3.x rotary frequency divisors (GGUF's `rope_freqs.weight`).
    pub fn with_rope_factors(mut self, path: &Path, factors: Vec<f32>) -> Result<Self> {
        self.rope_factors = Some(factors);
        self.check(path)?;
        Ok(self)
    }

    /// From GGUF metadata (`{arch}.*` keys); `vocab` is the embedding's row
    /// count, `tied` whether `output.weight` is absent.
    pub fn from_gguf(
        path: &Path,
        md: &HashMap<String, Value>,
        vocab: usize,
        tied: bool,
    ) -> Result<Self> {
        let arch_name = match md.get("general.architecture") {
            None => return Err(missing(path, "general.architecture")),
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(bad_type(path, "general.architecture", "a string", v)),
        };
        let arch = Arch::from_name(&arch_name).ok_or_else(|| Error::UnsupportedArch {
            path: path.into(),
            arch: arch_name.clone(),
        })?;
        let a = arch.name();
        let key = |k: &str| format!("{a}.{k}");
        let req = |k: &str| gguf_u32(path, md, &key(k))?.ok_or_else(|| missing(path, &key(k)));
        if gguf_u32(path, md, &key("expert_count"))?.unwrap_or(0) > 1 {
            return Err(Error::UnsupportedArch {
                path: path.into(),
                arch: format!("{a} (mixture of experts)"),
            });
        }
        let heads = req("attention.head_count")?;
        let hidden = req("embedding_length")?;
        let hp = Hyper {
            arch,
            hidden,
            layers: req("block_count")?,
            heads,
            kv_heads: gguf_u32(path, md, &key("attention.head_count_kv"))?.unwrap_or(heads),
            intermediate: req("feed_forward_length")?,
            vocab,
            context: req("context_length")?,
            rms_eps: gguf_f32(path, md, &key("attention.layer_norm_rms_epsilon"))?
                .ok_or_else(|| missing(path, &key("attention.layer_norm_rms_epsilon")))?
                as f64,
            rope_theta: gguf_f32(path, md, &key("rope.freq_base"))?.unwrap_or(match arch {
                Arch::Llama => 10_000.0,
                Arch::Qwen2 => 1_000_000.0,
            }),
            rope_style: match arch {
                Arch::Llama => RopeStyle::Interleaved,
                Arch::Qwen2 => RopeStyle::Halves,
            },
            rope_factors: None,
            tied_embeddings: tied,
        };
        if heads > 0 && hidden % heads == 0 {
            if let Some(rd) = gguf_u32(path, md, &key("rope.dimension_count"))? {
                if rd != hp.head_dim() {
                    return Err(Error::BadKey {
                        path: path.into(),
                        key: key("rope.dimension_count"),
                        reason: "must equal embedding_length / head_count (partial RoPE is not supported)".into(),
                    });
                }
            }
        }
        hp.check(path)?;
        Ok(hp)
    }

    /// From a Hugging Face `config.json`.
    pub fn from_config(path: &Path, raw: &serde_json::Value) -> Result<Self> {
        let model_type = raw
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::invalid(path, "no model_type string"))?;
        let arch = Arch::from_name(model_type).ok_or_else(|| Error::UnsupportedArch {
            path: path.into(),
            arch: model_type.into(),
        })?;
        let cfg: HfConfig = serde_json::from_value(raw.clone())
            .map_err(|e| Error::invalid(path, format!("not a {model_type} config: {e}")))?;
        if let Some(act) = &cfg.hidden_act {
            if act != "silu" {
                return Err(Error::invalid(
                    path,
                    format!("hidden_act {act:?}: only silu is supported"),
                ));
            }
        }
        if cfg.use_sliding_window || cfg.attention_bias || cfg.mlp_bias {
            return Err(Error::invalid(
                path,
                "sliding-window attention and Llama attention/MLP biases are not supported",
            ));
        }
        let heads = cfg.num_attention_heads;
        let mut hp = Hyper {
            arch,
            hidden: cfg.hidden_size,
            layers: cfg.num_hidden_layers,
            heads,
            kv_heads: cfg.num_key_value_heads.unwrap_or(heads),
            intermediate: cfg.intermediate_size,
            vocab: cfg.vocab_size,
            context: cfg.max_position_embeddings,
            rms_eps: cfg.rms_norm_eps,
            rope_theta: cfg.rope_theta,
            rope_style: RopeStyle::Halves,
            rope_factors: None,
            tied_embeddings: cfg.tie_word_embeddings,
        };
        hp.check(path)?;
        if let Some(hd) = cfg.head_dim {
            if hd != hp.head_dim() {
                return Err(Error::invalid(
                    path,
                    "head_dim must equal hidden_size / num_attention_heads",
                ));
            }
        }
        if let Some(s) = raw.get("rope_scaling").filter(|v| !v.is_null()) {
            hp.rope_factors = Some(llama3_rope_factors(path, s, hp.head_dim(), hp.rope_theta)?);
        }
        Ok(hp)
    }
}

/// The fields of config.json cairn reads (others are ignored).
#[derive(serde::Deserialize)]
struct HfConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    vocab_size: usize,
    max_position_embeddings: usize,
    rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    rope_theta: f32,
    #[serde(default)]
    tie_word_embeddings: bool,
    head_dim: Option<usize>,
    hidden_act: Option<String>,
    #[serde(default)]
    use_sliding_window: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
}

fn default_theta() -> f32 {
    10_000.0
}

/// Llama 3.x frequency scaling (`rope_scaling.rope_type = "llama3"`): the
/// divisor of each rotary frequency, as Hugging Face and llama.cpp compute
/// it.
fn llama3_rope_factors(
    path: &Path,
    s: &serde_json::Value,
    head_dim: usize,
    theta: f32,
) -> Result<Vec<f32>> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(|v| v.as_str());
    if kind != Some("llama3") {
        return Err(Error::invalid(
            path,
            format!("rope_scaling {s}: only rope_type \"llama3\" is supported"),
        ));
    }
    let num = |k: &str| {
        s.get(k)
            .and_then(|v| v.as_f64())
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| {
                Error::invalid(path, format!("rope_scaling.{k} must be a positive number"))
            })
    };
    let factor = num("factor")?;
    let low = num("low_freq_factor")?;
    let high = num("high_freq_factor")?;
    let original = num("original_max_position_embeddings")?;
    if high <= low {
        return Err(Error::invalid(
            path,
            "rope_scaling.high_freq_factor must exceed low_freq_factor",
        ));
    }
    let (low_wavelen, high_wavelen) = (original / low, original / high);
    Ok((0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / (theta as f64).powf(2.0 * i as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            let scaled = if wavelen < high_wavelen {
                freq
            } else if wavelen > low_wavelen {
                freq / factor
            } else {
                let smooth = (original / wavelen - low) / (high - low);
                (1.0 - smooth) * freq / factor + smooth * freq
            };
            (freq / scaled) as f32
        })
        .collect())
}

/// One weight tensor's part in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Embed,
    OutputNorm,
    Output,
    AttnNorm(usize),
    Q(usize),
    K(usize),
    V(usize),
    QBias(usize),
    KBias(usize),
    VBias(usize),
    AttnOut(usize),
    FfnNorm(usize),
    Gate(usize),
    Up(usize),
    Down(usize),
}

impl Role {
    /// The tensor's name in a GGUF file (llama.cpp's names).
    pub fn gguf_name(self) -> String {
        let (layer, field) = match self {
            Role::Embed => return "token_embd.weight".into(),
            Role::OutputNorm => return "output_norm.weight".into(),
            Role::Output => return "output.weight".into(),
            Role::AttnNorm(l) => (l, "attn_norm.weight"),
            Role::Q(l) => (l, "attn_q.weight"),
            Role::K(l) => (l, "attn_k.weight"),
            Role::V(l) => (l, "attn_v.weight"),
            Role::QBias(l) => (l, "attn_q.bias"),
            Role::KBias(l) => (l, "attn_k.bias"),
            Role::VBias(l) => (l, "attn_v.bias"),
            Role::AttnOut(l) => (l, "attn_output.weight"),
            Role::FfnNorm(l) => (l, "ffn_norm.weight"),
            Role::Gate(l) => (l, "ffn_gate.weight"),
            Role::Up(l) => (l, "ffn_up.weight"),
            Role::Down(l) => (l, "ffn_down.weight"),
        };
        format!("blk.{layer}.{field}")
    }

    /// The tensor's name in a Hugging Face safetensors checkpoint.
    pub fn hf_name(self) -> String {
        let (layer, field) = match self {
            Role::Embed => return "model.embed_tokens.weight".into(),
            Role::OutputNorm => return "model.norm.weight".into(),
            Role::Output => return "lm_head.weight".into(),
            Role::AttnNorm(l) => (l, "input_layernorm.weight"),
            Role::Q(l) => (l, "self_attn.q_proj.weight"),
            Role::K(l) => (l, "self_attn.k_proj.weight"),
            Role::V(l) => (l, "self_attn.v_proj.weight"),
            Role::QBias(l) => (l, "self_attn.q_proj.bias"),
            Role::KBias(l) => (l, "self_attn.k_proj.bias"),
            Role::VBias(l) => (l, "self_attn.v_proj.bias"),
            Role::AttnOut(l) => (l, "self_attn.o_proj.weight"),
            Role::FfnNorm(l) => (l, "post_attention_layernorm.weight"),
            Role::Gate(l) => (l, "mlp.gate_proj.weight"),
            Role::Up(l) => (l, "mlp.up_proj.weight"),
            Role::Down(l) => (l, "mlp.down_proj.weight"),
        };
        format!("model.layers.{layer}.{field}")
    }

    /// Norms and biases are vectors; they are kept in F32 whatever the
    /// file's type.
    pub fn is_vector(self) -> bool {
        matches!(
            self,
            Role::OutputNorm
                | Role::AttnNorm(_)
                | Role::FfnNorm(_)
                | Role::QBias(_)
                | Role::KBias(_)
                | Role::VBias(_)
        )
    }
}

fn missing(path: &Path, key: &str) -> Error {
    Error::MissingKey {
        path: path.into(),
        key: key.into(),
    }
}

fn bad_type(path: &Path, key: &str, expected: &str, v: &Value) -> Error {
    Error::BadKey {
        path: path.into(),
        key: key.into(),
        reason: format!("expected {expected}, found {:?}", v.value_type()),
    }
}

/// An integer metadata value (any unsigned or non-negative signed integer
/// type that fits in `usize`), if present.
pub(crate) fn gguf_u32(
    path: &Path,
    md: &HashMap<String, gguf_file::Value>,
    key: &str,
) -> Result<Option<usize>> {
    let v = match md.get(key) {
        None => return Ok(None),
        Some(v) => v,
    };
    let n: Option<u64> = match v {
        Value::U8(x) => Some(*x as u64),
        Value::U16(x) => Some(*x as u64),
        Value::U32(x) => Some(*x as u64),
        Value::U64(x) => Some(*x),
        Value::I8(x) => u64::try_from(*x).ok(),
        Value::I16(x) => u64::try_from(*x).ok(),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => return Err(bad_type(path, key, "an integer", v)),
    };
    n.filter(|&n| n <= u32::MAX as u64)
        .map(|n| Some(n as usize))
        .ok_or_else(|| Error::BadKey {
            path: path.into(),
            key: key.into(),
            reason: "negative or larger than 2^32 - 1".into(),
        })
}

/// A finite float metadata value (F32 or F64), if present.
pub(crate) fn gguf_f32(
    path: &Path,
    md: &HashMap<String, gguf_file::Value>,
    key: &str,
) -> Result<Option<f32>> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::F32(x)) if x.is_finite() => Ok(Some(*x)),
        Some(Value::F64(x)) if x.is_finite() => Ok(Some(*x as f32)),
        Some(v) => Err(bad_type(path, key, "a finite float", v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_factors_match_llama_3_2() {
        // Llama 3.2's rope_scaling; frequencies above the high-frequency
        // wavelength are kept (divisor 1), the lowest are divided by 32.
        let s = serde_json::json!({"rope_type": "llama3", "factor": 32.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192});
        let f = llama3_rope_factors(Path::new("c"), &s, 64, 500_000.0).unwrap();
        assert_eq!(f.len(), 32);
        assert_eq!(f[0], 1.0);
        assert!((f[31] - 32.0).abs() < 1e-3, "{}", f[31]);
        assert!(f.windows(2).all(|w| w[0] <= w[1] + 1e-6));
    }

    #[test]
    fn names_cover_both_formats() {
        assert_eq!(Role::QBias(3).gguf_name(), "blk.3.attn_q.bias");
        assert_eq!(
            Role::QBias(3).hf_name(),
            "model.layers.3.self_attn.q_proj.bias"
        );
        assert_eq!(Role::Down(0).gguf_name(), "blk.0.ffn_down.weight");
    }
}
