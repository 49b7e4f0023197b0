//! Random-weight models in real file formats, for tests, demos and
//! benchmarks.
//!
//! [`generate`] writes a seeded, deterministic model: the same
//! [`ModelSpec`] gives the same weights whatever the output format, so a
//! safetensors directory and a GGUF file written from one spec must make the
//! same greedy choices. Dimensions are tiny (for tests) or those of a real
//! model ([`Dims::preset`]: SmolLM2-135M, Qwen2.5-0.5B, Llama-3.2-1B) for
//! benchmarks. Formats:
//!
//! - **safetensors** ([`safetensors`]): `model.safetensors` (or
//!   `model-0000i-of-0000n.safetensors` shards with
//!   `model.safetensors.index.json`), `config.json` with the Hugging Face
//!   keys of the architecture, `tokenizer.json`, `tokenizer_config.json`;
//! - **GGUF** ([`gguf`]): the metadata llama.cpp reads for the
//!   architecture, the tokenizer as `tokenizer.ggml.*`, tensors under
//!   llama.cpp's names in F32, F16, Q8_0, Q4_0, Q4_1 or llama.cpp's Q4_K_M
//!   mix; a `tokenizer.json` beside the file.
//!
//! The tokenizer ([`vocab`]) is a small byte-level BPE; a model's embedding
//! may have more rows than it has tokens (as real Qwen2.5 models do).

mod gguf;
mod safetensors;
mod vocab;
mod weights;

use std::path::{Path, PathBuf};

pub use self::gguf::GgufType;
pub use self::vocab::{byte_symbols, tokenizer_json, write_tokenizer};
pub use crate::arch::Arch;
use crate::arch::{Hyper, RopeStyle};
use crate::error::{Error, Result};

/// Shapes of a generated model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dims {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    /// BPE merges after the 3 special and 256 byte tokens; the tokenizer's
    /// vocabulary is `3 + 256 + merges`.
    pub merges: usize,
    /// Rows of the embedding: at least the tokenizer's vocabulary (`None`:
    /// exactly it).
    pub vocab: Option<usize>,
    /// `max_position_embeddings` / `{arch}.context_length`.
    pub context: usize,
    /// The output matrix is the embedding (no `lm_head` / `output.weight`).
    pub tied: bool,
}

/// Names accepted by [`Dims::preset`].
pub const PRESETS: [&str; 4] = ["tiny", "smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b"];

impl Dims {
    /// hidden 64, 2 layers, 4 heads, 2 KV heads, intermediate 128, vocabulary 300.
    pub fn tiny() -> Self {
        Dims {
            hidden: 64,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            intermediate: 128,
            merges: 41,
            vocab: None,
            context: 256,
            tied: false,
        }
    }

    /// The dimensions of a real model, by name (see [`PRESETS`]): `tiny`,
    /// `smollm2-135m`, `qwen2.5-0.5b`, `llama-3.2-1b`. Vocabulary and
    /// context are the real model's; the tokenizer stays small.
    pub fn preset(name: &str) -> Option<Self> {
        let real = |hidden, layers, heads, kv_heads, intermediate, vocab, context| Dims {
            hidden,
            layers,
            heads,
            kv_heads,
            intermediate,
            merges: Dims::tiny().merges,
            vocab: Some(vocab),
            context,
            tied: true,
        };
        Some(match name {
            "tiny" => Dims::tiny(),
            "smollm2-135m" => real(576, 30, 9, 3, 1536, 49_152, 8192),
            "qwen2.5-0.5b" => real(896, 24, 14, 2, 4864, 151_936, 32_768),
            "llama-3.2-1b" => real(2048, 16, 32, 8, 8192, 128_256, 131_072),
            _ => return None,
        })
    }

    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub arch: Arch,
    pub dims: Dims,
    /// Seed of the weights (the tokenizer does not depend on it).
    pub seed: u64,
}

impl ModelSpec {
    /// A tiny Llama with the given seed.
    pub fn tiny_llama(seed: u64) -> Self {
        ModelSpec {
            arch: Arch::Llama,
            dims: Dims::tiny(),
            seed,
        }
    }

    /// The architecture's hyperparameters for an embedding of `vocab` rows.
    fn hyper(&self, vocab: usize) -> Hyper {
        let d = &self.dims;
        Hyper {
            arch: self.arch,
            hidden: d.hidden,
            layers: d.layers,
            heads: d.heads,
            kv_heads: d.kv_heads,
            intermediate: d.intermediate,
            vocab,
            context: d.context,
            rms_eps: 1e-5,
            rope_theta: match self.arch {
                Arch::Llama => 10_000.0,
                Arch::Qwen2 => 1_000_000.0,
            },
            rope_style: RopeStyle::Halves,
            rope_factors: None,
            tied_embeddings: d.tied,
        }
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A directory with f32 safetensors split into `shards` files (1: a
    /// single `model.safetensors` without an index).
    Safetensors { shards: usize },
    /// One `.gguf` file plus `tokenizer.json` beside it.
    Gguf(GgufType),
}

/// The BOS and EOS ids of the generated tokenizer.
pub const BOS_ID: u32 = 1;
pub const EOS_ID: u32 = 2;

/// Writes a model into `dir` (created if needed) and returns the path to
/// load: the directory for safetensors, the `.gguf` file for GGUF.
pub fn generate(spec: &ModelSpec, format: Format, dir: &Path) -> Result<PathBuf> {
    check_dims(&spec.dims)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tokens = write_tokenizer(dir, spec.dims.merges)?;
    let vocab = spec.dims.vocab.unwrap_or(tokens);
    if vocab < tokens {
        return Err(Error::Request(format!(
            "an embedding of {vocab} rows cannot hold the tokenizer's {tokens} tokens"
        )));
    }
    let hp = spec.hyper(vocab);
    match format {
        Format::Safetensors { shards } => {
            safetensors::write(&hp, spec.seed, dir, shards.max(1))?;
            Ok(dir.to_path_buf())
        }
        Format::Gguf(ty) => {
            let path = dir.join(format!("model-{}.gguf", ty.name()));
            gguf::write(&hp, spec, &path, ty)?;
            Ok(path)
        }
    }
}

fn check_dims(d: &Dims) -> Result<()> {
    let ok = d.heads > 0
        && d.kv_heads > 0
        && d.heads.is_multiple_of(d.kv_heads)
        && d.hidden.is_multiple_of(d.heads)
        && d.head_dim().is_multiple_of(2)
        && d.layers > 0
        && d.intermediate > 0
        && d.context > 0;
    if ok {
        Ok(())
    } else {
        Err(Error::Request(format!("inconsistent dimensions {d:?}")))
    }
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::invalid(path, e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_symbols_are_a_bijection() {
        let s = byte_symbols();
        let set: std::collections::HashSet<char> = s.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(s[b'a' as usize], 'a');
        assert_eq!(s[b' ' as usize], 'Ġ');
    }

    #[test]
    fn tiny_vocabulary_is_300_and_deterministic() {
        let (a, n) = tokenizer_json(Dims::tiny().merges);
        let (b, _) = tokenizer_json(Dims::tiny().merges);
        assert_eq!(n, 300);
        assert_eq!(a, b);
    }

    #[test]
    fn weights_depend_on_seed_only() {
        let hp = ModelSpec::tiny_llama(1).hyper(300);
        let (role, shape) = hp.tensors()[3].clone();
        let a = weights::weight(&hp, 1, role, &shape);
        let b = weights::weight(&hp, 1, role, &shape);
        let c = weights::weight(&hp, 2, role, &shape);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn presets_are_consistent() {
        for name in PRESETS {
            let d = Dims::preset(name).unwrap();
            check_dims(&d).unwrap();
        }
        assert!(Dims::preset("gpt-5").is_none());
    }
}
