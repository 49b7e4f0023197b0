//! What a loaded model declares about itself: architecture, size,
//! quantisation, context, and the license / provenance keys its files carry.

use std::collections::{BTreeMap, HashMap};

use candle_core::quantized::gguf_file::{self, Value};
use serde::Serialize;

use crate::arch::{Arch, Hyper};

/// A model's metadata (see [`crate::Engine::info`]). Provenance is what
/// the files say, not verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub arch: Arch,
    /// Weight elements in all tensors.
    pub parameters: u64,
    /// The most common weight type by element count (`Q4_1`, `Q4K`, `F32`,
    /// `BF16` …).
    pub quantization: String,
    /// Elements per weight type.
    pub tensor_types: BTreeMap<String, u64>,
    pub context_length: usize,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// License and provenance keys present in the files: GGUF `general.*`
    /// (`general.license`, `general.name`, `general.source.url`,
    /// `general.base_model.0.repo_url` …), config.json's `_name_or_path`,
    /// `torch_dtype`, `transformers_version`, `license`.
    pub provenance: BTreeMap<String, String>,
}

impl ModelInfo {
    fn new(
        hp: &Hyper,
        tensor_types: BTreeMap<String, u64>,
        provenance: BTreeMap<String, String>,
    ) -> Self {
        let quantization = tensor_types
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(t, _)| t.clone())
            .unwrap_or_default();
        ModelInfo {
            arch: hp.arch,
            parameters: tensor_types.values().sum(),
            quantization,
            tensor_types,
            context_length: hp.context,
            vocab_size: hp.vocab,
            hidden_size: hp.hidden,
            layers: hp.layers,
            heads: hp.heads,
            kv_heads: hp.kv_heads,
            provenance,
        }
    }

    /// From a GGUF file's tensor table and metadata.
    pub(crate) fn from_gguf(hp: &Hyper, content: &gguf_file::Content) -> Self {
        let mut types = BTreeMap::new();
        for t in content.tensor_infos.values() {
            *types.entry(format!("{:?}", t.ggml_dtype)).or_insert(0) += t.shape.elem_count() as u64;
        }
        ModelInfo::new(hp, types, gguf_provenance(&content.metadata))
    }

    /// From safetensors headers (`(dtype, elements)` per tensor) and
    /// config.json.
    pub(crate) fn from_safetensors(
        hp: &Hyper,
        tensors: impl Iterator<Item = (String, u64)>,
        config: &serde_json::Value,
    ) -> Self {
        let mut types = BTreeMap::new();
        for (dtype, n) in tensors {
            *types.entry(dtype).or_insert(0) += n;
        }
        let provenance = [
            "_name_or_path",
            "torch_dtype",
            "transformers_version",
            "license",
        ]
        .iter()
        .filter_map(|k| {
            let v = config.get(*k)?;
            let s = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            Some((k.to_string(), s))
        })
        .collect();
        ModelInfo::new(hp, types, provenance)
    }
}

/// Keys of `general.*` that describe the file's layout, not its origin.
const LAYOUT_KEYS: [&str; 4] = [
    "general.architecture",
    "general.file_type",
    "general.alignment",
    "general.quantization_version",
];

/// `general.*` metadata as text: scalars, and arrays of scalars joined by
/// ", " (tags, languages).
fn gguf_provenance(md: &HashMap<String, Value>) -> BTreeMap<String, String> {
    fn scalar(v: &Value) -> Option<String> {
        Some(match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::U8(x) => x.to_string(),
            Value::U16(x) => x.to_string(),
            Value::U32(x) => x.to_string(),
            Value::U64(x) => x.to_string(),
            Value::I8(x) => x.to_string(),
            Value::I16(x) => x.to_string(),
            Value::I32(x) => x.to_string(),
            Value::I64(x) => x.to_string(),
            Value::F32(x) => x.to_string(),
            Value::F64(x) => x.to_string(),
            Value::Array(_) => return None,
        })
    }
    md.iter()
        .filter(|(k, _)| k.starts_with("general.") && !LAYOUT_KEYS.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let text = match v {
                Value::Array(items) => items
                    .iter()
                    .map(scalar)
                    .collect::<Option<Vec<_>>>()?
                    .join(", "),
                v => scalar(v)?,
            };
            Some((k.clone(), text))
        })
        .collect()
}
