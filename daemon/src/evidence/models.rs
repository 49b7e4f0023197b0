//! What the ledger says about models: the facts of each `model.loaded`
//! record (digest, format, quantisation, licence, provenance, files), and
//! the models loaded at a point of the log, replayed from its records.

use std::collections::BTreeMap;

use cairn_attest::Record;
use serde::Serialize;

use super::actor_label;

/// One file of a model, from the digest's listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelFile {
    /// Its name in the model.
    pub name: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// Its BLAKE3, hex.
    pub blake3: String,
}

/// A model as its `model.loaded` record describes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelFacts {
    /// `blake3:` digest over its behaviour files.
    pub digest: String,
    /// The name it was loaded under.
    pub name: String,
    /// Architecture (`llama`, `qwen2`).
    pub arch: Option<String>,
    /// `gguf` or `safetensors`, from its files.
    pub format: Option<String>,
    /// The dominant weight type (`Q4_1`, `F32`, …).
    pub quantization: Option<String>,
    /// Weight elements.
    pub parameters: Option<u64>,
    /// Context length.
    pub context_length: Option<u64>,
    /// The licence its files declare (GGUF `general.license`, config.json
    /// `license`).
    pub license: Option<String>,
    /// Every provenance key its files declare.
    pub provenance: BTreeMap<String, String>,
    /// Its files.
    pub files: Vec<ModelFile>,
    /// The `model.loaded` record.
    pub seq: u64,
    /// When it was loaded.
    pub time: String,
    /// Who loaded it.
    pub loaded_by: String,
}

impl ModelFacts {
    /// The facts of a `model.loaded` record (`None` for any other record,
    /// or one without a digest).
    pub fn of(r: &Record) -> Option<Self> {
        if r.kind != "model.loaded" {
            return None;
        }
        let digest = r.model.clone()?;
        let b = &r.body;
        let info = &b["info"];
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        let provenance: BTreeMap<String, String> = info["provenance"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let files: Vec<ModelFile> = b["files"]
            .as_str()
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some(ModelFile {
                    name: f.next()?.to_owned(),
                    bytes: f.next()?.parse().ok()?,
                    blake3: f.next()?.to_owned(),
                })
            })
            .collect();
        let format = if files.iter().any(|f| f.name.ends_with(".gguf")) {
            Some("gguf".to_owned())
        } else if files.iter().any(|f| f.name.ends_with(".safetensors")) {
            Some("safetensors".to_owned())
        } else {
            None
        };
        let license = ["general.license", "license"]
            .iter()
            .find_map(|k| provenance.get(*k).cloned());
        Some(ModelFacts {
            digest,
            name: text(&b["name"]).unwrap_or_default(),
            arch: text(&b["arch"]).or_else(|| text(&info["arch"])),
            format,
            quantization: text(&info["quantization"]).filter(|q| !q.is_empty()),
            parameters: info["parameters"].as_u64(),
            context_length: info["context_length"].as_u64().or(b["context"].as_u64()),
            license,
            provenance,
            files,
            seq: r.seq,
            time: r.time.clone(),
            loaded_by: actor_label(&r.actor),
        })
    }
}

/// Replays model records: the pool of loaded models by name, emptied at
/// each `daemon.start` (a start loads its models again, each a record).
#[derive(Default)]
pub struct Pool {
    loaded: BTreeMap<String, ModelFacts>,
}

impl Pool {
    /// Applies one record.
    pub fn apply(&mut self, r: &Record) {
        match r.kind.as_str() {
            "daemon.start" => self.loaded.clear(),
            "model.loaded" => {
                if let Some(f) = ModelFacts::of(r) {
                    self.loaded.insert(f.name.clone(), f);
                }
            }
            "model.unload" => {
                if let Some(name) = r.body["name"].as_str() {
                    self.loaded.remove(name);
                }
            }
            _ => {}
        }
    }

    /// The models loaded now, by name.
    pub fn loaded(&self) -> impl Iterator<Item = &ModelFacts> {
        self.loaded.values()
    }
}
