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
//! - **Loading** ([`Engine::load`]): Llama and Qwen2 ([`arch`]) from a GGUF
//!   file (any candle-supported quantization; tensors are read one at a
//!   time through a buffered reader) or from a Hugging Face safetensors
//!   directory (single file or sharded with an index, memory-mapped,
//!   converted to F32). One forward pass serves both formats and both
//!   architectures (`transformer`); every weight product goes through one
//!   linear layer (`qlinear`). The tokenizer is a `tokenizer.json`; a GGUF file
//!   without one beside it uses the byte-level BPE tokenizer embedded in its
//!   metadata (`tokenizer.ggml.model = "gpt2"`; the GGUF's digest covers
//!   it). Every malformed input gives an [`Error`] naming the file.
//! - **Chat templates** ([`chat`], [`Engine::chat_template`]): the model's
//!   Jinja template (GGUF `tokenizer.chat_template`, else
//!   `tokenizer_config.json`, else a ChatML fallback; [`ChatTemplate::source`]
//!   says which) rendered with minijinja, Python string methods,
//!   `raise_exception`, `bos_token`/`eos_token`, and a fuel bound.
//! - **Generation** ([`Engine::generate`], [`Engine::generate_tokens`],
//!   [`Engine::generate_stream`]): greedy (temperature 0) or seeded sampling
//!   (temperature, top-k, top-p, repetition penalty, via candle's
//!   `LogitsProcessor`); stops at EOS (the model's and its template's
//!   end-of-turn tokens such as `<|im_end|>`), at stop sequences (excluded
//!   from the text), at `max_new_tokens` or the context's end; streaming
//!   emits whole characters only, holds back a possible stop-sequence start,
//!   and can be cancelled by the callback. Same seed, same tokens.
//! - **Scheduling**: each call runs on the calling thread with its own KV
//!   cache; one `Engine` (shared through an `Arc`) serves concurrent
//!   requests, which share only the read-only weights. No batching.
//! - **Generated models** ([`generate`]): seeded random-weight Llama and
//!   Qwen2 models, tiny or with a real model's dimensions, written as
//!   safetensors + `config.json` or GGUF (F32/F16/Q8_0/Q4_0/Q4_1/Q4_K_M)
//!   with the metadata llama.cpp expects, and a byte-level BPE
//!   `tokenizer.json`.
//!
//! ## Not yet
//!
//! Batching, sliding-window attention, embedded GGUF tokenizers other than byte-level BPE
//! (SentencePiece `llama` tokenizers need a `tokenizer.json`), tool calls in
//! chat templates (`tools` is undefined), `strftime_now` in templates.
//!
//! ## Example
//!
//! ```no_run
//! use cairn_inference::{Engine, GenerateParams, LoadOptions, Message};
//! # fn main() -> Result<(), cairn_inference::Error> {
//! let engine = Engine::load("model.gguf".as_ref(), &LoadOptions::default())?;
//! let prompt = engine.chat_template().render(
//!     &[Message::new("user", "What is the capital of France?")],
//!     true,
//! )?;
//! let out = engine.generate(&prompt, &GenerateParams::default())?;
//! println!("{} ({}): {}", engine.digest().digest, out.timings.decode_tokens_per_s, out.text);
//! # Ok(()) }
//! ```
//!
//! With the `cuda` feature, pass a CUDA [`Device`] in [`LoadOptions`].

pub mod arch;
pub mod chat;
mod decode;
pub mod digest;
pub mod engine;
pub mod error;
pub mod generate;
pub mod info;
pub mod kernels;
pub mod model;
mod qlinear;
mod tokenizer;
mod transformer;

pub use arch::Arch;
pub use candle_core::Device;
pub use chat::{ChatTemplate, Message, TemplateSource};
pub use digest::{digest_files, DigestCache, ModelDigest};
pub use engine::{Engine, GenerateParams, Generation, LoadOptions, StopReason, Timings};
pub use error::{Error, Result};
pub use info::ModelInfo;
pub use model::ModelSource;
