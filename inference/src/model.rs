//! Finding, validating and loading a model's files.
//!
//! Loading validates everything candle would otherwise trip over (magic,
//! metadata keys and types, tensor names, shapes and extents, config.json,
//! shards) so that a bad file gives an [`Error`] naming it; candle's own
//! errors are mapped, and a panic inside candle is caught as a last resort.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device};
use candle_transformers::models::{llama, quantized_llama};

use crate::digest::{digest_files, DigestCache, ModelDigest};
use crate::error::{no_panic, Error, Result};

/// Where a model's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// One GGUF file; the tokenizer is a `tokenizer.json` when given, else
    /// the one embedded in the GGUF metadata.
    Gguf {
        file: PathBuf,
        tokenizer: Option<PathBuf>,
    },
    /// A Hugging Face directory: `config.json`, `tokenizer.json`, and
    /// `model.safetensors` or the shards named by
    /// `model.safetensors.index.json`.
    Safetensors {
        dir: PathBuf,
        config: PathBuf,
        tokenizer: PathBuf,
        index: Option<PathBuf>,
        shards: Vec<PathBuf>,
    },
}

/// Optional files that change behaviour and enter the digest when present.
const OPTIONAL: [&str; 2] = ["tokenizer_config.json", "generation_config.json"];

impl ModelSource {
    /// A `.gguf` file (tokenizer: `tokenizer.json` beside it if there is
    /// one, else the one in its metadata) or a safetensors directory. Checks
    /// that every file exists (and, for an index, that every shard it names
    /// does); reads nothing else.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Self::safetensors_dir(path);
        }
        exists(path)?;
        let beside = path
            .parent()
            .unwrap_or(Path::new("."))
            .join("tokenizer.json");
        Ok(ModelSource::Gguf {
            file: path.to_path_buf(),
            tokenizer: beside.is_file().then_some(beside),
        })
    }

    /// A GGUF file with an explicitly chosen tokenizer.json.
    pub fn gguf(file: &Path, tokenizer: &Path) -> Result<Self> {
        for p in [file, tokenizer] {
            exists(p)?;
        }
        Ok(ModelSource::Gguf {
            file: file.to_path_buf(),
            tokenizer: Some(tokenizer.to_path_buf()),
        })
    }

    fn safetensors_dir(dir: &Path) -> Result<Self> {
        let config = dir.join("config.json");
        let tokenizer = dir.join("tokenizer.json");
        exists(&config)?;
        exists(&tokenizer)?;
        let index_path = dir.join("model.safetensors.index.json");
        let (index, shards) = if index_path.exists() {
            let text = std::fs::read(&index_path).map_err(|e| Error::io(&index_path, e))?;
            let v: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| Error::invalid(&index_path, format!("not JSON: {e}")))?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::invalid(&index_path, "no weight_map object"))?;
            let mut names = BTreeSet::new();
            for (tensor, file) in map {
                let file = file.as_str().ok_or_else(|| {
                    Error::invalid(&index_path, format!("weight_map[{tensor}] is not a string"))
                })?;
                if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                    return Err(Error::invalid(
                        &index_path,
                        format!("shard name {file:?} is not a plain file name"),
                    ));
                }
                names.insert(file.to_string());
            }
            let mut shards = Vec::new();
            for name in names {
                let p = dir.join(&name);
                if !p.is_file() {
                    return Err(Error::MissingShard {
                        dir: dir.to_path_buf(),
                        shard: name,
                        index: "model.safetensors.index.json".into(),
                    });
                }
                shards.push(p);
            }
            (Some(index_path), shards)
        } else {
            let single = dir.join("model.safetensors");
            exists(&single)?;
            (None, vec![single])
        };
        Ok(ModelSource::Safetensors {
            dir: dir.to_path_buf(),
            config,
            tokenizer,
            index,
            shards,
        })
    }

    /// Every file that determines the model's behaviour: weights, config,
    /// index, tokenizer.json, and tokenizer_config.json /
    /// generation_config.json when present. A GGUF file without a
    /// tokenizer.json covers its embedded tokenizer and chat template.
    pub fn behaviour_files(&self) -> Vec<PathBuf> {
        let (mut files, dir) = match self {
            ModelSource::Gguf { file, tokenizer } => {
                let mut f = vec![file.clone()];
                f.extend(tokenizer.iter().cloned());
                let dir = tokenizer.as_deref().unwrap_or(file).parent();
                (f, dir.map(Path::to_path_buf))
            }
            ModelSource::Safetensors {
                dir,
                config,
                tokenizer,
                index,
                shards,
            } => {
                let mut f = shards.clone();
                f.push(config.clone());
                f.push(tokenizer.clone());
                f.extend(index.iter().cloned());
                (f, Some(dir.clone()))
            }
        };
        if let Some(dir) = dir {
            files.extend(OPTIONAL.iter().map(|n| dir.join(n)).filter(|p| p.is_file()));
        }
        files
    }

    /// The model's identity (see [`crate::digest`]).
    pub fn digest(&self, cache: &DigestCache) -> Result<ModelDigest> {
        digest_files(&self.behaviour_files(), cache)
    }

    /// The file the tokenizer comes from: a tokenizer.json, or the GGUF
    /// file itself when its embedded tokenizer is used.
    pub fn tokenizer_path(&self) -> &Path {
        match self {
            ModelSource::Gguf {
                tokenizer: Some(t), ..
            }
            | ModelSource::Safetensors { tokenizer: t, .. } => t,
            ModelSource::Gguf { file, .. } => file,
        }
    }

    /// The directory of the model's side files (tokenizer_config.json …).
    pub fn dir(&self) -> &Path {
        match self {
            ModelSource::Gguf { file, .. } => file.parent().unwrap_or(Path::new(".")),
            ModelSource::Safetensors { dir, .. } => dir,
        }
    }
}

fn exists(p: &Path) -> Result<()> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::invalid(p, "not a regular file")),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// What was loaded: the network and the facts generation needs.
pub(crate) struct Loaded {
    pub weights: Weights,
    pub arch: String,
    pub vocab: usize,
    pub context: usize,
    pub eos: Vec<u32>,
    pub bos: Option<u32>,
}

/// The network. GGUF weights carry their KV cache inside, so each request
/// runs on a clone (tensors are reference-counted: cloning copies no
/// weights) whose cache starts empty; safetensors Llama keeps its cache in a
/// separate [`llama::Cache`], made fresh per request.
pub(crate) enum Weights {
    Gguf(quantized_llama::ModelWeights),
    Llama {
        model: llama::Llama,
        config: llama::Config,
        dtype: DType,
    },
}

// --------------------------------------------------------------------- GGUF

/// Keys `quantized_llama` requires (U32 unless noted).
const GGUF_U32_KEYS: [&str; 6] = [
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.block_count",
    "llama.embedding_length",
    "llama.rope.dimension_count",
    "llama.feed_forward_length",
];
const GGUF_EPS_KEY: &str = "llama.attention.layer_norm_rms_epsilon";

fn gguf_u32(path: &Path, md: &HashMap<String, gguf_file::Value>, key: &str) -> Result<Option<u32>> {
    match md.get(key) {
        None => Ok(None),
        Some(gguf_file::Value::U32(v)) => Ok(Some(*v)),
        Some(v) => Err(Error::BadKey {
            path: path.to_path_buf(),
            key: key.into(),
            reason: format!("expected a U32, found {:?}", v.value_type()),
        }),
    }
}

fn gguf_req_u32(path: &Path, md: &HashMap<String, gguf_file::Value>, key: &str) -> Result<usize> {
    gguf_u32(path, md, key)?
        .map(|v| v as usize)
        .ok_or_else(|| Error::MissingKey {
            path: path.to_path_buf(),
            key: key.into(),
        })
}

fn unwrap_backtrace(e: &candle_core::Error) -> &candle_core::Error {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => unwrap_backtrace(inner),
        other => other,
    }
}

fn check_f32(path: &Path, key: &str, v: &gguf_file::Value) -> Result<()> {
    match v {
        gguf_file::Value::F32(x) if x.is_finite() => Ok(()),
        _ => Err(Error::BadKey {
            path: path.to_path_buf(),
            key: key.into(),
            reason: format!("expected a finite F32, found {:?}", v.value_type()),
        }),
    }
}

/// Reads and checks a GGUF file's header; returns the parsed content.
pub(crate) fn read_gguf_header(
    path: &Path,
    file: &mut BufReader<File>,
) -> Result<gguf_file::Content> {
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    if &magic[..got] != b"GGUF" {
        return Err(Error::BadMagic {
            path: path.to_path_buf(),
            found: magic[..got].to_vec(),
        });
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    no_panic(&path.display().to_string(), || {
        gguf_file::Content::read(file).map_err(|e| Error::Gguf {
            path: path.to_path_buf(),
            reason: match unwrap_backtrace(&e) {
                candle_core::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    "truncated header (file ends inside the metadata or tensor table)".into()
                }
                _ => crate::error::candle_message(&e),
            },
        })
    })
}

pub(crate) fn load_gguf(path: &Path, device: &Device) -> Result<Loaded> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::new(f);
    let content = read_gguf_header(path, &mut reader)?;
    let md = &content.metadata;

    let arch_key = "general.architecture";
    let arch = match md.get(arch_key) {
        None => {
            return Err(Error::MissingKey {
                path: path.into(),
                key: arch_key.into(),
            })
        }
        Some(gguf_file::Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(Error::BadKey {
                path: path.into(),
                key: arch_key.into(),
                reason: format!("expected a string, found {:?}", v.value_type()),
            })
        }
    };
    if arch != "llama" {
        return Err(Error::UnsupportedArch {
            path: path.into(),
            arch,
        });
    }
    let mut dims = HashMap::new();
    for key in GGUF_U32_KEYS {
        dims.insert(key, gguf_req_u32(path, md, key)?);
    }
    match md.get(GGUF_EPS_KEY) {
        None => {
            return Err(Error::MissingKey {
                path: path.into(),
                key: GGUF_EPS_KEY.into(),
            })
        }
        Some(v) => check_f32(path, GGUF_EPS_KEY, v)?,
    }
    if let Some(v) = md.get("llama.rope.freq_base") {
        check_f32(path, "llama.rope.freq_base", v)?;
    }
    if gguf_u32(path, md, "llama.expert_count")?.unwrap_or(0) > 1 {
        return Err(Error::UnsupportedArch {
            path: path.into(),
            arch: "llama (mixture of experts)".into(),
        });
    }
    let heads = dims["llama.attention.head_count"];
    let kv_heads = dims["llama.attention.head_count_kv"];
    let hidden = dims["llama.embedding_length"];
    let layers = dims["llama.block_count"];
    let ffn = dims["llama.feed_forward_length"];
    let rope_dim = dims["llama.rope.dimension_count"];
    let bad = |key: &str, reason: &str| Error::BadKey {
        path: path.into(),
        key: key.into(),
        reason: reason.into(),
    };
    if heads == 0 || hidden % heads != 0 {
        return Err(bad(
            "llama.attention.head_count",
            "must be non-zero and divide llama.embedding_length",
        ));
    }
    if kv_heads == 0 || heads % kv_heads != 0 {
        return Err(bad(
            "llama.attention.head_count_kv",
            "must be non-zero and divide llama.attention.head_count",
        ));
    }
    let head_dim = hidden / heads;
    if rope_dim != head_dim {
        return Err(bad(
            "llama.rope.dimension_count",
            "must equal embedding_length / head_count (partial RoPE is not supported)",
        ));
    }

    // Tensors: presence, shape (candle order: rows, columns), extent.
    let vocab = content
        .tensor_infos
        .get("token_embd.weight")
        .map(|t| t.shape.dims().first().copied().unwrap_or(0))
        .ok_or_else(|| Error::MissingTensor {
            path: path.into(),
            tensor: "token_embd.weight".into(),
        })?;
    let mut expected: Vec<(String, Vec<usize>)> = vec![
        ("token_embd.weight".into(), vec![vocab, hidden]),
        ("output_norm.weight".into(), vec![hidden]),
    ];
    if content.tensor_infos.contains_key("output.weight") {
        expected.push(("output.weight".into(), vec![vocab, hidden]));
    }
    for l in 0..layers {
        let p = format!("blk.{l}");
        expected.extend([
            (format!("{p}.attn_norm.weight"), vec![hidden]),
            (format!("{p}.ffn_norm.weight"), vec![hidden]),
            (format!("{p}.attn_q.weight"), vec![heads * head_dim, hidden]),
            (
                format!("{p}.attn_k.weight"),
                vec![kv_heads * head_dim, hidden],
            ),
            (
                format!("{p}.attn_v.weight"),
                vec![kv_heads * head_dim, hidden],
            ),
            (
                format!("{p}.attn_output.weight"),
                vec![hidden, heads * head_dim],
            ),
            (format!("{p}.ffn_gate.weight"), vec![ffn, hidden]),
            (format!("{p}.ffn_up.weight"), vec![ffn, hidden]),
            (format!("{p}.ffn_down.weight"), vec![hidden, ffn]),
        ]);
    }
    for (name, shape) in &expected {
        let info = content
            .tensor_infos
            .get(name)
            .ok_or_else(|| Error::MissingTensor {
                path: path.into(),
                tensor: name.clone(),
            })?;
        if info.shape.dims() != shape.as_slice() {
            return Err(Error::TensorShape {
                path: path.into(),
                tensor: name.clone(),
                found: info.shape.dims().to_vec(),
                expected: shape.clone(),
            });
        }
        let elems = info.shape.elem_count();
        let block = info.ggml_dtype.block_size();
        if elems % block != 0 {
            return Err(Error::Gguf {
                path: path.into(),
                reason: format!("tensor {name}: {elems} elements, not a multiple of {block}"),
            });
        }
        let bytes = (elems / block * info.ggml_dtype.type_size()) as u64;
        let needed = content
            .tensor_data_offset
            .saturating_add(info.offset)
            .saturating_add(bytes);
        if needed > file_len {
            return Err(Error::Truncated {
                path: path.into(),
                tensor: name.clone(),
                needed,
                len: file_len,
            });
        }
    }

    let context = gguf_u32(path, md, "llama.context_length")?
        .map(|c| c as usize)
        .unwrap_or(quantized_llama::MAX_SEQ_LEN)
        .min(quantized_llama::MAX_SEQ_LEN);
    let eos = gguf_u32(path, md, "tokenizer.ggml.eos_token_id")?
        .into_iter()
        .collect();
    let bos = gguf_u32(path, md, "tokenizer.ggml.bos_token_id")?;

    let ctx = path.display().to_string();
    let weights = no_panic(&ctx, || {
        quantized_llama::ModelWeights::from_gguf(content, &mut reader, device)
            .map_err(|e| Error::candle(ctx.clone(), e))
    })?;
    Ok(Loaded {
        weights: Weights::Gguf(weights),
        arch,
        vocab,
        context,
        eos,
        bos,
    })
}

// -------------------------------------------------------------- safetensors

/// Reads a safetensors file's header without reading its data.
fn safetensors_header(path: &Path) -> Result<safetensors::tensor::Metadata> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| Error::invalid(path, "truncated safetensors file (no header length)"))?;
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 || 8 + n > len {
        return Err(Error::invalid(
            path,
            format!("safetensors header length {n} does not fit the file ({len} bytes)"),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let md: safetensors::tensor::Metadata = serde_json::from_slice(&header)
        .map_err(|e| Error::invalid(path, format!("bad safetensors header: {e}")))?;
    let data_len = md
        .tensors()
        .values()
        .map(|t| t.data_offsets.1)
        .max()
        .unwrap_or(0) as u64;
    if 8 + n + data_len > len {
        return Err(Error::invalid(
            path,
            format!(
                "truncated safetensors file: tensors need {} bytes, file has {len}",
                8 + n + data_len
            ),
        ));
    }
    Ok(md)
}

pub(crate) fn load_safetensors(
    config_path: &Path,
    shards: &[PathBuf],
    device: &Device,
) -> Result<Loaded> {
    let text = std::fs::read(config_path).map_err(|e| Error::io(config_path, e))?;
    let raw: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Error::invalid(config_path, format!("not JSON: {e}")))?;
    if let Some(mt) = raw.get("model_type").and_then(|v| v.as_str()) {
        if mt != "llama" {
            return Err(Error::UnsupportedArch {
                path: config_path.into(),
                arch: mt.into(),
            });
        }
    }
    let cfg: llama::LlamaConfig = serde_json::from_value(raw)
        .map_err(|e| Error::invalid(config_path, format!("not a Llama config: {e}")))?;
    let config = cfg.into_config(false);
    let (hidden, heads) = (config.hidden_size, config.num_attention_heads);
    let kv_heads = config.num_key_value_heads;
    if heads == 0 || hidden % heads != 0 || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(Error::invalid(
            config_path,
            "num_attention_heads must divide hidden_size, num_key_value_heads must divide num_attention_heads",
        ));
    }
    if config.vocab_size == 0 || config.max_position_embeddings == 0 {
        return Err(Error::invalid(
            config_path,
            "vocab_size and max_position_embeddings must be non-zero",
        ));
    }
    let hd = hidden / heads;
    if hd % 2 != 0 {
        return Err(Error::invalid(config_path, "head dimension must be even"));
    }

    let mut found: HashMap<String, (PathBuf, Vec<usize>, safetensors::Dtype)> = HashMap::new();
    for shard in shards {
        let md = safetensors_header(shard)?;
        for (name, info) in md.tensors() {
            found.insert(name, (shard.clone(), info.shape.clone(), info.dtype));
        }
    }
    let (v, i) = (config.vocab_size, config.intermediate_size);
    let mut expected: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![v, hidden]),
        ("model.norm.weight".into(), vec![hidden]),
    ];
    if !config.tie_word_embeddings {
        expected.push(("lm_head.weight".into(), vec![v, hidden]));
    }
    for l in 0..config.num_hidden_layers {
        let p = format!("model.layers.{l}");
        expected.extend([
            (format!("{p}.input_layernorm.weight"), vec![hidden]),
            (format!("{p}.post_attention_layernorm.weight"), vec![hidden]),
            (
                format!("{p}.self_attn.q_proj.weight"),
                vec![heads * hd, hidden],
            ),
            (
                format!("{p}.self_attn.k_proj.weight"),
                vec![kv_heads * hd, hidden],
            ),
            (
                format!("{p}.self_attn.v_proj.weight"),
                vec![kv_heads * hd, hidden],
            ),
            (
                format!("{p}.self_attn.o_proj.weight"),
                vec![hidden, heads * hd],
            ),
            (format!("{p}.mlp.gate_proj.weight"), vec![i, hidden]),
            (format!("{p}.mlp.up_proj.weight"), vec![i, hidden]),
            (format!("{p}.mlp.down_proj.weight"), vec![hidden, i]),
        ]);
    }
    let dir = config_path.parent().unwrap_or(Path::new("."));
    for (name, shape) in &expected {
        let (file, got, dtype) = found.get(name).ok_or_else(|| Error::MissingTensor {
            path: dir.to_path_buf(),
            tensor: name.clone(),
        })?;
        if got != shape {
            return Err(Error::TensorShape {
                path: file.clone(),
                tensor: name.clone(),
                found: got.clone(),
                expected: shape.clone(),
            });
        }
        use safetensors::Dtype as D;
        if !matches!(dtype, D::F32 | D::F16 | D::BF16) {
            return Err(Error::invalid(
                file,
                format!("tensor {name} has dtype {dtype:?}; F32, F16 or BF16 expected"),
            ));
        }
    }

    // F32 on the CPU (no fast half-precision matmul there); half on a GPU.
    let dtype = if device.is_cpu() {
        DType::F32
    } else {
        DType::F16
    };
    let ctx = dir.display().to_string();
    let model = no_panic(&ctx, || {
        // SAFETY: the shards are memory-mapped read-only; cairn requires that
        // model files are not modified while loaded (the digest would lie
        // too). Their headers and extents were checked above.
        let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(shards, dtype, device) }
            .map_err(|e| Error::candle(ctx.clone(), e))?;
        llama::Llama::load(vb, &config).map_err(|e| Error::candle(ctx.clone(), e))
    })?;
    let eos = match &config.eos_token_id {
        None => vec![],
        Some(llama::LlamaEosToks::Single(t)) => vec![*t],
        Some(llama::LlamaEosToks::Multiple(ts)) => ts.clone(),
    };
    Ok(Loaded {
        arch: "llama".into(),
        vocab: config.vocab_size,
        context: config.max_position_embeddings,
        bos: config.bos_token_id,
        eos,
        weights: Weights::Llama {
            model,
            config,
            dtype,
        },
    })
}
