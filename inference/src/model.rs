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

use std::sync::Arc;

use candle_core::quantized::{gguf_file, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::arch::{gguf_u32, Hyper, Role};
use crate::digest::{digest_files, DigestCache, ModelDigest};
use crate::error::{no_panic, Error, Result};
use crate::info::ModelInfo;
use crate::qlinear::Matrix;
use crate::transformer::{Transformer, WeightSource};

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
    pub weights: Transformer,
    pub info: ModelInfo,
    pub eos: Vec<u32>,
    pub bos: Option<u32>,
}

fn unwrap_backtrace(e: &candle_core::Error) -> &candle_core::Error {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => unwrap_backtrace(inner),
        other => other,
    }
}

// --------------------------------------------------------------------- GGUF

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

/// Llama 3.x's rotary frequency divisors, when the file has them.
const ROPE_FREQS: &str = "rope_freqs.weight";

/// Checks that tensor `name` exists with `shape` and that its data lies
/// inside the file.
fn check_gguf_tensor(
    path: &Path,
    content: &gguf_file::Content,
    file_len: u64,
    name: &str,
    shape: &[usize],
) -> Result<()> {
    let info = content
        .tensor_infos
        .get(name)
        .ok_or_else(|| Error::MissingTensor {
            path: path.into(),
            tensor: name.into(),
        })?;
    if info.shape.dims() != shape {
        return Err(Error::TensorShape {
            path: path.into(),
            tensor: name.into(),
            found: info.shape.dims().to_vec(),
            expected: shape.to_vec(),
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
            tensor: name.into(),
            needed,
            len: file_len,
        });
    }
    Ok(())
}

/// GGUF tensors by role, read one at a time.
struct GgufWeights<'a> {
    path: &'a Path,
    content: &'a gguf_file::Content,
    reader: &'a mut BufReader<File>,
    device: &'a Device,
}

impl GgufWeights<'_> {
    fn read(&mut self, name: &str) -> Result<QTensor> {
        self.content
            .tensor(self.reader, name, self.device)
            .map_err(|e| Error::candle(format!("{}: tensor {name}", self.path.display()), e))
    }

    fn read_vector(&mut self, name: &str) -> Result<Tensor> {
        let t = self.read(name)?;
        t.dequantize(self.device)
            .map_err(|e| Error::candle(format!("{}: tensor {name}", self.path.display()), e))
    }
}

impl WeightSource for GgufWeights<'_> {
    fn matrix(&mut self, role: Role) -> Result<Matrix> {
        Ok(Matrix::Quantized(Arc::new(self.read(&role.gguf_name())?)))
    }

    fn vector(&mut self, role: Role) -> Result<Tensor> {
        self.read_vector(&role.gguf_name())
    }
}

pub(crate) fn load_gguf(path: &Path, device: &Device) -> Result<Loaded> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::new(f);
    let content = read_gguf_header(path, &mut reader)?;
    let md = &content.metadata;

    let embed = Role::Embed.gguf_name();
    let vocab = content
        .tensor_infos
        .get(&embed)
        .map(|t| t.shape.dims().first().copied().unwrap_or(0))
        .ok_or_else(|| Error::MissingTensor {
            path: path.into(),
            tensor: embed,
        })?;
    let tied = !content.tensor_infos.contains_key(&Role::Output.gguf_name());
    let mut hp = Hyper::from_gguf(path, md, vocab, tied)?;
    for (role, shape) in hp.tensors() {
        check_gguf_tensor(path, &content, file_len, &role.gguf_name(), &shape)?;
    }
    let eos = gguf_u32(path, md, "tokenizer.ggml.eos_token_id")?
        .map(|t| t as u32)
        .into_iter()
        .collect();
    let bos = gguf_u32(path, md, "tokenizer.ggml.bos_token_id")?.map(|t| t as u32);

    let info = ModelInfo::from_gguf(&hp, &content);
    let ctx = path.display().to_string();
    let weights = no_panic(&ctx, || {
        let mut src = GgufWeights {
            path,
            content: &content,
            reader: &mut reader,
            device,
        };
        if content.tensor_infos.contains_key(ROPE_FREQS) {
            check_gguf_tensor(path, &content, file_len, ROPE_FREQS, &[hp.head_dim() / 2])?;
            let f = src
                .read_vector(ROPE_FREQS)?
                .to_dtype(DType::F32)
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| Error::candle(format!("{ctx}: {ROPE_FREQS}"), e))?;
            hp = hp.clone().with_rope_factors(path, f)?;
        }
        Transformer::load(hp.clone(), &mut src, device)
    })?;
    Ok(Loaded {
        weights,
        info,
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

/// Memory-mapped safetensors shards, tensors by role, converted to F32.
struct SafetensorsWeights<'a> {
    tensors: candle_core::safetensors::MmapedSafetensors,
    device: &'a Device,
    dir: &'a Path,
}

impl SafetensorsWeights<'_> {
    fn read(&self, role: Role) -> Result<Tensor> {
        let name = role.hf_name();
        self.tensors
            .load(&name, self.device)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| Error::candle(format!("{}: tensor {name}", self.dir.display()), e))
    }
}

impl WeightSource for SafetensorsWeights<'_> {
    fn matrix(&mut self, role: Role) -> Result<Matrix> {
        Ok(Matrix::Dense(self.read(role)?))
    }

    fn vector(&mut self, role: Role) -> Result<Tensor> {
        self.read(role)
    }
}

/// A token id or a list of them (config.json's `eos_token_id`).
fn config_ids(path: &Path, raw: &serde_json::Value, key: &str) -> Result<Vec<u32>> {
    let one = |v: &serde_json::Value| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                Error::invalid(path, format!("{key} must be a token id or a list of them"))
            })
    };
    match raw.get(key) {
        None | Some(serde_json::Value::Null) => Ok(vec![]),
        Some(serde_json::Value::Array(a)) => a.iter().map(one).collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

pub(crate) fn load_safetensors(
    config_path: &Path,
    shards: &[PathBuf],
    device: &Device,
) -> Result<Loaded> {
    let text = std::fs::read(config_path).map_err(|e| Error::io(config_path, e))?;
    let raw: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Error::invalid(config_path, format!("not JSON: {e}")))?;
    let hp = Hyper::from_config(config_path, &raw)?;
    let eos = config_ids(config_path, &raw, "eos_token_id")?;
    let bos = config_ids(config_path, &raw, "bos_token_id")?
        .first()
        .copied();

    let mut found: HashMap<String, (PathBuf, Vec<usize>, safetensors::Dtype)> = HashMap::new();
    let mut elements = Vec::new();
    for shard in shards {
        let md = safetensors_header(shard)?;
        for (name, info) in md.tensors() {
            let n = info.shape.iter().product::<usize>() as u64;
            elements.push((format!("{:?}", info.dtype), n));
            found.insert(name, (shard.clone(), info.shape.clone(), info.dtype));
        }
    }
    let dir = config_path.parent().unwrap_or(Path::new("."));
    for (role, shape) in hp.tensors() {
        let name = role.hf_name();
        let (file, got, dtype) = found.get(&name).ok_or_else(|| Error::MissingTensor {
            path: dir.to_path_buf(),
            tensor: name.clone(),
        })?;
        if *got != shape {
            return Err(Error::TensorShape {
                path: file.clone(),
                tensor: name,
                found: got.clone(),
                expected: shape,
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

    let info = ModelInfo::from_safetensors(&hp, elements.into_iter(), &raw);
    let ctx = dir.display().to_string();
    let weights = no_panic(&ctx, || {
        // SAFETY: the shards are memory-mapped read-only; cairn requires that
        // model files are not modified while loaded (the digest would lie
        // too). Their headers and extents were checked above.
        let tensors = unsafe { candle_core::safetensors::MmapedSafetensors::multi(shards) }
            .map_err(|e| Error::candle(ctx.clone(), e))?;
        let mut src = SafetensorsWeights {
            tensors,
            device,
            dir,
        };
        Transformer::load(hp.clone(), &mut src, device)
    })?;
    Ok(Loaded {
        weights,
        info,
        eos,
        bos,
    })
}
