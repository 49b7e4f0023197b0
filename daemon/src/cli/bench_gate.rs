//! `cairn bench gate`: what the audit gate costs a request (both of its
//! records: `inference.request` before the model runs, `inference.result`
//! after), at several numbers of concurrent clients, against a real
//! generation measured in the same run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_attest::payload::PayloadPolicy;
use cairn_attest::{Actor, Keyring, Ledger, LedgerConfig};
use cairn_inference::generate::{generate, Format, GgufType, ModelSpec};
use cairn_inference::{DigestCache, Engine, GenerateParams, Generation, LoadOptions};

use crate::server::metrics::Metrics;
use crate::server::models::Model;
use crate::server::{records, Gate};

/// How much each level does.
pub(super) struct Load {
    /// Requests per run of a level.
    pub requests: u64,
    /// Runs of each level.
    pub rounds: usize,
    /// Tokens in the reference generation.
    pub gen_tokens: usize,
}

/// Runs the benchmark; see [`super::bench::BenchCommand::Gate`].
pub(super) fn run(
    model: Option<PathBuf>,
    clients: &[usize],
    load: Load,
    store_payloads: bool,
    signing_threads: usize,
) -> anyhow::Result<ExitCode> {
    let Load {
        requests,
        rounds,
        gen_tokens,
    } = load;
    if requests == 0 || clients.contains(&0) || gen_tokens == 0 || rounds == 0 {
        bail!("--requests, --clients, --gen-tokens and --rounds must be at least 1");
    }
    let tmp = tempfile::tempdir()?;
    let model_path = match model {
        Some(p) => p,
        None => generate(
            &ModelSpec::tiny_llama(7),
            Format::Gguf(GgufType::F32),
            &tmp.path().join("model"),
        )?,
    };
    let engine = Engine::load(
        &model_path,
        &LoadOptions {
            digest_cache: DigestCache::Off,
            ..LoadOptions::default()
        },
    )
    .with_context(|| format!("cannot load {}", model_path.display()))?;
    let model = Arc::new(Model {
        name: "bench".into(),
        digest: engine.digest().digest.clone(),
        engine,
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "cairn bench gate: {requests} requests per level, {cores} cores, {} signing threads, payloads {}, model {} ({})",
        if signing_threads == 0 { cores } else { signing_threads },
        if store_payloads { "stored" } else { "hash-only" },
        model_path.display(),
        model.digest
    );
    let config = LedgerConfig {
        payload_policy: if store_payloads {
            PayloadPolicy::Store
        } else {
            PayloadPolicy::HashOnly
        },
        signing_threads,
        ..LedgerConfig::default()
    };
    let (generation, gen_time) = time_generation(&model.engine, gen_tokens)?;
    println!(
        "generation              {:>9.1} ms for {} tokens (median of 3; {} prompt tokens)",
        gen_time.as_secs_f64() * 1e3,
        generation.tokens.len(),
        generation.prompt_tokens.len()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = |label: String, wall: Duration, lat: &mut Vec<Duration>| {
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
        let (p50, p99) = (pct(0.5), pct(0.99));
        let share = |d: Duration| d.as_secs_f64() / gen_time.as_secs_f64() * 100.0;
        println!(
            "{label}   {:>9.0} requests/s through the gate   p50 {:>6.2} ms  p99 {:>6.2} ms   = {:.3}% / {:.3}% of the generation",
            lat.len() as f64 / wall.as_secs_f64(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            share(p50),
            share(p99),
        );
    };
    for &c in clients {
        let (mut all, mut all_wall) = (Vec::new(), Duration::ZERO);
        for round in 0..rounds {
            let dir = tmp.path().join(format!("ledger-{c}-{round}"));
            let keys = Keyring::create(
                &crate::cli::keys::keys_dir(&dir),
                &crate::cli::keys::default_origin(),
            )?;
            let ledger = Arc::new(Ledger::open(&dir, keys, config.clone())?);
            let gate = Gate::new(ledger.clone(), Arc::new(Metrics::default()));
            let (wall, mut lat) = rt.block_on(level(&gate, &model, &generation, c, requests))?;
            drop(gate);
            if let Some(ledger) = Arc::into_inner(ledger) {
                drop(ledger);
            }
            std::fs::remove_dir_all(&dir)?;
            let label = if rounds > 1 {
                format!("{c:>3} clients, round {}", round + 1)
            } else {
                format!("{c:>3} clients")
            };
            report(label, wall, &mut lat);
            all.extend(lat);
            all_wall += wall;
        }
        if rounds > 1 {
            report(
                format!("{c:>3} clients, all {rounds} rounds"),
                all_wall,
                &mut all,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A greedy generation of `n` tokens after a 128-token prompt, timed three
/// times; the last generation and the median time.
fn time_generation(engine: &Engine, n: usize) -> anyhow::Result<(Generation, Duration)> {
    let vocab = engine.vocab_size() as u32;
    let prompt_len = 128.min(engine.context_len().saturating_sub(n + 1)).max(1);
    let prompt: Vec<u32> = (0..prompt_len as u32)
        .map(|i| (i * 7 + 3) % vocab)
        .collect();
    let params = GenerateParams {
        max_new_tokens: n,
        stop_at_eos: false,
        ..GenerateParams::default()
    };
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let t = Instant::now();
        last = Some(engine.generate_tokens(&prompt, &params)?);
        times.push(t.elapsed());
    }
    times.sort_unstable();
    Ok((last.context("no generation ran")?, times[1]))
}

/// `clients` tasks passing `requests` request/result record pairs through
/// the gate; the wall time and each request's gate latency.
async fn level(
    gate: &Gate,
    model: &Arc<Model>,
    generation: &Generation,
    clients: usize,
    requests: u64,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (gate, model, generation, next) = (
            gate.clone(),
            model.clone(),
            generation.clone(),
            next.clone(),
        );
        tasks.spawn(async move {
            let actor = Actor::Unix {
                uid: 1000,
                gid: 1000,
                pid: 4000 + client as i32,
                exe: Some("/usr/bin/python3".into()),
            };
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let t = Instant::now();
                let request = gate
                    .pass(records::request(
                        actor.clone(),
                        &model,
                        serde_json::json!({
                            "endpoint": "/v1/chat/completions",
                            "model_name": model.name,
                            "params": {"max_tokens": generation.tokens.len(), "stream": false},
                            "prompt_tokens": generation.prompt_tokens.len(),
                        }),
                        (
                            "messages",
                            br#"[{"role":"user","content":"a question of a few hundred bytes"}]"#
                                .repeat(4),
                        ),
                    ))
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                gate.pass(records::result(
                    actor.clone(),
                    &model,
                    &request,
                    &generation,
                ))
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    Ok((started.elapsed(), all))
}
