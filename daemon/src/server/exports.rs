//! Export bundles on the daemon's own schedule (`[export]` in the
//! configuration): every `every_secs`, when anything but the previous
//! export's own record was added, the daemon checkpoints, writes a bundle
//! into `dir` (as `cairn export` would), records it (`ledger.export`, by
//! the system) before the bundle gets its name, and keeps the newest
//! `keep` bundles there.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_attest::bundle;
use cairn_attest::ledger_files::LedgerFiles;
use cairn_attest::Actor;

use super::gate::Gate;
use super::records::{self, ExportFacts};
use super::tpm_start::TpmState;
use crate::config::ExportSection;

/// Starts the schedule, if `[export] dir` is set; it ends (after any
/// export under way) when `stop` turns true.
pub(super) fn spawn(
    gate: Gate,
    state_dir: PathBuf,
    cfg: ExportSection,
    tpm: Option<std::sync::Arc<TpmState>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let dir = cfg.dir.clone()?;
    Some(tokio::spawn(async move {
        // Read at each export, so an updated page is picked up.
        let verifier = cfg.verifier.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(cfg.every_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_export_seq = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let size = gate.ledger().size();
            if last_export_seq.is_some_and(|seq: u64| size <= seq + 1) {
                continue; // nothing new but our own record
            }
            let (gate, state_dir, dir) = (gate.clone(), state_dir.clone(), dir.clone());
            let (keep, verifier, tpm) = (cfg.keep, verifier.clone(), tpm.clone());
            let done = tokio::task::spawn_blocking(move || {
                export_once(
                    &gate,
                    &state_dir,
                    &dir,
                    keep,
                    verifier.as_deref(),
                    tpm.as_deref(),
                )
            })
            .await;
            match done {
                Ok(Ok(seq)) => last_export_seq = Some(seq),
                Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "scheduled export failed"),
                Err(e) => tracing::error!(error = %e, "scheduled export stopped"),
            }
        }
    }))
}

/// One export: checkpoint, the TPM's quote over it (when there is a TPM;
/// an export without one is still made, and its record says so by lacking
/// `tpm`), bundle, record, prune. Returns the sequence number of the
/// export's record. Runs on a blocking thread.
fn export_once(
    gate: &Gate,
    state_dir: &Path,
    dir: &Path,
    keep: usize,
    verifier: Option<&Path>,
    tpm: Option<&TpmState>,
) -> anyhow::Result<u64> {
    let page = crate::verifier_page::load(verifier)?;
    gate.ledger().checkpoint()?;
    let files = LedgerFiles::open(state_dir)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let handle = tokio::runtime::Handle::current();
    let mut recorded = None;
    let log = files.log_bytes();
    let quote = match tpm {
        Some(t) => match crate::tpm::exported_checkpoint(&log)
            .and_then(|(size, note)| t.attest(size, &note))
        {
            Ok(q) => Some(serde_json::to_vec_pretty(&q)?),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the TPM did not quote the scheduled export");
                None
            }
        },
        None => None,
    };
    let attachments: Vec<(&str, &[u8])> = quote
        .iter()
        .map(|q| (cairn_hw::tpm::checkpoint_quote::FILE, q.as_slice()))
        .collect();
    let opts = bundle::ExportOptions {
        now,
        verifier: page.as_deref(),
        from: bundle::previous_export(&log),
        attachments: &attachments,
    };
    let exported = bundle::export(&log, dir, &opts, |e| {
        let m = &e.manifest;
        let name = e.dir.file_name().map(|n| n.to_string_lossy().into_owned());
        let draft = records::export(
            Actor::System {
                name: "scheduled-export".into(),
            },
            &ExportFacts {
                bundle: name.as_deref().unwrap_or_default(),
                records: m.records,
                root: &m.root,
                identity_fingerprint: &m.identity_fingerprint,
                sums_sha256: &e.sums_sha256,
                medium: None,
                tpm: tpm.and_then(|t| t.export_facts(m.records)),
            },
        );
        let receipt = handle
            .block_on(gate.pass(draft))
            .map_err(|e| cairn_attest::Error::Invalid(e.message))?;
        recorded = Some((receipt, name));
        Ok(())
    });
    let exported = match exported {
        Ok(e) => e,
        Err(err) => {
            // Recorded, but the bundle did not get its name: the log says
            // so too.
            let named = |n: &Option<String>| n.as_ref().is_some_and(|n| dir.join(n).exists());
            if let Some((receipt, name)) = recorded.filter(|(_, n)| !named(n)) {
                let draft = records::export_failed(
                    Actor::System {
                        name: "scheduled-export".into(),
                    },
                    receipt.reference(),
                    name.as_deref().unwrap_or_default(),
                    &err.to_string(),
                );
                if let Err(e) = handle.block_on(gate.pass(draft)) {
                    tracing::error!(error = %e.message, "cannot record the failed export");
                }
            }
            return Err(err.into());
        }
    };
    tracing::info!(bundle = %exported.dir.display(), records = exported.manifest.records, "exported");
    prune(dir, keep)?;
    recorded
        .map(|(receipt, _)| receipt.seq)
        .ok_or_else(|| anyhow::anyhow!("the export was not recorded"))
}

/// Removes all but the newest `keep` bundles in `dir` (by checkpoint size,
/// then time, as their names say); other files are left alone.
fn prune(dir: &Path, keep: usize) -> anyhow::Result<()> {
    let mut bundles: Vec<((u64, u64), PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let mut parts = name.strip_prefix("cairn-export-")?.split('-');
            let size = parts.next()?.parse().ok()?;
            let time = parts.next()?.parse().ok()?;
            Some(((size, time), e.path()))
        })
        .collect();
    bundles.sort();
    let excess = bundles.len().saturating_sub(keep);
    for (_, path) in bundles.into_iter().take(excess) {
        std::fs::remove_dir_all(&path)?;
    }
    Ok(())
}
