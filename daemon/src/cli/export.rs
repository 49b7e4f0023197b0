//! `cairn export`: a bundle of the log for offline verification, recorded
//! in the log by the running daemon.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use cairn_attest::bundle;
use cairn_attest::ledger_files::LedgerFiles;

use crate::client::{checkpoint_now, request};
use crate::server::records::ExportMedium;

/// How much of the log a bundle holds.
#[derive(Debug, Clone, Copy)]
pub(super) enum Extent {
    /// From the previous recorded export, when there is one (the default).
    SincePrevious,
    /// Everything.
    Full,
    /// Continuing an export of this size.
    From(u64),
}

/// What [`write`] did.
pub(super) struct Written {
    /// The bundle.
    pub exported: bundle::Exported,
    /// Its `ledger.export` record (the daemon's receipt), when a daemon
    /// recorded it.
    pub record: Option<serde_json::Value>,
    /// The socket asked (or tried) for the record.
    pub socket: PathBuf,
    /// Whether the bundle carries `verify.html`.
    pub with_verifier: bool,
}

/// Writes a bundle of the ledger in `ledger` into a new directory in `to`.
/// With a daemon at `socket` (default: the ledger's `cairnd.sock`, when a
/// daemon answers there), asks it to checkpoint first, so the bundle holds
/// every record so far, and to record the export (with `medium`, when
/// given) before the bundle gets its name; without one, exports up to the
/// last checkpoint, unrecorded. `ready` is called with the bundle's
/// smallest possible size, in bytes, before anything is written.
pub(super) fn write(
    ledger: &Path,
    to: &Path,
    socket: Option<PathBuf>,
    verifier: Option<&Path>,
    extent: Extent,
    medium: Option<&ExportMedium>,
    ready: impl FnOnce(u64) -> anyhow::Result<()>,
) -> anyhow::Result<Written> {
    let page = crate::verifier_page::load(verifier)?;
    let explicit = socket.is_some();
    let socket = socket.unwrap_or_else(|| ledger.join("cairnd.sock"));
    let daemon = checkpoint_now(&socket, explicit)
        .context("the daemon that must record the export")?
        .then(|| socket.clone());
    let files =
        LedgerFiles::open(ledger).with_context(|| format!("cannot read {}", ledger.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let log = files.log_bytes();
    let from = match extent {
        Extent::SincePrevious => bundle::previous_export(&log),
        Extent::Full => None,
        Extent::From(f) => Some(f),
    };
    // At least the records it holds (from the predecessor on) and the
    // checkpoints.
    let at_least = log
        .entries
        .iter()
        .skip(from.map_or(0, |f| f.saturating_sub(1)) as usize)
        .chain(&log.checkpoints)
        .map(|s| s.bytes.len() as u64)
        .sum::<u64>()
        + page.as_ref().map_or(0, |p| p.len() as u64);
    ready(at_least)?;
    let quote = match &daemon {
        Some(socket) => tpm_quote(socket, &log)?,
        None => None,
    };
    let attachments: Vec<(&str, &[u8])> = quote
        .iter()
        .map(|q| (cairn_hw::tpm::checkpoint_quote::FILE, q.as_slice()))
        .collect();
    let opts = bundle::ExportOptions {
        now,
        verifier: page.as_deref(),
        from,
        attachments: &attachments,
    };
    let (mut record, mut bundle_dir) = (None, None);
    let exported = bundle::export(&log, to, &opts, |e| {
        let Some(socket) = &daemon else {
            return Ok(());
        };
        bundle_dir = Some(e.dir.clone());
        let m = &e.manifest;
        let mut body = serde_json::json!({
            "bundle": e.dir.file_name().map(|n| n.to_string_lossy()),
            "records": m.records,
            "root": m.root,
            "identity_fingerprint": m.identity_fingerprint,
            "sums_sha256": e.sums_sha256,
        });
        if let Some(medium) = medium {
            body["medium"] = serde_json::json!(medium);
        }
        let answer = request(
            socket,
            "POST",
            "/v1/admin/exports",
            Some(body.to_string().into()),
        )
        .and_then(|r| r.ok())
        .and_then(|r| r.json())
        .map_err(|e| {
            cairn_attest::Error::Invalid(format!("the daemon did not record the export: {e:#}"))
        })?;
        record = Some(answer["cairn"]["record"].clone());
        Ok(())
    })
    .map_err(|err| {
        // Recorded, but no bundle got its name (the stick was pulled
        // before the rename): the log says so too.
        let recorded = record.as_ref().and_then(|r| r["seq"].as_u64());
        let named = bundle_dir.as_ref().is_some_and(|d| d.exists());
        match (&daemon, recorded) {
            (Some(socket), Some(seq)) if !named => match record_failure(
                socket,
                seq,
                &crate::server::records::failure_reason(&err.to_string()),
            ) {
                Ok(()) => anyhow::Error::new(err).context(format!(
                    "export record {seq} is followed by a ledger.export_failed record"
                )),
                Err(e) => anyhow::Error::new(err).context(format!(
                    "export record {seq} names a bundle that was not completed, and the daemon could not record that: {e:#}"
                )),
            },
            _ => err.into(),
        }
    })
    .with_context(|| format!("cannot export to {}", to.display()))?;
    Ok(Written {
        exported,
        record,
        socket,
        with_verifier: page.is_some(),
    })
}

/// Asks the daemon at `socket` to record that the export of record `seq`
/// failed after it was recorded.
fn record_failure(socket: &Path, seq: u64, reason: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({ "record": seq, "reason": reason });
    request(
        socket,
        "POST",
        "/v1/admin/exports/failed",
        Some(body.to_string().into()),
    )?
    .ok()?;
    Ok(())
}

/// Asks the daemon at `socket` for its TPM's quote over the checkpoint an
/// export of `log` stops at (`tpm-quote.json`): `None` when it has no TPM,
/// or, with a warning, when the TPM failed (the export goes on; its record
/// then has no `tpm`).
fn tpm_quote(
    socket: &Path,
    log: &cairn_attest::verify::LogBytes<'_>,
) -> anyhow::Result<Option<Vec<u8>>> {
    use base64::Engine as _;
    let Ok((_, note)) = crate::tpm::exported_checkpoint(log) else {
        return Ok(None); // nothing to export; `bundle::export` says so
    };
    let body = serde_json::json!({
        "checkpoint": base64::engine::general_purpose::STANDARD.encode(&note),
    });
    let answer = request(
        socket,
        "POST",
        "/v1/admin/tpm/quote",
        Some(body.to_string().into()),
    )?;
    if answer.status == 404 {
        return Ok(None);
    }
    match answer.ok() {
        Ok(r) => {
            // Parsed, so that the bundle never carries something else.
            let q: cairn_hw::tpm::checkpoint_quote::CheckpointQuote =
                serde_json::from_slice(&r.body).context("the daemon's quote does not parse")?;
            let mut bytes = serde_json::to_vec_pretty(&q)?;
            bytes.push(b'\n');
            Ok(Some(bytes))
        }
        Err(e) => {
            eprintln!("cairn export: warning: no TPM quote in this bundle: {e:#}");
            Ok(None)
        }
    }
}

/// `cairn export --to DIR`: [`write`], and what was written, printed.
pub(super) fn run(
    ledger: &Path,
    to: &Path,
    socket: Option<PathBuf>,
    verifier: Option<&Path>,
    extent: Extent,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let Written {
        exported,
        record,
        socket,
        with_verifier,
    } = write(ledger, to, socket, verifier, extent, None, |_| Ok(()))?;
    let m = &exported.manifest;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dir": exported.dir,
                "manifest": m,
                "sums_sha256": exported.sums_sha256,
                "record": record,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("exported    {}", exported.dir.display());
    println!("log         {}", m.origin);
    println!(
        "records     {} (up to the checkpoint with root {})",
        m.records, m.root
    );
    println!("identity    {}", m.identity_fingerprint);
    if !with_verifier {
        println!(
            "verify.html not included (none at {}; pass --verifier PATH)",
            crate::verifier_page::INSTALLED
        );
    }
    match &record {
        Some(r) => println!("recorded    as record {} (ledger.export)", r["seq"]),
        None => println!(
            "recorded    no: no daemon answered at {} (records after the last checkpoint are not in this bundle)",
            socket.display()
        ),
    }
    println!(
        "verify with: cairn verify {} --key {}",
        exported.dir.display(),
        m.identity_fingerprint
    );
    Ok(ExitCode::SUCCESS)
}
