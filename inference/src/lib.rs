//! # cairn-inference
//!
//! Runs open-weight models with [candle](https://github.com/huggingface/candle)
//! and reports what a model **is** (a digest of its files) and what it
//! **did** (tokens, text, timings). It knows nothing of auditing: the daemon
//! records what this crate reports.
//!
//! ## What works
//!
//! - **Identity** ([`digest`]): `blake3:<hex>` over a canonical listing of
//!   every behaviour-determining file (weights, `tokenizer.json`,
//!   `config.json`, `tokenizer_config.json` …), streamed, with a
//!   (path, size, mtime)-keyed JSON cache.
//! - **Loading** ([`Engine::load`]): Llama from a GGUF file
//!   (`quantized_llama`, any candle-supported quantization; tensors are read
//!   one at a time through a buffered reader) or from a Hugging Face
//!   safetensors directory (`llama`, single file or sharded with an index,
//!   memory-mapped). The tokenizer is a `tokenizer.json` (for GGUF: beside
//!   the file). Every malformed input gives an [`Error`] naming the file.
//! - **Greedy generation** ([`Engine::generate`]): up to N tokens, stopping
//!   at EOS or at the context's end, with prompt and decode timings. Each
//!   call runs on its own KV cache, so one `Engine` can serve concurrent
//!   requests.
//! - **Tiny models** ([`generate`]): seeded random-weight Llamas written as
//!   safetensors + `config.json` or GGUF (F32/F16/Q8_0/Q4_0) with the
//!   metadata llama.cpp expects, and a byte-level BPE `tokenizer.json`.
//!
//! ## Not yet
//!
//! Qwen2, chat templates, sampling (temperature, top-p), streaming output,
//! the tokenizer embedded in GGUF metadata (a `tokenizer.json` is needed),
//! batching.
//!
//! ## Example
//!
//! ```no_run
//! use cairn_inference::{Engine, GenerateParams, LoadOptions};
//! # fn main() -> Result<(), cairn_inference::Error> {
//! let engine = Engine::load("model.gguf".as_ref(), &LoadOptions::default())?;
//! let out = engine.generate("What is the capital of France?", &GenerateParams::default())?;
//! println!("{} ({}): {}", engine.digest().digest, out.timings.decode_tokens_per_s, out.text);
//! # Ok(()) }
//! ```
//!
//! With the `cuda` feature, pass a CUDA [`Device`] in [`LoadOptions`].

pub mod chat;
mod decode;
pub mod digest;
pub mod engine;
pub mod error;
pub mod generate;
pub mod model;
mod tokenizer;

pub use candle_core::Device;
pub use chat::{ChatTemplate, Message, TemplateSource};
pub use digest::{digest_files, DigestCache, ModelDigest};
pub use engine::{Engine, GenerateParams, Generation, LoadOptions, StopReason, Timings};
pub use error::{Error, Result};
pub use model::ModelSource;
