//! Tiny random-weight models in real file formats, for tests and demos.
//!
//! [`generate`] writes a seeded, deterministic model: the same
//! [`TinySpec`] gives the same weights whatever the output format, so a
//! safetensors directory and a GGUF file written from one spec must make the
//! same greedy choices. Formats:
//!
//! - **safetensors**: `model.safetensors` (or `model-0000i-of-0000n.safetensors`
//!   shards with `model.safetensors.index.json`), `config.json` with the
//!   Hugging Face Llama keys, `tokenizer.json`, `tokenizer_config.json`;
//! - **GGUF** (v2, candle's writer): the metadata llama.cpp reads for
//!   `general.architecture = llama` (all integers U32, all floats F32), the
//!   tokenizer as `tokenizer.ggml.*` (model `gpt2`, tokens, token types,
//!   merges, BOS/EOS ids), tensors under llama.cpp's names in F32, F16, Q8_0
//!   or Q4_0 (norms stay F32). Q and K rows are permuted the way llama.cpp's
//!   converter does, because llama.cpp (and candle's `quantized_llama`)
//!   rotate interleaved pairs while Hugging Face Llama rotates halves.
//!   A `tokenizer.json` is written beside the file.
//!
//! The tokenizer is a byte-level BPE: three special tokens (`<|endoftext|>`,
//! `<s>`, `</s>`), the 256 byte symbols, then `merges` merges learnt
//! greedily from a fixed English text, so ordinary prompts tokenize into a
//! few multi-byte tokens.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde_json::json;

use crate::error::{Error, Result};

/// Model architectures the generator (and the loader) know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arch {
    /// Llama (Llama 2/3, SmolLM2, …).
    Llama,
}

/// Shapes of a generated model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dims {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    /// BPE merges after the 3 special and 256 byte tokens; the vocabulary
    /// is `3 + 256 + merges`.
    pub merges: usize,
    /// `max_position_embeddings` / `llama.context_length`.
    pub context: usize,
}

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
            context: 256,
        }
    }

    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinySpec {
    pub arch: Arch,
    pub dims: Dims,
    /// Seed of the weights (the tokenizer does not depend on it).
    pub seed: u64,
}

impl TinySpec {
    /// A tiny Llama with the given seed.
    pub fn tiny_llama(seed: u64) -> Self {
        TinySpec {
            arch: Arch::Llama,
            dims: Dims::tiny(),
            seed,
        }
    }
}

/// GGUF tensor types the generator writes (1-D tensors always stay F32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufType {
    F32,
    F16,
    Q8_0,
    Q4_0,
}

impl GgufType {
    fn ggml(self) -> GgmlDType {
        match self {
            GgufType::F32 => GgmlDType::F32,
            GgufType::F16 => GgmlDType::F16,
            GgufType::Q8_0 => GgmlDType::Q8_0,
            GgufType::Q4_0 => GgmlDType::Q4_0,
        }
    }

    /// llama.cpp's `general.file_type` (LLAMA_FTYPE_*).
    fn file_type(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::Q4_0 => 2,
            GgufType::Q8_0 => 7,
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
const SPECIALS: [&str; 3] = ["<|endoftext|>", "<s>", "</s>"];

/// Writes a model into `dir` (created if needed) and returns the path to
/// load: the directory for safetensors, the `.gguf` file for GGUF.
pub fn generate(spec: &TinySpec, format: Format, dir: &Path) -> Result<PathBuf> {
    check_dims(&spec.dims)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let vocab = write_tokenizer(dir, spec.dims.merges)?;
    let weights = hf_weights(spec, vocab);
    match format {
        Format::Safetensors { shards } => {
            write_safetensors(spec, vocab, &weights, dir, shards.max(1))?;
            Ok(dir.to_path_buf())
        }
        Format::Gguf(ty) => {
            let path = dir.join(match ty {
                GgufType::F32 => "model-f32.gguf",
                GgufType::F16 => "model-f16.gguf",
                GgufType::Q8_0 => "model-q8_0.gguf",
                GgufType::Q4_0 => "model-q4_0.gguf",
            });
            write_gguf(spec, vocab, &weights, &path, ty)?;
            Ok(path)
        }
    }
}

fn check_dims(d: &Dims) -> Result<()> {
    let ok = d.heads > 0
        && d.kv_heads > 0
        && d.heads % d.kv_heads == 0
        && d.hidden % d.heads == 0
        && d.head_dim() % 2 == 0
        && d.layers > 0
        && d.intermediate > 0
        && d.context > 0;
    if ok {
        Ok(())
    } else {
        Err(Error::Request(format!("inconsistent dimensions {d:?}")))
    }
}

// ---------------------------------------------------------------- tokenizer

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
fn bpe_vocab(n: usize) -> (Vec<String>, Vec<(String, String)>) {
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

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::invalid(path, e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

// ------------------------------------------------------------------ weights

/// SplitMix64: small, seedable, and stable across versions (unlike `rand`).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// One tensor in Hugging Face naming, row-major.
struct HfTensor {
    name: String,
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Weights in Hugging Face Llama naming. Each tensor's values depend only on
/// the seed and the tensor's name, so the order of generation is irrelevant.
fn hf_weights(spec: &TinySpec, vocab: usize) -> Vec<HfTensor> {
    let d = &spec.dims;
    let (h, i, hd) = (d.hidden, d.intermediate, d.head_dim());
    // Uniform(-a, a) has standard deviation a/sqrt(3).
    let u = |fan_in: usize, gain: f32| gain * (3.0f32 / fan_in as f32).sqrt();
    let mut specs: Vec<(String, Vec<usize>, f32, f32)> = vec![
        ("model.embed_tokens.weight".into(), vec![vocab, h], 1.7, 0.0),
        ("model.norm.weight".into(), vec![h], 0.2, 1.0),
        ("lm_head.weight".into(), vec![vocab, h], u(h, 3.0), 0.0),
    ];
    for l in 0..d.layers {
        let p = format!("model.layers.{l}");
        specs.extend([
            (format!("{p}.input_layernorm.weight"), vec![h], 0.2, 1.0),
            (
                format!("{p}.post_attention_layernorm.weight"),
                vec![h],
                0.2,
                1.0,
            ),
            (
                format!("{p}.self_attn.q_proj.weight"),
                vec![d.heads * hd, h],
                u(h, 2.0),
                0.0,
            ),
            (
                format!("{p}.self_attn.k_proj.weight"),
                vec![d.kv_heads * hd, h],
                u(h, 2.0),
                0.0,
            ),
            (
                format!("{p}.self_attn.v_proj.weight"),
                vec![d.kv_heads * hd, h],
                u(h, 1.0),
                0.0,
            ),
            (
                format!("{p}.self_attn.o_proj.weight"),
                vec![h, d.heads * hd],
                u(h, 1.0),
                0.0,
            ),
            (
                format!("{p}.mlp.gate_proj.weight"),
                vec![i, h],
                u(h, 1.0),
                0.0,
            ),
            (
                format!("{p}.mlp.up_proj.weight"),
                vec![i, h],
                u(h, 1.0),
                0.0,
            ),
            (
                format!("{p}.mlp.down_proj.weight"),
                vec![h, i],
                u(i, 1.0),
                0.0,
            ),
        ]);
    }
    specs
        .into_iter()
        .map(|(name, shape, scale, offset)| {
            let seed = spec.seed
                ^ u64::from_le_bytes(
                    blake3::hash(name.as_bytes()).as_bytes()[..8]
                        .try_into()
                        .expect("8 bytes"),
                );
            let mut rng = Rng(seed);
            let n = shape.iter().product();
            let data = (0..n).map(|_| offset + scale * rng.unit()).collect();
            HfTensor { name, shape, data }
        })
        .collect()
}

fn to_tensor(t: &HfTensor, data: &[f32]) -> Result<Tensor> {
    Tensor::from_slice(data, t.shape.as_slice(), &Device::Cpu)
        .map_err(|e| Error::candle(format!("tensor {}", t.name), e))
}

fn write_safetensors(
    spec: &TinySpec,
    vocab: usize,
    weights: &[HfTensor],
    dir: &Path,
    shards: usize,
) -> Result<()> {
    let d = &spec.dims;
    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": d.hidden,
        "intermediate_size": d.intermediate,
        "num_hidden_layers": d.layers,
        "num_attention_heads": d.heads,
        "num_key_value_heads": d.kv_heads,
        "vocab_size": vocab,
        "max_position_embeddings": d.context,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "tie_word_embeddings": false,
        "torch_dtype": "float32",
    });
    write_json(&dir.join("config.json"), &config)?;

    let mut groups: Vec<HashMap<String, Tensor>> = vec![HashMap::new(); shards];
    let mut weight_map = serde_json::Map::new();
    let name_of = |k: usize| {
        if shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", k + 1, shards)
        }
    };
    let mut total = 0usize;
    for (n, t) in weights.iter().enumerate() {
        let k = n % shards;
        groups[k].insert(t.name.clone(), to_tensor(t, &t.data)?);
        weight_map.insert(t.name.clone(), json!(name_of(k)));
        total += t.data.len() * 4;
    }
    for (k, g) in groups.iter().enumerate() {
        let path = dir.join(name_of(k));
        candle_core::safetensors::save(g, &path)
            .map_err(|e| Error::candle(path.display().to_string(), e))?;
    }
    if shards > 1 {
        let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        write_json(&dir.join("model.safetensors.index.json"), &index)?;
    }
    Ok(())
}

/// llama.cpp's Q/K row permutation for `n_head` heads: within each head,
/// row `h * half + i` (h ∈ {0, 1}) moves to row `2 * i + h`.
fn permute_rows(data: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    let hd = rows / n_head;
    let half = hd / 2;
    let mut out = vec![0f32; data.len()];
    for head in 0..n_head {
        for h in 0..2 {
            for i in 0..half {
                let src = head * hd + h * half + i;
                let dst = head * hd + 2 * i + h;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

fn gguf_name(hf: &str) -> String {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return f.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap_or(hf);
    let (layer, field) = rest.split_once('.').unwrap_or(("0", rest));
    let field = match field {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        other => other,
    };
    format!("blk.{layer}.{field}")
}

fn write_gguf(
    spec: &TinySpec,
    vocab: usize,
    weights: &[HfTensor],
    path: &Path,
    ty: GgufType,
) -> Result<()> {
    use gguf_file::Value as V;
    let d = &spec.dims;
    let (tokens, merges) = bpe_vocab(d.merges);
    let token_types: Vec<V> = (0..tokens.len())
        .map(|i| V::I32(if i < SPECIALS.len() { 3 } else { 1 }))
        .collect();
    let u = |x: usize| V::U32(x as u32);
    let metadata: Vec<(&str, V)> = vec![
        ("general.architecture", V::String("llama".into())),
        ("general.name", V::String("cairn tiny llama".into())),
        ("general.file_type", V::U32(ty.file_type())),
        ("llama.vocab_size", u(vocab)),
        ("llama.context_length", u(d.context)),
        ("llama.embedding_length", u(d.hidden)),
        ("llama.block_count", u(d.layers)),
        ("llama.feed_forward_length", u(d.intermediate)),
        ("llama.attention.head_count", u(d.heads)),
        ("llama.attention.head_count_kv", u(d.kv_heads)),
        ("llama.rope.dimension_count", u(d.head_dim())),
        ("llama.rope.freq_base", V::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
        ("tokenizer.ggml.model", V::String("gpt2".into())),
        ("tokenizer.ggml.pre", V::String("default".into())),
        (
            "tokenizer.ggml.tokens",
            V::Array(tokens.into_iter().map(V::String).collect()),
        ),
        ("tokenizer.ggml.token_type", V::Array(token_types)),
        (
            "tokenizer.ggml.merges",
            V::Array(
                merges
                    .into_iter()
                    .map(|(a, b)| V::String(format!("{a} {b}")))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id", V::U32(BOS_ID)),
        ("tokenizer.ggml.eos_token_id", V::U32(EOS_ID)),
        ("tokenizer.ggml.unknown_token_id", V::U32(0)),
        ("tokenizer.ggml.padding_token_id", V::U32(0)),
    ];

    let mut qtensors = Vec::with_capacity(weights.len());
    for t in weights {
        let data = if t.name.ends_with("q_proj.weight") {
            permute_rows(&t.data, t.shape[0], t.shape[1], d.heads)
        } else if t.name.ends_with("k_proj.weight") {
            permute_rows(&t.data, t.shape[0], t.shape[1], d.kv_heads)
        } else {
            t.data.clone()
        };
        let tensor = to_tensor(t, &data)?;
        let dtype = if t.shape.len() == 1 {
            GgmlDType::F32
        } else {
            ty.ggml()
        };
        let q = QTensor::quantize(&tensor, dtype)
            .map_err(|e| Error::candle(format!("quantizing {}", t.name), e))?;
        qtensors.push((gguf_name(&t.name), q));
    }

    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(file);
    let md: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = qtensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
    gguf_file::write(&mut w, &md, &ts).map_err(|e| Error::candle(path.display().to_string(), e))?;
    w.flush().map_err(|e| Error::io(path, e))?;
    Ok(())
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
    fn permutation_matches_llama_cpp() {
        // One head of dimension 4, one column: rows [0, 1, 2, 3] (halves
        // [0, 1] and [2, 3]) become interleaved pairs [0, 2, 1, 3].
        let out = permute_rows(&[0.0, 1.0, 2.0, 3.0], 4, 1, 1);
        assert_eq!(out, vec![0.0, 2.0, 1.0, 3.0]);
    }

    #[test]
    fn weights_depend_on_seed_only() {
        let a = hf_weights(&TinySpec::tiny_llama(1), 300);
        let b = hf_weights(&TinySpec::tiny_llama(1), 300);
        let c = hf_weights(&TinySpec::tiny_llama(2), 300);
        assert_eq!(a[3].data, b[3].data);
        assert_ne!(a[3].data, c[3].data);
        assert_eq!(gguf_name(&a[3].name), "blk.0.attn_norm.weight");
    }
}
