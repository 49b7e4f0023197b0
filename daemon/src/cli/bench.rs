//! `cairn bench ledger`: the audit core's throughput against its bare
//! cryptographic ceilings, measured in the same run. (`cairn bench gate`,
//! `sign`, `inference`: see `bench_gate`, `bench_sign`, `bench_inference`.)

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_attest::keys::{Signer, SoftwareMlDsa65, CTX_RECORD};
use cairn_attest::ledger_files::LedgerFiles;
use cairn_attest::payload::PayloadPolicy;
use cairn_attest::verify::{verify_log, Options};
use cairn_attest::{Actor, Keyring, Ledger, LedgerConfig, RecordDraft};
use clap::Subcommand;

#[derive(Subcommand)]
pub(super) enum BenchCommand {
    /// Durable appends/s and verified records/s, each as a ratio of the
    /// bare ML-DSA-65 sign and verify ceilings (the ledger's own signer and
    /// verifier) measured on all cores.
    Ledger {
        /// How many synthetic records to append.
        #[arg(long, default_value_t = 10_000)]
        records: u64,
        /// Leave the ledger in DIR (it must not hold one); `cairn verify DIR`
        /// accepts it. Default: a temporary directory, removed afterwards.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Concurrent appenders (default: eight per core, as a busy daemon has).
        #[arg(long)]
        appenders: Option<usize>,
    },
    /// What the audit gate costs one request (its request and result
    /// records), at several numbers of concurrent clients, as a share of a
    /// real generation measured in the same run.
    Gate {
        /// The model to generate with (default: a generated tiny one).
        /// The reference: a Qwen2.5-0.5B-shaped Q4_0 GGUF.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Concurrent clients, one level after another.
        #[arg(long, default_value = "1,8,64", value_delimiter = ',')]
        clients: Vec<usize>,
        /// Requests per level.
        #[arg(long, default_value_t = 500)]
        requests: u64,
        /// Tokens in the reference generation.
        #[arg(long, default_value_t = 64)]
        gen_tokens: usize,
        /// Keep the payloads (`store`, cairnd's default: salt and bytes
        /// written and fdatasync'd in the payload store with the record) or
        /// only their commitments (`hash-only`).
        #[arg(long, default_value = "store", value_parser = ["store", "hash-only"])]
        payloads: String,
        /// Signing threads (0: one per core, cairnd's default; 1 turns off
        /// racing idle signers on a lone record).
        #[arg(long, default_value_t = 0)]
        signing_threads: usize,
        /// Runs of each level, each on a fresh ledger; with more than one,
        /// the percentiles of all their requests together follow.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// One record signature's latency, as the ledger's signer makes it
    /// (libcrux-ml-dsa, each signature checked by fips204), against
    /// fips204's `try_sign` alone, alternating on one thread.
    Sign {
        /// Signatures of each kind.
        #[arg(long, default_value_t = 2_000)]
        signatures: usize,
    },
    /// Prompt-processing and decode tokens/s of a model file, to compare
    /// with llama.cpp's `llama-bench -p 128 -n 64 -t N` on the same file.
    Inference {
        /// A `.gguf` file or a safetensors directory.
        #[arg(long)]
        model: PathBuf,
        /// CPU threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Prompt length.
        #[arg(long, default_value_t = 128)]
        prompt_tokens: usize,
        /// Tokens to generate.
        #[arg(long, default_value_t = 64)]
        gen_tokens: usize,
        /// Runs (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Ledger {
            records,
            out,
            appenders,
        } => ledger(records, out, appenders),
        BenchCommand::Gate {
            model,
            clients,
            requests,
            gen_tokens,
            payloads,
            signing_threads,
            rounds,
        } => super::bench_gate::run(
            model,
            &clients,
            super::bench_gate::Load {
                requests,
                rounds,
                gen_tokens,
            },
            payloads == "store",
            signing_threads,
        ),
        BenchCommand::Inference {
            model,
            threads,
            prompt_tokens,
            gen_tokens,
            runs,
            json,
        } => super::bench_inference::run(&model, threads, prompt_tokens, gen_tokens, runs, json),
        BenchCommand::Sign { signatures } => super::bench_sign::run(signatures, &sample_text()?),
    }
}

/// A synthetic record shaped like an inference request record.
fn synthetic(i: u64) -> RecordDraft {
    let mut d = RecordDraft::new(
        "inference.request",
        Actor::Unix {
            uid: 1000,
            gid: 1000,
            pid: 4242,
            exe: Some("/usr/bin/python3.11".into()),
        },
        serde_json::json!({
            "endpoint": "/v1/chat/completions",
            "request_id": format!("req-{i:016x}"),
            "params": {"max_tokens": 64, "temperature": 0.7, "top_p": 0.95, "stream": true},
            "prompt_tokens": 118,
        }),
    );
    d.model =
        Some("blake3:5f1e0c9d2a7b44e1a9f3c6d0b8e2f71a4c5d6e7f8091a2b3c4d5e6f708192a3b".into());
    d.payloads = vec![(
        "prompt".into(),
        format!("synthetic prompt {i}").into_bytes(),
    )];
    d
}

fn ledger(
    records: u64,
    out: Option<PathBuf>,
    appenders: Option<usize>,
) -> anyhow::Result<ExitCode> {
    if records == 0 {
        bail!("--records must be at least 1");
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let appenders = appenders.unwrap_or(cores * 8).max(1);
    let tmp;
    let dir = match out {
        Some(d) => {
            if d.join(cairn_attest::ledger::RECORDS_JOURNAL).exists() {
                bail!(
                    "{} already holds a ledger; choose an empty directory",
                    d.display()
                );
            }
            d
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("ledger")
        }
    };
    println!(
        "cairn bench ledger: {records} records, {appenders} appenders, {cores} cores, ledger in {}",
        dir.display()
    );

    let msg = sample_text()?;
    // Shared machines drift: the ceilings are measured before and after
    // the ledger phases, and the ratios use their mean.
    let (sign_before, verify_before) = ceilings(&msg, cores)?;

    let keys = Keyring::create(
        &crate::cli::keys::keys_dir(&dir),
        &crate::cli::keys::default_origin(),
    )
    .with_context(|| format!("cannot create keys in {}", dir.display()))?;
    let config = LedgerConfig {
        payload_policy: PayloadPolicy::HashOnly,
        ..LedgerConfig::default()
    };
    let ledger = Arc::new(Ledger::open(&dir, keys, config)?);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..appenders)
            .map(|_| {
                let (ledger, next) = (ledger.clone(), next.clone());
                s.spawn(move || -> anyhow::Result<Vec<Duration>> {
                    let mut lat = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= records {
                            return Ok(lat);
                        }
                        let t = Instant::now();
                        ledger.append(synthetic(i))?;
                        lat.push(t.elapsed());
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("an appender panicked"))??,
            );
        }
        anyhow::Ok(all)
    })?;
    let append_secs = started.elapsed().as_secs_f64();
    ledger.checkpoint()?;
    drop(Arc::into_inner(ledger));
    let append_rate = records as f64 / append_secs;
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let (p50, p99) = (pct(0.5), pct(0.99));

    // Verification is short; take the median of three passes.
    let files = LedgerFiles::open(&dir)?;
    let log = files.log_bytes();
    let mut rates = Vec::with_capacity(3);
    let mut report = None;
    for _ in 0..3 {
        let started = Instant::now();
        let r = verify_log(&log, &Options::default());
        rates.push(r.records as f64 / started.elapsed().as_secs_f64());
        if !r.ok() {
            bail!(
                "the benchmark ledger does not verify: {:?}",
                r.findings.first()
            );
        }
        report = Some(r);
    }
    let report = report.context("no verification pass ran")?;
    rates.sort_by(f64::total_cmp);
    let verify_rate = rates[1];
    let (sign_after, verify_after) = ceilings(&msg, cores)?;
    let sign_rate = (sign_before + sign_after) / 2.0;
    let verify_ceiling = (verify_before + verify_after) / 2.0;
    println!("ML-DSA-65 sign+check    {sign_rate:>9.0} /s  (all {cores} cores, the ledger's signer; {sign_before:.0} before, {sign_after:.0} after)");
    println!("ML-DSA-65 verify        {verify_ceiling:>9.0} /s  (all {cores} cores; {verify_before:.0} before, {verify_after:.0} after)");
    println!(
        "durable appends         {append_rate:>9.0} /s  = {:.2} x sign ceiling   (latency p50 {p50:.2} ms, p99 {p99:.2} ms)",
        append_rate / sign_rate
    );
    println!(
        "verify                  {verify_rate:>9.0} /s  = {:.2} x verify ceiling ({} records, {} checkpoints; median of 3 passes)",
        verify_rate / verify_ceiling,
        report.records,
        report.checkpoints
    );
    let raw: u64 = log.entries.iter().map(|e| e.bytes.len() as u64).sum();
    let disk = disk_usage(&dir)? - disk_usage(&crate::cli::keys::keys_dir(&dir))?;
    println!(
        "disk                    {:>9.1} MB for {:.1} MB of sealed records = {:.2} x  ({} B per record)",
        disk as f64 / 1e6,
        raw as f64 / 1e6,
        disk as f64 / raw as f64,
        raw / report.records
    );
    Ok(ExitCode::SUCCESS)
}

/// About as many bytes as a request record's text, to sign.
fn sample_text() -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(&synthetic(0).body)?.repeat(3))
}

/// Bare ML-DSA-65 signs/s and verifies/s with one thread per core, each
/// measured for about two seconds, with the ledger's own signer and
/// verifier.
fn ceilings(msg: &[u8], cores: usize) -> anyhow::Result<(f64, f64)> {
    let key = SoftwareMlDsa65::from_seed("bench.example/log", &[7; 32])?;
    let sig = key.sign(msg, CTX_RECORD)?;
    let per_core = |work: &(dyn Fn() + Sync)| -> f64 {
        let window = Duration::from_secs(2);
        let done = AtomicU64::new(0);
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..cores {
                s.spawn(|| {
                    while started.elapsed() < window {
                        work();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
    };
    let sign = per_core(&|| {
        let _ = std::hint::black_box(key.sign(msg, CTX_RECORD));
    });
    let verify = per_core(&|| {
        std::hint::black_box(key.public_key().verify(msg, &sig, CTX_RECORD));
    });
    Ok((sign, verify))
}

/// Bytes allocated on disk under `path` (files' blocks, recursively).
fn disk_usage(path: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).with_context(|| path.display().to_string())?;
    if !meta.is_dir() {
        return Ok(meta.blocks() * 512);
    }
    let mut total = 0;
    for e in std::fs::read_dir(path)? {
        total += disk_usage(&e?.path())?;
    }
    Ok(total)
}
