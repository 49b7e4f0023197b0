//! A loaded model and generation (greedy or sampled, optionally streamed).
//!
//! Scheduling: each call runs its generation loop (sampling, stop checks,
//! streaming callbacks) on the calling thread with its own KV cache, and its
//! forward passes on rayon's global thread pool, whose threads share each
//! matrix product. Concurrent calls on one `Engine` run concurrently (their
//! passes interleave on the pool) and share only the read-only weights.
//! There is no batching.

use std::ops::ControlFlow;
use std::path::Path;

use candle_core::Device;
use serde::Serialize;
use tokenizers::Tokenizer;

use crate::arch::Arch;
use crate::chat::{config_template, config_token, ChatTemplate, TemplateSource};
use crate::decode::{check_prompt, Limits, Step};
use crate::digest::{DigestCache, ModelDigest};
use crate::error::{no_panic, Error, Result};
use crate::info::ModelInfo;
use crate::model::{load_gguf, load_safetensors, Loaded, ModelSource};
use crate::transformer::{KvCache, Transformer};

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// CPU by default; a CUDA device needs the `cuda` feature.
    pub device: Device,
    /// Where the digest cache lives (see [`crate::digest`]).
    pub digest_cache: DigestCache,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: Device::Cpu,
            digest_cache: DigestCache::BesideModel,
        }
    }
}

/// What to generate. The default is greedy, 64 tokens, stopping at EOS.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    /// At most this many new tokens (fewer if the context ends first).
    pub max_new_tokens: usize,
    /// Stop at (and do not return) an end-of-sequence token (see
    /// [`Engine::eos_tokens`]).
    pub stop_at_eos: bool,
    /// 0 is greedy (`top_p`, `top_k` and `seed` are then unused); else the
    /// softmax temperature. Finite, not negative.
    pub temperature: f64,
    /// Nucleus sampling: keep the most likely tokens up to this probability
    /// mass. In (0, 1]; 1 keeps all.
    pub top_p: f64,
    /// Keep only the `k` most likely tokens (applied before `top_p`); at
    /// least 1 when set.
    pub top_k: Option<usize>,
    /// Seed of the sampler: the same seed, prompt and parameters give the
    /// same tokens.
    pub seed: u64,
    /// Divides positive logits (multiplies negative ones) of tokens seen in
    /// the last `repetition_window` tokens (prompt included); 1 is off.
    /// Finite and positive.
    pub repetition_penalty: f32,
    /// How many recent tokens `repetition_penalty` looks at.
    pub repetition_window: usize,
    /// Stop sequences: generation ends when the text contains one; the text
    /// returned ends before it (the tokens include those that produced it).
    /// Each non-empty.
    pub stop: Vec<String>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_new_tokens: 64,
            stop_at_eos: true,
            temperature: 0.0,
            top_p: 1.0,
            top_k: None,
            seed: 0,
            repetition_penalty: 1.0,
            repetition_window: 64,
            stop: Vec::new(),
        }
    }
}

impl GenerateParams {
    /// [`Error::Request`] for a value out of its documented range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Request(m));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!(
                "temperature must be finite and not negative, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if self.top_k == Some(0) {
            return bad("top_k must be at least 1".into());
        }
        if !self.repetition_penalty.is_finite() || self.repetition_penalty <= 0.0 {
            return bad(format!(
                "repetition_penalty must be finite and positive, got {}",
                self.repetition_penalty
            ));
        }
        if self.stop.iter().any(String::is_empty) {
            return bad("stop sequences must not be empty".into());
        }
        Ok(())
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-sequence token.
    Eos,
    /// `max_new_tokens` were produced.
    MaxTokens,
    /// The model's context is full.
    Context,
    /// The text reached one of the stop sequences.
    Stop,
    /// The streaming callback asked to stop.
    Cancelled,
}

/// Wall-clock timings of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timings {
    /// The forward pass over the whole prompt (it yields the first token).
    pub prompt_ms: f64,
    /// The one-token forward passes after it.
    pub decode_ms: f64,
    /// Those passes per second (0 when there were none).
    pub decode_tokens_per_s: f64,
    /// Prompt tokens per second of prompt processing.
    pub prompt_tokens_per_s: f64,
}

/// What the model did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    pub prompt_tokens: Vec<u32>,
    /// New tokens, without the EOS that stopped generation.
    pub tokens: Vec<u32>,
    /// `tokens` decoded (special tokens skipped), up to a stop sequence;
    /// exactly the concatenation of the streamed chunks.
    pub text: String,
    pub stop: StopReason,
    pub timings: Timings,
}

/// A loaded model: its identity, tokenizer and weights.
///
/// `generate` takes `&self` and every call starts from an empty KV cache
/// (see [`crate::model`]'s `Weights`), so one `Engine` can serve several
/// threads; requests do not share state.
pub struct Engine {
    source: ModelSource,
    digest: ModelDigest,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    /// `loaded.eos` plus the template's end-of-turn tokens.
    eos: Vec<u32>,
    loaded: Loaded,
}

/// End-of-turn tokens of common chat templates: they end generation when the
/// model's template uses them and its vocabulary has them.
const END_OF_TURN: [&str; 5] = [
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
];

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("source", &self.source)
            .field("digest", &self.digest.digest)
            .field("arch", &self.loaded.info.arch.name())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads a `.gguf` file (tokenizer: `tokenizer.json` beside it, else its
    /// embedded one) or a safetensors directory.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::load_source(ModelSource::open(path)?, opts)
    }

    /// Loads from an explicit source.
    pub fn load_source(source: ModelSource, opts: &LoadOptions) -> Result<Self> {
        let loaded = match &source {
            ModelSource::Gguf { file, .. } => load_gguf(file, &opts.device)?,
            ModelSource::Safetensors { config, shards, .. } => {
                load_safetensors(config, shards, &opts.device)?
            }
        };
        let tok_path = source.tokenizer_path();
        let text = crate::tokenizer::load(&source)?;
        let tokenizer = text.tokenizer;
        // The highest id + 1 (ids need not be dense), added tokens included.
        let n = tokenizer
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&m| m as usize + 1);
        if n > loaded.info.vocab_size {
            return Err(Error::VocabMismatch {
                path: tok_path.to_path_buf(),
                tokenizer: n,
                model: loaded.info.vocab_size,
            });
        }
        if let Some(bad) = loaded
            .eos
            .iter()
            .chain(loaded.bos.iter())
            .find(|&&t| t as usize >= loaded.info.vocab_size)
        {
            return Err(Error::Invalid {
                path: source.behaviour_files()[0].clone(),
                reason: format!("BOS/EOS id {bad} is outside the vocabulary"),
            });
        }
        let template = load_template(&source, text.gguf_template, &tokenizer, &loaded)?;
        let mut eos = loaded.eos.clone();
        for t in END_OF_TURN {
            if let Some(id) = tokenizer.token_to_id(t) {
                if template.text().contains(t)
                    && (id as usize) < loaded.info.vocab_size
                    && !eos.contains(&id)
                {
                    eos.push(id);
                }
            }
        }
        let digest = source.digest(&opts.digest_cache)?;
        Ok(Engine {
            source,
            digest,
            tokenizer,
            template,
            eos,
            loaded,
        })
    }

    /// The model's chat template (see [`crate::chat`]; never absent: a model
    /// without one gets the ChatML fallback, [`ChatTemplate::source`] says so).
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Tokens that end generation: the model's EOS, plus the end-of-turn
    /// tokens (`<|im_end|>`, `<|eot_id|>` …) its chat template uses.
    pub fn eos_tokens(&self) -> &[u32] {
        &self.eos
    }

    /// The model's identity (`blake3:…` over its behaviour files).
    pub fn digest(&self) -> &ModelDigest {
        &self.digest
    }

    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// What the model declares about itself: size, quantisation, context,
    /// license and provenance keys.
    pub fn info(&self) -> &ModelInfo {
        &self.loaded.info
    }

    /// The model's architecture.
    pub fn arch(&self) -> Arch {
        self.loaded.info.arch
    }

    /// The model's vocabulary (rows of the embedding).
    pub fn vocab_size(&self) -> usize {
        self.loaded.info.vocab_size
    }

    /// The longest sequence (prompt + new tokens) the model accepts.
    pub fn context_len(&self) -> usize {
        self.loaded.info.context_length
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Token ids of `text` (with the tokenizer's own special tokens, if its
    /// post-processor adds any).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::Tokenizer {
                path: self.source.tokenizer_path().to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `tokens`, special tokens skipped.
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(tokens, true)
            .map_err(|e| Error::Tokenizer {
                path: self.source.tokenizer_path().to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// Generation from a text prompt.
    pub fn generate(&self, prompt: &str, params: &GenerateParams) -> Result<Generation> {
        let tokens = self.encode(prompt)?;
        self.generate_tokens(&tokens, params)
    }

    /// Generation from prompt tokens.
    pub fn generate_tokens(&self, prompt: &[u32], params: &GenerateParams) -> Result<Generation> {
        self.generate_stream(prompt, params, |_| ControlFlow::Continue(()))
    }

    /// Generation from prompt tokens, handing text to `on_text` as it is
    /// produced: chunks are whole characters, never the start of a stop
    /// sequence, and concatenate to [`Generation::text`]. When `on_text`
    /// returns `Break`, generation ends with [`StopReason::Cancelled`].
    pub fn generate_stream(
        &self,
        prompt: &[u32],
        params: &GenerateParams,
        on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        params.validate()?;
        check_prompt(
            prompt,
            self.loaded.info.context_length,
            self.loaded.info.vocab_size,
        )?;
        let mut state = self.state()?;
        let limits = Limits {
            eos: &self.eos,
            context: self.loaded.info.context_length,
            vocab: self.loaded.info.vocab_size,
        };
        let out = crate::decode::run(
            &mut state,
            prompt,
            params,
            &limits,
            |t| self.decode(t),
            on_text,
        )?;
        Ok(Generation {
            prompt_tokens: prompt.to_vec(),
            tokens: out.tokens,
            text: out.text,
            stop: out.stop,
            timings: out.timings,
        })
    }

    /// The logits for the token after `prompt` (a fresh state; for tests
    /// and diagnostics).
    pub fn next_logits(&self, prompt: &[u32]) -> Result<Vec<f32>> {
        check_prompt(
            prompt,
            self.loaded.info.context_length,
            self.loaded.info.vocab_size,
        )?;
        self.state()?.forward(prompt, 0)
    }

    /// Teacher forcing: the logits predicting each token of `continuation`
    /// after `prompt` (one prompt pass, then one step per token; for tests
    /// and comparisons with other implementations).
    pub fn forced_logits(&self, prompt: &[u32], continuation: &[u32]) -> Result<Vec<Vec<f32>>> {
        let mut all = prompt.to_vec();
        all.extend_from_slice(continuation);
        check_prompt(
            &all,
            self.loaded.info.context_length,
            self.loaded.info.vocab_size,
        )?;
        let mut state = self.state()?;
        let mut out = Vec::with_capacity(continuation.len());
        out.push(state.forward(prompt, 0)?);
        for (i, &t) in continuation
            .iter()
            .enumerate()
            .take(continuation.len().saturating_sub(1))
        {
            out.push(state.forward(&[t], prompt.len() + i)?);
        }
        out.truncate(continuation.len());
        Ok(out)
    }

    fn state(&self) -> Result<State<'_>> {
        Ok(State {
            model: &self.loaded.weights,
            cache: self.loaded.weights.new_cache(),
        })
    }
}

/// One request's model state: the shared weights and its own KV cache.
struct State<'a> {
    model: &'a Transformer,
    cache: KvCache,
}

/// Prompt tokens per forward pass. Attention scores of one pass take
/// `heads × tokens × (position + tokens)` floats, so a long prompt runs in
/// pieces: a 32k-token prompt in one pass would need tens of gigabytes.
const PREFILL_CHUNK: usize = 256;

impl Step for State<'_> {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        // On a worker of the thread pool, so the products inside fork their
        // bands to the other workers directly instead of handing each one
        // from this thread to the pool and sleeping until it is done.
        no_panic("forward pass", || {
            rayon::scope(|_| {
                let mut logits = None;
                for (i, chunk) in tokens.chunks(PREFILL_CHUNK).enumerate() {
                    logits = Some(
                        self.model
                            .forward(chunk, pos + i * PREFILL_CHUNK, &mut self.cache)
                            .map_err(|e| Error::candle("forward pass", e))?,
                    );
                }
                logits.ok_or_else(|| Error::Request("empty prompt".into()))
            })
        })
    }
}

/// The chat template: GGUF metadata, else tokenizer_config.json, else
/// the fallback; `bos_token`/`eos_token` from tokenizer_config.json, else
/// the model's ids.
fn load_template(
    source: &ModelSource,
    gguf: Option<String>,
    tokenizer: &Tokenizer,
    loaded: &Loaded,
) -> Result<ChatTemplate> {
    let cfg_path = source.dir().join("tokenizer_config.json");
    let cfg = if cfg_path.is_file() {
        let bytes = std::fs::read(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(&cfg_path, format!("not JSON: {e}")))?
    } else {
        serde_json::Value::Null
    };
    let name = |id: Option<u32>| id.and_then(|i| tokenizer.id_to_token(i));
    let bos = config_token(&cfg, "bos_token")
        .or_else(|| name(loaded.bos))
        .unwrap_or_default();
    let eos = config_token(&cfg, "eos_token")
        .or_else(|| name(loaded.eos.first().copied()))
        .unwrap_or_default();
    if let Some(text) = gguf {
        let path = source.behaviour_files()[0].clone();
        return ChatTemplate::new(&text, TemplateSource::Gguf, Some(&path), &bos, &eos);
    }
    if let Some(text) = config_template(&cfg_path, &cfg)? {
        return ChatTemplate::new(
            &text,
            TemplateSource::TokenizerConfig,
            Some(&cfg_path),
            &bos,
            &eos,
        );
    }
    Ok(ChatTemplate::fallback(&bos, &eos))
}
