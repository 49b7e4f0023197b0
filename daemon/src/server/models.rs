//! The model pool: models loaded through the gate, known by name and
//! digest. A request takes an `Arc` of the model named in its request
//! record, so a swap cannot change the model a request runs on.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use cairn_attest::{Actor, Receipt, RecordDraft};
use cairn_inference::{Engine, LoadOptions};

use super::error::ApiError;
use super::gate::Gate;

/// A loaded model.
pub struct Model {
    /// The name clients use.
    pub name: String,
    /// The digest over its behaviour files.
    pub digest: String,
    /// The engine.
    pub engine: Engine,
}

/// The loaded models, by name.
#[derive(Default)]
pub struct Pool {
    models: RwLock<BTreeMap<String, Arc<Model>>>,
    preferred: RwLock<Option<String>>,
}

impl Pool {
    /// Makes `name` the default model (what clients get when they ask for
    /// none, e.g. `cairn chat` without `--model`).
    pub fn prefer(&self, name: &str) {
        *self.preferred.write().unwrap_or_else(|p| p.into_inner()) = Some(name.to_string());
    }

    /// The default model's name: the preferred one while it is loaded,
    /// else the first by name.
    pub fn default_name(&self) -> Option<String> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        self.preferred
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|n| models.contains_key(n))
            .or_else(|| models.keys().next().cloned())
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Model>> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// All models, by name.
    pub fn list(&self) -> Vec<Arc<Model>> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Loads `path` as `name` through the gate: a `model.load` record
    /// first (naming the digest it replaces, if any), then the load, then
    /// `model.loaded` (with the digest) or `model.load_failed`, each pointing
    /// at the first. Replaces a model of the same name (a swap); requests
    /// already running keep theirs. Returns the model and the receipt of
    /// its `model.loaded` record.
    pub async fn load(
        &self,
        gate: &Gate,
        actor: Actor,
        name: &str,
        path: &Path,
    ) -> Result<(Arc<Model>, Receipt), ApiError> {
        let replaces = self.get(name).map(|m| m.digest.clone());
        let intent = gate
            .pass(RecordDraft::new(
                "model.load",
                actor.clone(),
                serde_json::json!({
                    "name": name,
                    "path": path.display().to_string(),
                    "replaces": replaces,
                }),
            ))
            .await?;
        let p = path.to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || Engine::load(&p, &LoadOptions::default()))
            .await
            .map_err(|_| ApiError::internal("the model loader stopped"))?;
        match loaded {
            Ok(engine) => {
                let digest = engine.digest().digest.clone();
                let mut done = RecordDraft::new(
                    "model.loaded",
                    actor,
                    serde_json::json!({
                        "name": name,
                        "arch": engine.arch(),
                        "context": engine.context_len(),
                        "vocab": engine.vocab_size(),
                        "info": engine.info(),
                        "files": engine.digest().listing(),
                    }),
                );
                done.model = Some(digest.clone());
                done.reference = Some(intent.reference());
                let receipt = gate.pass(done).await?;
                let model = Arc::new(Model {
                    name: name.to_string(),
                    digest,
                    engine,
                });
                self.models
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_string(), model.clone());
                Ok((model, receipt))
            }
            Err(e) => {
                let mut failed = RecordDraft::new(
                    "model.load_failed",
                    actor,
                    serde_json::json!({"name": name, "error": e.to_string()}),
                );
                failed.reference = Some(intent.reference());
                gate.pass(failed).await?;
                Err(ApiError::bad_request(format!(
                    "cannot load model {name:?}: {e}"
                )))
            }
        }
    }

    /// Unloads `name` through the gate: a `model.unload` record (with the
    /// model's digest) first, then the model leaves the pool. Requests
    /// already running keep it until they finish.
    pub async fn unload(&self, gate: &Gate, actor: Actor, name: &str) -> Result<Receipt, ApiError> {
        let model = self
            .get(name)
            .ok_or_else(|| ApiError::model_not_found(name))?;
        let mut draft = RecordDraft::new("model.unload", actor, serde_json::json!({"name": name}));
        draft.model = Some(model.digest.clone());
        let receipt = gate.pass(draft).await?;
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        // Only if no swap replaced it while the record was written.
        if models.get(name).is_some_and(|m| Arc::ptr_eq(m, &model)) {
            models.remove(name);
        }
        Ok(receipt)
    }
}
