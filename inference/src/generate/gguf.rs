//! Writes a generated model as one GGUF file (v2, candle's writer) with the
//! metadata llama.cpp reads: `{arch}.*` hyperparameters (integers U32,
//! floats F32) and the tokenizer as `tokenizer.ggml.*` (model `gpt2`,
//! tokens — padded with `[PADn]` up to the embedding's rows —, token types,
//! merges, BOS/EOS ids). Llama's Q and K rows are permuted the way
//! llama.cpp's converter does (GGUF Llama rotates interleaved pairs).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use super::vocab::{bpe_vocab, SPECIALS};
use super::weights::{permute_rows, weight};
use super::{ModelSpec, BOS_ID, EOS_ID};
use crate::arch::{Arch, Hyper, Role};
use crate::error::{Error, Result};

/// GGUF tensor types the generator writes (norms and biases stay F32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufType {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4_1,
    /// llama.cpp's `Q4_K_M` mix: Q6_K for the output matrix (the embedding
    /// when tied) and for `attn_v` / `ffn_down` of the layers llama.cpp
    /// gives more bits, Q4_K elsewhere. Needs input dimensions that are
    /// multiples of 256.
    Q4KM,
}

impl GgufType {
    /// The name used in file names and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            GgufType::F32 => "f32",
            GgufType::F16 => "f16",
            GgufType::Q8_0 => "q8_0",
            GgufType::Q4_0 => "q4_0",
            GgufType::Q4_1 => "q4_1",
            GgufType::Q4KM => "q4_k_m",
        }
    }

    /// llama.cpp's `general.file_type` (LLAMA_FTYPE_*).
    fn file_type(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::Q4_0 => 2,
            GgufType::Q4_1 => 3,
            GgufType::Q8_0 => 7,
            GgufType::Q4KM => 15,
        }
    }

    /// The block type of a matrix with `role` in a model of `layers` layers.
    fn of(self, role: Role, hp: &Hyper) -> GgmlDType {
        match self {
            GgufType::F32 => GgmlDType::F32,
            GgufType::F16 => GgmlDType::F16,
            GgufType::Q8_0 => GgmlDType::Q8_0,
            GgufType::Q4_0 => GgmlDType::Q4_0,
            GgufType::Q4_1 => GgmlDType::Q4_1,
            GgufType::Q4KM => {
                let n = hp.layers;
                // llama.cpp's use_more_bits(i, n).
                let more = |i: usize| i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
                match role {
                    Role::Output => GgmlDType::Q6K,
                    Role::Embed if hp.tied_embeddings => GgmlDType::Q6K,
                    Role::V(l) | Role::Down(l) if more(l) => GgmlDType::Q6K,
                    _ => GgmlDType::Q4K,
                }
            }
        }
    }
}

/// Writes the model to `path`.
pub(super) fn write(hp: &Hyper, spec: &ModelSpec, path: &Path, ty: GgufType) -> Result<()> {
    use gguf_file::Value as V;
    let a = hp.arch.name();
    let (mut tokens, merges) = bpe_vocab(spec.dims.merges);
    let mut token_types: Vec<V> = (0..tokens.len())
        .map(|i| V::I32(if i < SPECIALS.len() { 3 } else { 1 }))
        .collect();
    for i in tokens.len()..hp.vocab {
        tokens.push(format!("[PAD{i}]"));
        token_types.push(V::I32(5));
    }
    let u = |x: usize| V::U32(x as u32);
    let key = |k: &str| format!("{a}.{k}");
    let metadata: Vec<(String, V)> = vec![
        ("general.architecture".into(), V::String(a.into())),
        (
            "general.name".into(),
            V::String(format!("cairn generated {a}")),
        ),
        ("general.file_type".into(), V::U32(ty.file_type())),
        (key("vocab_size"), u(hp.vocab)),
        (key("context_length"), u(hp.context)),
        (key("embedding_length"), u(hp.hidden)),
        (key("block_count"), u(hp.layers)),
        (key("feed_forward_length"), u(hp.intermediate)),
        (key("attention.head_count"), u(hp.heads)),
        (key("attention.head_count_kv"), u(hp.kv_heads)),
        (key("rope.dimension_count"), u(hp.head_dim())),
        (key("rope.freq_base"), V::F32(hp.rope_theta)),
        (
            key("attention.layer_norm_rms_epsilon"),
            V::F32(hp.rms_eps as f32),
        ),
        ("tokenizer.ggml.model".into(), V::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), V::String("default".into())),
        (
            "tokenizer.ggml.tokens".into(),
            V::Array(tokens.into_iter().map(V::String).collect()),
        ),
        ("tokenizer.ggml.token_type".into(), V::Array(token_types)),
        (
            "tokenizer.ggml.merges".into(),
            V::Array(
                merges
                    .into_iter()
                    .map(|(a, b)| V::String(format!("{a} {b}")))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id".into(), V::U32(BOS_ID)),
        ("tokenizer.ggml.eos_token_id".into(), V::U32(EOS_ID)),
        ("tokenizer.ggml.unknown_token_id".into(), V::U32(0)),
        ("tokenizer.ggml.padding_token_id".into(), V::U32(0)),
    ];

    let tensors = hp.tensors();
    let mut qtensors = Vec::with_capacity(tensors.len());
    for (role, shape) in &tensors {
        let w = weight(hp, spec.seed, *role, shape);
        let cols = shape.get(1).copied().unwrap_or(1);
        let data = match (hp.arch, role) {
            (Arch::Llama, Role::Q(_)) => permute_rows(&w, shape[0], cols, hp.heads),
            (Arch::Llama, Role::K(_)) => permute_rows(&w, shape[0], cols, hp.kv_heads),
            _ => w,
        };
        let name = role.gguf_name();
        let dtype = if role.is_vector() {
            GgmlDType::F32
        } else {
            ty.of(*role, hp)
        };
        if cols % dtype.block_size() != 0 {
            return Err(Error::Request(format!(
                "{}: tensor {name} has {cols} columns, not a multiple of the {} block size {}",
                ty.name(),
                dtype_name(dtype),
                dtype.block_size()
            )));
        }
        let tensor = Tensor::from_vec(data, shape.as_slice(), &Device::Cpu)
            .map_err(|e| Error::candle(format!("tensor {name}"), e))?;
        let q = QTensor::quantize(&tensor, dtype)
            .map_err(|e| Error::candle(format!("quantizing {name}"), e))?;
        qtensors.push((name, q));
    }

    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(file);
    let md: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = qtensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
    gguf_file::write(&mut w, &md, &ts).map_err(|e| Error::candle(path.display().to_string(), e))?;
    w.flush().map_err(|e| Error::io(path, e))?;
    Ok(())
}

fn dtype_name(t: GgmlDType) -> String {
    format!("{t:?}").to_lowercase()
}
