//! The decoding loop: sampling, stop conditions and streamed text.
//!
//! Text is streamed with the usual incremental-detokenization scheme: the
//! tokens since the last emitted chunk are decoded together with the chunk
//! before them, and only the new suffix is emitted, once it no longer ends
//! in U+FFFD (an incomplete UTF-8 character split across byte-level tokens).
//! Text that could be the start of a stop sequence is held back until it is
//! known not to be one. The emitted chunks concatenate to
//! [`Generation::text`](crate::Generation) exactly.

use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::utils::apply_repeat_penalty;

use crate::engine::{GenerateParams, StopReason, Timings};
use crate::error::{Error, Result};

/// Something that turns tokens at a position into next-token logits.
pub(crate) trait Step {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>>;
}

/// What the loop produced.
pub(crate) struct Outcome {
    pub tokens: Vec<u32>,
    pub text: String,
    pub stop: StopReason,
    pub timings: Timings,
}

/// The model's facts the loop needs.
pub(crate) struct Limits<'a> {
    /// Tokens that end generation (when `stop_at_eos`).
    pub eos: &'a [u32],
    pub context: usize,
    pub vocab: usize,
}

pub(crate) fn check_prompt(prompt: &[u32], context: usize, vocab: usize) -> Result<()> {
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

/// The index of the largest logit (the first on ties).
fn argmax(logits: &[f32]) -> Result<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in logits.iter().enumerate() {
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i as u32)
        .ok_or_else(|| Error::Request("empty logits".into()))
}

/// Picks the next token: repetition penalty, then greedy or seeded sampling.
struct Sampler {
    /// `None`: greedy.
    random: Option<LogitsProcessor>,
    penalty: f32,
    window: usize,
}

impl Sampler {
    fn new(p: &GenerateParams) -> Self {
        let random = (p.temperature > 0.0).then(|| {
            let temperature = p.temperature;
            let sampling = match (p.top_k, p.top_p < 1.0) {
                (Some(k), true) => Sampling::TopKThenTopP {
                    k,
                    p: p.top_p,
                    temperature,
                },
                (Some(k), false) => Sampling::TopK { k, temperature },
                (None, true) => Sampling::TopP {
                    p: p.top_p,
                    temperature,
                },
                (None, false) => Sampling::All { temperature },
            };
            LogitsProcessor::from_sampling(p.seed, sampling)
        });
        Sampler {
            random,
            penalty: p.repetition_penalty,
            window: p.repetition_window,
        }
    }

    /// `seen`: prompt and generated tokens so far.
    fn sample(&mut self, mut logits: Vec<f32>, seen: &[u32]) -> Result<u32> {
        if let Some(i) = logits.iter().position(|x| x.is_nan()) {
            return Err(Error::Request(format!("logit {i} is NaN")));
        }
        if logits.is_empty() {
            return Err(Error::Request("empty logits".into()));
        }
        let penalise = self.penalty != 1.0 && self.window > 0;
        if !penalise && self.random.is_none() {
            return argmax(&logits);
        }
        let n = logits.len();
        let mut t = Tensor::from_vec(std::mem::take(&mut logits), n, &Device::Cpu)
            .map_err(|e| Error::candle("logits", e))?;
        if penalise {
            let recent = &seen[seen.len().saturating_sub(self.window)..];
            t = apply_repeat_penalty(&t, self.penalty, recent)
                .map_err(|e| Error::candle("repetition penalty", e))?;
        }
        match &mut self.random {
            Some(lp) => lp.sample(&t).map_err(|e| Error::candle("sampling", e)),
            None => argmax(&t.to_vec1().map_err(|e| Error::candle("logits", e))?),
        }
    }
}

/// Incremental, UTF-8-safe detokenization with stop sequences.
struct TextStream<'a, D, F> {
    stops: &'a [String],
    detok: D,
    on_text: F,
    /// Tokens before `prefix_offset` are fully emitted (or pending); those in
    /// `prefix_offset..read_offset` are decoded as context for the next chunk.
    prefix_offset: usize,
    read_offset: usize,
    /// Decoded text not yet emitted (a possible stop-sequence start).
    pending: String,
    /// Everything emitted so far.
    text: String,
}

impl<'a, D, F> TextStream<'a, D, F>
where
    D: Fn(&[u32]) -> Result<String>,
    F: FnMut(&str) -> ControlFlow<()>,
{
    /// Takes in the token just appended to `tokens`; `Some` when a stop
    /// sequence was completed or the callback asked to stop.
    fn push(&mut self, tokens: &[u32]) -> Result<Option<StopReason>> {
        let prefix = (self.detok)(&tokens[self.prefix_offset..self.read_offset])?;
        let new = (self.detok)(&tokens[self.prefix_offset..])?;
        if new.len() > prefix.len() && !new.ends_with('\u{FFFD}') {
            if let Some(delta) = new.strip_prefix(prefix.as_str()) {
                self.pending.push_str(delta);
                self.prefix_offset = self.read_offset;
                self.read_offset = tokens.len();
            }
        }
        Ok(self.emit(false))
    }

    /// The end: emits whatever is left (an incomplete character included,
    /// as U+FFFD, as the full decode has it) unless a stop sequence ends it.
    fn finish(&mut self, tokens: &[u32]) -> Result<Option<StopReason>> {
        let full = (self.detok)(tokens)?;
        if let Some(rest) = full.strip_prefix(self.text.as_str()) {
            self.pending = rest.to_string();
        } else {
            let prefix = (self.detok)(&tokens[self.prefix_offset..self.read_offset])?;
            let new = (self.detok)(&tokens[self.prefix_offset..])?;
            if let Some(delta) = new.strip_prefix(prefix.as_str()) {
                self.pending.push_str(delta);
            }
        }
        Ok(self.emit(true))
    }

    fn emit(&mut self, flush: bool) -> Option<StopReason> {
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = hit {
            self.pending.truncate(at);
            let chunk = std::mem::take(&mut self.pending);
            if !chunk.is_empty() {
                // Stopping anyway: a request to stop changes nothing.
                let _ = (self.on_text)(&chunk);
                self.text.push_str(&chunk);
            }
            return Some(StopReason::Stop);
        }
        let keep = if flush {
            0
        } else {
            held_back(&self.pending, self.stops)
        };
        let cut = self.pending.len() - keep;
        if cut == 0 {
            return None;
        }
        let chunk: String = self.pending.drain(..cut).collect();
        self.text.push_str(&chunk);
        (self.on_text)(&chunk)
            .is_break()
            .then_some(StopReason::Cancelled)
    }
}

/// The length of the longest suffix of `text` that is a proper prefix of a
/// stop sequence.
fn held_back(text: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .flat_map(|s| {
            (1..s.len())
                .filter(|&k| s.is_char_boundary(k) && text.ends_with(&s[..k]))
                .max()
        })
        .max()
        .unwrap_or(0)
}

/// One forward pass over the prompt, then one per new token, until EOS, a
/// stop sequence, `max_new_tokens`, the context's end, or the callback says
/// stop. `detok` decodes tokens (special tokens skipped).
pub(crate) fn run(
    step: &mut impl Step,
    prompt: &[u32],
    params: &GenerateParams,
    limits: &Limits<'_>,
    detok: impl Fn(&[u32]) -> Result<String>,
    on_text: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<Outcome> {
    params.validate()?;
    check_prompt(prompt, limits.context, limits.vocab)?;
    let eos: &[u32] = if params.stop_at_eos { limits.eos } else { &[] };
    let mut sampler = Sampler::new(params);
    let mut stream = TextStream {
        stops: &params.stop,
        detok,
        on_text,
        prefix_offset: 0,
        read_offset: 0,
        pending: String::new(),
        text: String::new(),
    };
    let mut seen = prompt.to_vec();
    let mut stop = StopReason::MaxTokens;
    let t0 = Instant::now();
    let mut prompt_ms = 0.0;
    let mut decode_steps = 0usize;
    let mut t_decode = t0;
    let mut ended = None;
    if params.max_new_tokens > 0 {
        let logits = step.forward(prompt, 0)?;
        let mut next = sampler.sample(logits, &seen)?;
        prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
        t_decode = Instant::now();
        loop {
            if eos.contains(&next) {
                stop = StopReason::Eos;
                break;
            }
            seen.push(next);
            let out = &seen[prompt.len()..];
            ended = stream.push(out)?;
            if ended.is_some() || out.len() >= params.max_new_tokens {
                break;
            }
            let pos = seen.len() - 1;
            if pos + 1 >= limits.context {
                stop = StopReason::Context;
                break;
            }
            let logits = step.forward(&[next], pos)?;
            decode_steps += 1;
            next = sampler.sample(logits, &seen)?;
        }
    }
    let tokens = seen.split_off(prompt.len());
    let stop = match ended {
        Some(reason) => reason,
        // A stop sequence completed by the final flush still counts; a
        // request to stop then changes nothing (everything was emitted).
        None => match stream.finish(&tokens)? {
            Some(StopReason::Stop) => StopReason::Stop,
            _ => stop,
        },
    };
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
    Ok(Outcome {
        tokens,
        text: stream.text,
        stop,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{byte_symbols, tokenizer_json};
    use std::str::FromStr;
    use tokenizers::Tokenizer;

    const VOCAB: usize = 3 + 256 + 20;

    /// Predicts `script[pos + len]` (the token at the next position).
    struct Scripted {
        script: Vec<u32>,
        calls: Vec<(Vec<u32>, usize)>,
    }

    impl Step for Scripted {
        fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
            self.calls.push((tokens.to_vec(), pos));
            let next = self.script[pos + tokens.len()] as usize;
            let mut l = vec![0.0; VOCAB];
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

    /// The generated byte-level BPE (a real tokenizer, not a stand-in).
    fn tokenizer() -> Tokenizer {
        Tokenizer::from_str(&tokenizer_json(20).0.to_string()).unwrap()
    }

    /// One byte-level token per byte of `s`.
    fn byte_tokens(tok: &Tokenizer, s: &[u8]) -> Vec<u32> {
        let sym = byte_symbols();
        s.iter()
            .map(|&b| tok.token_to_id(&sym[b as usize].to_string()).unwrap())
            .collect()
    }

    fn params(max: usize) -> GenerateParams {
        GenerateParams {
            max_new_tokens: max,
            ..GenerateParams::default()
        }
    }

    /// Runs with the real tokenizer; returns the outcome and the chunks.
    fn go(
        step: &mut impl Step,
        prompt: &[u32],
        p: &GenerateParams,
        eos: &[u32],
        context: usize,
        mut cancel_after: Option<usize>,
    ) -> Result<(Outcome, Vec<String>)> {
        let tok = tokenizer();
        let mut chunks = Vec::new();
        let limits = Limits {
            eos,
            context,
            vocab: VOCAB,
        };
        let out = run(
            step,
            prompt,
            p,
            &limits,
            |t| Ok(tok.decode(t, true).unwrap()),
            |c| {
                chunks.push(c.to_string());
                match cancel_after.as_mut() {
                    Some(0) => ControlFlow::Break(()),
                    Some(n) => {
                        *n -= 1;
                        ControlFlow::Continue(())
                    }
                    None => ControlFlow::Continue(()),
                }
            },
        )?;
        Ok((out, chunks))
    }

    #[test]
    fn stops_at_eos_without_returning_it() {
        let mut s = scripted(&[5, 6, 7, 8, 2, 9, 9]);
        let (o, _) = go(&mut s, &[5, 6], &params(10), &[2], 100, None).unwrap();
        assert_eq!(o.tokens, vec![7, 8]);
        assert_eq!(o.stop, StopReason::Eos);
        // prompt at 0, then one token at a time at its position
        assert_eq!(s.calls, vec![(vec![5, 6], 0), (vec![7], 2), (vec![8], 3)]);
        // Without stop_at_eos the EOS is an ordinary token.
        let mut s = scripted(&[5, 6, 7, 8, 2, 9, 9]);
        let p = GenerateParams {
            stop_at_eos: false,
            ..params(4)
        };
        let (o, _) = go(&mut s, &[5, 6], &p, &[2], 100, None).unwrap();
        assert_eq!(
            (o.tokens, o.stop),
            (vec![7, 8, 2, 9], StopReason::MaxTokens)
        );
    }

    #[test]
    fn stops_at_max_tokens_and_context() {
        let mut s = scripted(&[1, 3, 4, 5, 6, 7, 8]);
        let (o, _) = go(&mut s, &[1], &params(3), &[2], 100, None).unwrap();
        assert_eq!((o.tokens, o.stop), (vec![3, 4, 5], StopReason::MaxTokens));
        let mut s = scripted(&[1, 3, 4, 5, 6, 7, 8]);
        let (o, _) = go(&mut s, &[1], &params(10), &[], 4, None).unwrap();
        assert_eq!((o.tokens.len(), o.stop), (3, StopReason::Context));
        let mut s = scripted(&[1, 3]);
        let (o, _) = go(&mut s, &[1], &params(0), &[], 4, None).unwrap();
        assert!(o.tokens.is_empty() && s.calls.is_empty());
    }

    #[test]
    fn bad_prompts_and_parameters_are_request_errors() {
        let mut s = scripted(&[1, 2, 3]);
        let p = params(3);
        assert!(go(&mut s, &[], &p, &[], 10, None).is_err());
        assert!(go(&mut s, &[1; 10], &p, &[], 10, None).is_err());
        assert!(go(&mut s, &[VOCAB as u32], &p, &[], 10, None).is_err());
        let bad = [
            GenerateParams {
                temperature: -0.5,
                ..params(3)
            },
            GenerateParams {
                temperature: f64::NAN,
                ..params(3)
            },
            GenerateParams {
                top_p: 0.0,
                ..params(3)
            },
            GenerateParams {
                top_p: 1.5,
                ..params(3)
            },
            GenerateParams {
                top_p: f64::NAN,
                ..params(3)
            },
            GenerateParams {
                top_k: Some(0),
                ..params(3)
            },
            GenerateParams {
                repetition_penalty: 0.0,
                ..params(3)
            },
            GenerateParams {
                repetition_penalty: f32::INFINITY,
                ..params(3)
            },
            GenerateParams {
                stop: vec![String::new()],
                ..params(3)
            },
        ];
        for p in bad {
            let e = go(&mut s, &[1], &p, &[], 10, None).err();
            assert!(matches!(e, Some(Error::Request(_))), "{p:?}: {e:?}");
        }
        assert!(
            s.calls.is_empty(),
            "validation comes before any forward pass"
        );
    }

    #[test]
    fn greedy_takes_first_maximum_and_rejects_nan() {
        let mut g = Sampler::new(&params(1));
        assert_eq!(g.sample(vec![0.0, 3.0, 3.0, 1.0], &[]).unwrap(), 1);
        assert!(g.sample(vec![0.0, f32::NAN], &[]).is_err());
        assert!(g.sample(vec![], &[]).is_err());
        // A repetition penalty turns the choice away from seen tokens.
        let mut r = Sampler::new(&GenerateParams {
            repetition_penalty: 2.0,
            ..params(1)
        });
        assert_eq!(r.sample(vec![0.0, 3.0, 2.0], &[1]).unwrap(), 2);
        assert_eq!(r.sample(vec![0.0, 3.0, 2.0], &[]).unwrap(), 1);
    }

    /// Logits that depend on the position only: a flat-ish distribution.
    struct Wavy;

    impl Step for Wavy {
        fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
            let p = (pos + tokens.len()) as f32;
            Ok((0..VOCAB)
                .map(|i| (i as f32 * 0.37 + p).sin() * 2.0)
                .collect())
        }
    }

    #[test]
    fn sampling_is_deterministic_per_seed_and_top_k_1_is_greedy() {
        let sampled = |seed: u64, top_k: Option<usize>, top_p: f64| {
            let p = GenerateParams {
                temperature: 0.9,
                top_k,
                top_p,
                seed,
                ..params(24)
            };
            go(&mut Wavy, &[1, 2], &p, &[], 100, None).unwrap().0.tokens
        };
        let a = sampled(7, None, 1.0);
        assert_eq!(a, sampled(7, None, 1.0));
        assert_ne!(a, sampled(8, None, 1.0));
        assert_eq!(sampled(3, Some(40), 0.9), sampled(3, Some(40), 0.9));
        assert_eq!(sampled(3, None, 0.5), sampled(3, None, 0.5));
        let greedy = go(&mut Wavy, &[1, 2], &params(24), &[], 100, None)
            .unwrap()
            .0
            .tokens;
        assert_eq!(sampled(5, Some(1), 1.0), greedy);
        assert_ne!(a, greedy);
    }

    #[test]
    fn streamed_chunks_are_whole_characters_and_concatenate_to_the_text() {
        let tok = tokenizer();
        let text = "héllo wörld ✓ 😀 naïve";
        let mut script = vec![1];
        script.extend(byte_tokens(&tok, text.as_bytes()));
        let mut s = scripted(&script);
        let (o, chunks) = go(&mut s, &[1], &params(text.len()), &[], 1000, None).unwrap();
        assert_eq!(o.stop, StopReason::MaxTokens);
        assert_eq!(o.text, text);
        assert_eq!(chunks.concat(), text);
        assert!(chunks
            .iter()
            .all(|c| !c.is_empty() && !c.contains('\u{FFFD}')));
        assert!(chunks.len() > 10, "streamed, not at the end: {chunks:?}");
        // A character cut off by max_new_tokens ends the text as U+FFFD,
        // as the full decode has it, and only then.
        let mut s = scripted(&script);
        let cut = "héllo wörld ✓ 😀".len() - 1;
        let (o, chunks) = go(&mut s, &[1], &params(cut), &[], 1000, None).unwrap();
        assert_eq!(o.text, tok.decode(&o.tokens, true).unwrap());
        assert!(o.text.ends_with('\u{FFFD}'));
        assert_eq!(chunks.concat(), o.text);
        assert_eq!(chunks.iter().filter(|c| c.contains('\u{FFFD}')).count(), 1);
    }

    #[test]
    fn stop_sequences_end_the_text_and_are_held_back_until_known() {
        let tok = tokenizer();
        let run_with = |text: &str, stop: &[&str], cancel: Option<usize>| {
            let mut script = vec![1];
            script.extend(byte_tokens(&tok, text.as_bytes()));
            let p = GenerateParams {
                stop: stop.iter().map(|s| s.to_string()).collect(),
                ..params(text.len())
            };
            go(&mut scripted(&script), &[1], &p, &[], 1000, cancel).unwrap()
        };
        let (o, chunks) = run_with("abc END€ def END", &["END€", "zz"], None);
        assert_eq!((o.text.as_str(), o.stop), ("abc ", StopReason::Stop));
        assert_eq!(chunks.concat(), "abc ");
        assert_eq!(o.tokens.len(), "abc END€".len(), "tokens up to the stop");
        // Partial matches are emitted once they turn out not to be stops.
        let (o, chunks) = run_with("a EN b E", &["END"], None);
        assert_eq!(
            (o.text.as_str(), o.stop),
            ("a EN b E", StopReason::MaxTokens)
        );
        assert_eq!(chunks.concat(), o.text);
        assert!(!chunks.iter().any(|c| c.ends_with("EN")), "{chunks:?}");
        // The earliest of several stops wins.
        let (o, _) = run_with("one two three", &["three", "two"], None);
        assert_eq!(o.text, "one ");
        // Cancelling: the text is what was emitted.
        let (o, chunks) = run_with("abcdefgh", &[], Some(2));
        assert_eq!(o.stop, StopReason::Cancelled);
        assert_eq!(chunks.len(), 3);
        assert_eq!(o.text, "abc");
        assert_eq!(o.tokens.len(), 3);
    }
}
