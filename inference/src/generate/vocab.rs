//! The generated models' tokenizer: a byte-level BPE with three special
//! tokens (`<|endoftext|>`, `<s>`, `</s>`), the 256 byte symbols, then
//! merges learnt greedily from a fixed English text, so ordinary prompts
//! tokenize into a few multi-byte tokens.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::{write_json, BOS_ID, EOS_ID};
use crate::error::Result;

/// The special tokens, at ids 0, 1 (BOS) and 2 (EOS).
pub(super) const SPECIALS: [&str; 3] = ["<|endoftext|>", "<s>", "</s>"];

/// GPT-2's reversible map from bytes to printable characters.
pub fn byte_symbols() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in out.iter_mut().enumerate() {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let cp = if printable {
            b as u32
        } else {
            let c = next;
            next += 1;
            c
        };
        *slot = char::from_u32(cp).expect("code points below 512 are valid");
    }
    out
}

const CORPUS: &str = "What is the capital of France? The capital of France is Paris. \
Paris is a city on the river Seine. The weather in Paris is mild in the spring. \
Hello, world! This is a tiny model that writes tiny sentences. \
An appliance runs the model on the site's own hardware, and every action is recorded \
in a signed log that an auditor can verify offline. The answer is in the record.";

/// Learns `n` merges from [`CORPUS`] (most frequent pair first, ties broken
/// by the pair's text) and returns the tokens (in id order) and the merges.
pub(super) fn bpe_vocab(n: usize) -> (Vec<String>, Vec<(String, String)>) {
    let sym = byte_symbols();
    let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    tokens.extend(sym.iter().map(|c| c.to_string()));
    // Pre-tokenize like GPT-2, roughly: words carry their leading space.
    let mut words: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut cur = String::new();
    let mut flush = |w: &mut String| {
        if !w.is_empty() {
            let syms = w.bytes().map(|b| sym[b as usize].to_string()).collect();
            *words.entry(syms).or_default() += 1;
            w.clear();
        }
    };
    for ch in CORPUS.chars() {
        if ch == ' ' || ch.is_ascii_punctuation() {
            flush(&mut cur);
        }
        cur.push(ch);
        if ch.is_ascii_punctuation() {
            flush(&mut cur);
        }
    }
    flush(&mut cur);
    let mut words: Vec<(Vec<String>, usize)> = words.into_iter().collect();

    let mut merges = Vec::new();
    let mut known: std::collections::HashSet<String> = tokens.iter().cloned().collect();
    let target = tokens.len() + n;
    while tokens.len() < target {
        let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (w, c) in &words {
            for p in w.windows(2) {
                *counts.entry((p[0].clone(), p[1].clone())).or_default() += c;
            }
        }
        // max_by_key keeps the last maximum; iterate in reverse so the
        // smallest pair wins ties.
        let Some((best, _)) = counts.into_iter().rev().max_by_key(|(_, c)| *c) else {
            break;
        };
        let joined = format!("{}{}", best.0, best.1);
        for (w, _) in words.iter_mut() {
            let mut i = 0;
            while i + 1 < w.len() {
                if w[i] == best.0 && w[i + 1] == best.1 {
                    w[i] = joined.clone();
                    w.remove(i + 1);
                }
                i += 1;
            }
        }
        // Two different splits can join to one string: the merge is still
        // valid (BPE maps it to the existing token), but adds no token.
        if known.insert(joined.clone()) {
            tokens.push(joined);
        }
        merges.push(best);
    }
    (tokens, merges)
}

/// The `tokenizer.json` (Hugging Face `tokenizers` format) of the generated
/// byte-level BPE with `merges` merges, and its vocabulary size.
pub fn tokenizer_json(merges: usize) -> (serde_json::Value, usize) {
    let (tokens, merges) = bpe_vocab(merges);
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<_> = SPECIALS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": i, "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let merges: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false,
                            "trim_offsets": true, "use_regex": true});
    let v = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges
        }
    });
    (v, tokens.len())
}

/// Writes `tokenizer.json` and `tokenizer_config.json` into `dir`; returns
/// the vocabulary size.
pub fn write_tokenizer(dir: &Path, merges: usize) -> Result<usize> {
    let (json, n) = tokenizer_json(merges);
    write_json(&dir.join("tokenizer.json"), &json)?;
    let cfg = json!({
        "bos_token": SPECIALS[BOS_ID as usize],
        "eos_token": SPECIALS[EOS_ID as usize],
        "unk_token": SPECIALS[0],
        "model_max_length": 256,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": false,
    });
    write_json(&dir.join("tokenizer_config.json"), &cfg)?;
    Ok(n)
}
