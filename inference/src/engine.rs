//! A loaded model and greedy generation.

use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_transformers::models::llama;
use serde::Serialize;
use tokenizers::Tokenizer;

use crate::digest::{DigestCache, ModelDigest};
use crate::error::{no_panic, Error, Result};
use crate::model::{load_gguf, load_safetensors, Loaded, ModelSource, Weights};

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

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateParams {
    /// At most this many new tokens (fewer if the context ends first).
    pub max_new_tokens: usize,
    /// Stop at (and do not return) an end-of-sequence token.
    pub stop_at_eos: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_new_tokens: 64,
            stop_at_eos: true,
        }
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
    /// `tokens` decoded (special tokens skipped).
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
    loaded: Loaded,
    device: Device,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("source", &self.source)
            .field("digest", &self.digest.digest)
            .field("arch", &self.loaded.arch)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads a `.gguf` file (with `tokenizer.json` beside it) or a
    /// safetensors directory.
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
        let tokenizer = Tokenizer::from_file(tok_path).map_err(|e| Error::Tokenizer {
            path: tok_path.to_path_buf(),
            reason: e.to_string(),
        })?;
        // The highest id + 1 (ids need not be dense), added tokens included.
        let n = tokenizer
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&m| m as usize + 1);
        if n > loaded.vocab {
            return Err(Error::VocabMismatch {
                path: tok_path.to_path_buf(),
                tokenizer: n,
                model: loaded.vocab,
            });
        }
        if let Some(bad) = loaded
            .eos
            .iter()
            .chain(loaded.bos.iter())
            .find(|&&t| t as usize >= loaded.vocab)
        {
            return Err(Error::Invalid {
                path: source.behaviour_files()[0].clone(),
                reason: format!("BOS/EOS id {bad} is outside the vocabulary"),
            });
        }
        let digest = source.digest(&opts.digest_cache)?;
        Ok(Engine {
            source,
            digest,
            tokenizer,
            loaded,
            device: opts.device.clone(),
        })
    }

    /// The model's identity (`blake3:…` over its behaviour files).
    pub fn digest(&self) -> &ModelDigest {
        &self.digest
    }

    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// `llama` (so far).
    pub fn arch(&self) -> &str {
        &self.loaded.arch
    }

    /// The model's vocabulary (rows of the embedding).
    pub fn vocab_size(&self) -> usize {
        self.loaded.vocab
    }

    /// The longest sequence (prompt + new tokens) the model accepts.
    pub fn context_len(&self) -> usize {
        self.loaded.context
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

    /// Greedy generation from a text prompt.
    pub fn generate(&self, prompt: &str, params: &GenerateParams) -> Result<Generation> {
        let tokens = self.encode(prompt)?;
        self.generate_tokens(&tokens, params)
    }

    /// Greedy generation from prompt tokens.
    pub fn generate_tokens(&self, prompt: &[u32], params: &GenerateParams) -> Result<Generation> {
        let mut state = self.state()?;
        let eos: &[u32] = if params.stop_at_eos {
            &self.loaded.eos
        } else {
            &[]
        };
        let (tokens, stop, timings) = greedy(
            &mut state,
            prompt,
            params.max_new_tokens,
            eos,
            self.loaded.context,
            self.loaded.vocab,
        )?;
        let text = self.decode(&tokens)?;
        Ok(Generation {
            prompt_tokens: prompt.to_vec(),
            tokens,
            text,
            stop,
            timings,
        })
    }

    /// The logits for the token after `prompt` (a fresh state; for tests
    /// and diagnostics).
    pub fn next_logits(&self, prompt: &[u32]) -> Result<Vec<f32>> {
        check_prompt(prompt, self.loaded.context, self.loaded.vocab)?;
        self.state()?.forward(prompt, 0)
    }

    fn state(&self) -> Result<State<'_>> {
        Ok(match &self.loaded.weights {
            Weights::Gguf(w) => {
                let mut w = w.clone();
                w.clear_kv_cache();
                State::Gguf {
                    weights: w,
                    device: &self.device,
                }
            }
            Weights::Llama {
                model,
                config,
                dtype,
            } => State::Llama {
                model,
                cache: llama::Cache::new(true, *dtype, config, &self.device)
                    .map_err(|e| Error::candle("creating the KV cache", e))?,
                device: &self.device,
            },
        })
    }
}

/// One request's model state (its own KV cache).
enum State<'a> {
    Gguf {
        weights: candle_transformers::models::quantized_llama::ModelWeights,
        device: &'a Device,
    },
    Llama {
        model: &'a llama::Llama,
        cache: llama::Cache,
        device: &'a Device,
    },
}

/// Something that turns tokens at a position into next-token logits.
pub(crate) trait Step {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>>;
}

impl Step for State<'_> {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        no_panic("forward pass", || {
            let device = match self {
                State::Gguf { device, .. } | State::Llama { device, .. } => *device,
            };
            let input = Tensor::new(tokens, device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(|e| Error::candle("input", e))?;
            let logits = match self {
                State::Gguf { weights, .. } => weights.forward(&input, pos),
                State::Llama { model, cache, .. } => model.forward(&input, pos, cache),
            }
            .map_err(|e| Error::candle("forward pass", e))?;
            logits
                .flatten_all()
                .and_then(|l| l.to_dtype(candle_core::DType::F32))
                .and_then(|l| l.to_vec1::<f32>())
                .map_err(|e| Error::candle("logits", e))
        })
    }
}

fn check_prompt(prompt: &[u32], context: usize, vocab: usize) -> Result<()> {
    if prompt.is_empty() {
        return Err(Error::Request("empty prompt".into()));
    }
    if prompt.len() >= context {
        return Err(Error::Request(format!(
            "prompt of {} tokens does not fit the context of {context}",
            prompt.len()
        )));
    }
    if let Some(t) = prompt.iter().find(|&&t| t as usize >= vocab) {
        return Err(Error::Request(format!(
            "token {t} is outside the vocabulary of {vocab}"
        )));
    }
    Ok(())
}

/// The index of the largest logit (the first on ties); an error on NaN.
pub(crate) fn argmax(logits: &[f32]) -> Result<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in logits.iter().enumerate() {
        if x.is_nan() {
            return Err(Error::Request(format!("logit {i} is NaN")));
        }
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i as u32)
        .ok_or_else(|| Error::Request("empty logits".into()))
}

/// Greedy decoding: one forward over the prompt, then one per token.
pub(crate) fn greedy(
    step: &mut impl Step,
    prompt: &[u32],
    max_new: usize,
    eos: &[u32],
    context: usize,
    vocab: usize,
) -> Result<(Vec<u32>, StopReason, Timings)> {
    check_prompt(prompt, context, vocab)?;
    let mut out = Vec::new();
    let mut stop = StopReason::MaxTokens;
    let t0 = Instant::now();
    let mut prompt_ms = 0.0;
    let mut decode_steps = 0usize;
    let mut t_decode = t0;
    if max_new > 0 {
        let logits = step.forward(prompt, 0)?;
        let mut next = argmax(&logits)?;
        prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
        t_decode = Instant::now();
        loop {
            if eos.contains(&next) {
                stop = StopReason::Eos;
                break;
            }
            out.push(next);
            if out.len() >= max_new {
                break;
            }
            let pos = prompt.len() + out.len() - 1;
            if pos + 1 >= context {
                stop = StopReason::Context;
                break;
            }
            let logits = step.forward(&[next], pos)?;
            decode_steps += 1;
            next = argmax(&logits)?;
        }
    }
    let decode_s = if decode_steps > 0 {
        t_decode.elapsed().as_secs_f64()
    } else {
        0.0
    };
    let per_s = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let timings = Timings {
        prompt_ms,
        decode_ms: decode_s * 1e3,
        decode_tokens_per_s: per_s(decode_steps, decode_s),
        prompt_tokens_per_s: per_s(prompt.len(), prompt_ms / 1e3),
    };
    Ok((out, stop, timings))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Predicts `script[pos + len]` (the token at the next position).
    struct Scripted {
        script: Vec<u32>,
        calls: Vec<(Vec<u32>, usize)>,
    }

    impl Step for Scripted {
        fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
            self.calls.push((tokens.to_vec(), pos));
            let next = self.script[pos + tokens.len()] as usize;
            let mut l = vec![0.0; 10];
            l[next] = 1.0;
            Ok(l)
        }
    }

    fn scripted(script: &[u32]) -> Scripted {
        Scripted {
            script: script.to_vec(),
            calls: vec![],
        }
    }

    #[test]
    fn stops_at_eos_without_returning_it() {
        let mut s = scripted(&[5, 6, 7, 8, 2, 9, 9]);
        let (t, stop, _) = greedy(&mut s, &[5, 6], 10, &[2], 100, 10).unwrap();
        assert_eq!(t, vec![7, 8]);
        assert_eq!(stop, StopReason::Eos);
        // prompt at 0, then one token at a time at its position
        assert_eq!(s.calls, vec![(vec![5, 6], 0), (vec![7], 2), (vec![8], 3)]);
    }

    #[test]
    fn stops_at_max_tokens_and_context() {
        let mut s = scripted(&[1, 3, 4, 5, 6, 7, 8]);
        let (t, stop, _) = greedy(&mut s, &[1], 3, &[2], 100, 10).unwrap();
        assert_eq!((t, stop), (vec![3, 4, 5], StopReason::MaxTokens));
        let mut s = scripted(&[1, 3, 4, 5, 6, 7, 8]);
        let (t, stop, _) = greedy(&mut s, &[1], 10, &[], 4, 10).unwrap();
        assert_eq!((t.len(), stop), (3, StopReason::Context));
        let mut s = scripted(&[1, 3]);
        let (t, _, _) = greedy(&mut s, &[1], 0, &[], 4, 10).unwrap();
        assert!(t.is_empty() && s.calls.is_empty());
    }

    #[test]
    fn bad_prompts_are_errors() {
        let mut s = scripted(&[1, 2, 3]);
        assert!(greedy(&mut s, &[], 3, &[], 10, 10).is_err());
        assert!(greedy(&mut s, &[1; 10], 3, &[], 10, 10).is_err());
        assert!(greedy(&mut s, &[11], 3, &[], 10, 10).is_err());
    }

    #[test]
    fn argmax_takes_first_maximum_and_rejects_nan() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, 1.0]).unwrap(), 1);
        assert!(argmax(&[0.0, f32::NAN]).is_err());
        assert!(argmax(&[]).is_err());
    }
}
