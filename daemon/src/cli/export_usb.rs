//! `cairn export --usb`: a bundle onto a USB stick through UDisks2. The
//! stick is found and mounted, checked (writable, enough space), the bundle
//! written as `cairn export --to` writes it (a hidden `.partial`
//! directory, synced, renamed last), its pages dropped from the cache and
//! read back and verified as `cairn verify` does, and the stick unmounted
//! and powered off. A full, read-only or pulled stick gives a clear error
//! and nothing named like a bundle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, Context};
use cairn_hw::usb::{Medium, Mounted, RemovableMedia, UDisks2};

use super::export::{write, Extent, Written};
use super::verify::Opened;
use crate::server::records::ExportMedium;

/// UDisks2 on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` when set), or,
/// when it is not set and the daemon at `socket` runs with emulated
/// hardware, on that daemon's private bus with its emulated stick.
fn media_for(socket: &Path) -> anyhow::Result<UDisks2> {
    if std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_none() {
        let health = crate::client::request(socket, "GET", "/healthz", None)
            .ok()
            .and_then(|r| r.json().ok());
        let bus = health
            .as_ref()
            .and_then(|h| h["emulated_hw"]["usb"]["bus"].as_str());
        if let Some(bus) = bus {
            eprintln!("cairn export: onto the daemon's emulated USB stick (bus {bus})");
            return Ok(UDisks2::at(bus)?);
        }
    }
    Ok(UDisks2::system()?)
}

/// Exports the ledger in `ledger` onto the stick `want` names (or the only
/// one plugged in); see [`write`] for `socket`, `verifier` and `extent`.
pub(super) fn run(
    ledger: &Path,
    want: Option<&str>,
    socket: Option<PathBuf>,
    verifier: Option<&Path>,
    extent: Extent,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let daemon_socket = socket.clone().unwrap_or_else(|| ledger.join("cairnd.sock"));
    let media = media_for(&daemon_socket)?;
    let medium = media.choose(want)?;
    let facts = ExportMedium {
        label: medium.label.clone(),
        uuid: medium.uuid.clone(),
        serial: medium.serial.clone(),
        model: medium.model.clone(),
        device: medium.device.clone(),
    };
    let name = medium.describe();
    let stick = Mounted::mount(&media, medium)?;
    let written = write(
        ledger,
        stick.path(),
        socket,
        verifier,
        extent,
        Some(&facts),
        |n| {
            stick.check_writable(n)?;
            Ok(())
        },
    );
    let Written {
        exported,
        record,
        socket,
        with_verifier,
    } = match written {
        Ok(w) => w,
        Err(e) if !stick.is_present() => {
            return Err(e.context(format!(
                "the stick {name} was pulled out during the export: no complete bundle is on it \
                 (a .cairn-export-….partial directory may be); plug it in and export again"
            )))
        }
        Err(e) => return Err(e.context(format!("on the stick {name}"))),
    };
    let wrote = Instant::now();
    let dir = &exported.dir;
    let m = &exported.manifest;
    stick.flush_and_forget(dir)?;
    let report = {
        // Closed (its journals unmapped) before the stick is unmounted.
        let opened = Opened::open(dir).context("reading the bundle back from the stick")?;
        opened.verify(&opened.log(), Some(m.identity_fingerprint.clone()))
    };
    if let Some(f) = report.findings.first() {
        return Err(anyhow!(
            "the bundle read back from the stick {name} does not verify ({}: {}): do not use it; \
             the stick is unmounted but not powered off",
            f.subject,
            f.why
        ));
    }
    let verified_in = wrote.elapsed();
    let (files, bytes) = size_of(dir)?;
    let bundle = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mount_point = stick.path().to_path_buf();
    let medium: Medium = stick.medium().clone();
    let ejected = stick.eject()?;
    let seconds = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "medium": facts,
                "mount_point": mount_point,
                "bundle": bundle,
                "dir": dir,
                "files": files,
                "bytes": bytes,
                "manifest": m,
                "sums_sha256": exported.sums_sha256,
                "record": record,
                "verified": true,
                "verified_records": report.records,
                "powered_off": ejected.powered_off,
                "seconds": seconds,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("stick       {}", medium.describe());
    println!("exported    {bundle} ({files} files, {bytes} bytes)");
    println!(
        "records     {} (up to the checkpoint with root {})",
        m.records, m.root
    );
    println!("identity    {}", m.identity_fingerprint);
    println!(
        "read back   verified: {} records, signatures, chain, checkpoints and SHA256SUMS ({:.2} s)",
        report.records,
        verified_in.as_secs_f64()
    );
    if !with_verifier {
        println!(
            "verify.html not included (none at {}; pass --verifier PATH)",
            crate::verifier_page::INSTALLED
        );
    }
    match &record {
        Some(r) => println!(
            "recorded    as record {} (ledger.export, with the stick's label, UUID and serial)",
            r["seq"]
        ),
        None => println!(
            "recorded    no: no daemon answered at {} (records after the last checkpoint are not in this bundle)",
            socket.display()
        ),
    }
    if ejected.powered_off {
        println!("ejected     unmounted and powered off: the stick can be pulled out");
    } else {
        println!(
            "ejected     unmounted (the drive cannot be powered off): the stick can be pulled out"
        );
    }
    println!("took        {seconds:.2} s");
    println!(
        "verify with: cairn verify STICK/{bundle} --key {}",
        m.identity_fingerprint
    );
    Ok(ExitCode::SUCCESS)
}

/// Files and bytes in `dir` (a bundle: no subdirectories).
fn size_of(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let meta = e?.metadata()?;
        files += 1;
        bytes += meta.len();
    }
    Ok((files, bytes))
}
