//! `cairnd`: the HTTP server, its listeners, and the daemon's life cycle,
//! each step of which is a record.

mod admin;
mod audit;
mod error;
mod exports;
mod gate;
mod hsm_monitor;
mod identity;
pub mod metrics;
pub mod models;
mod openai;
pub mod records;
mod retention;
mod review;
pub mod siem;
mod tpm_start;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cairn_attest::{Actor, Keyring, Ledger, RecordDraft};

use crate::config::{Config, HsmLostPolicy};
pub use error::ApiError;
pub use gate::Gate;
use identity::{identify, Peer, Refusal};
use metrics::Metrics;

/// Shared state of the request handlers.
#[derive(Clone)]
pub struct AppState {
    gate: Gate,
    pool: Arc<models::Pool>,
    queue: Arc<tokio::sync::Semaphore>,
    compute: Arc<tokio::sync::Semaphore>,
    metrics: Arc<Metrics>,
    config: Arc<Config>,
    started: Instant,
    hsm: Option<Arc<hsm_monitor::HsmReport>>,
    tpm: Option<Arc<tpm_start::TpmState>>,
    emulated: Option<Arc<crate::emulated_hw::EmulatedHw>>,
}

/// The caller of a request, as resolved by the access middleware.
#[derive(Clone, Debug)]
pub struct Caller(pub Actor);

fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", axum::routing::post(openai::chat))
        .route("/v1/completions", axum::routing::post(openai::completions))
        .route("/v1/audit/records", get(audit::records))
        .route("/v1/audit/records/{seq}", get(audit::record))
        .route("/v1/audit/proof/{seq}", get(audit::proof))
        .route("/v1/audit/consistency", get(audit::consistency))
        .route(
            "/v1/audit/checkpoint",
            get(audit::checkpoint).post(audit::checkpoint_now),
        )
        .route("/v1/admin/models", axum::routing::post(admin::add_model))
        .route(
            "/v1/admin/exports",
            axum::routing::post(admin::record_export),
        )
        .route(
            "/v1/admin/exports/failed",
            axum::routing::post(admin::record_export_failed),
        )
        .route("/v1/admin/tpm/quote", axum::routing::post(admin::tpm_quote))
        .route(
            "/v1/admin/anchors",
            axum::routing::post(admin::record_anchor),
        )
        .route(
            "/v1/admin/reviews",
            axum::routing::post(review::record_review),
        )
        .route(
            "/v1/admin/models/{name}",
            axum::routing::delete(admin::remove_model),
        )
        .route(
            "/v1/admin/payloads/{seq}/{name}",
            get(admin::disclose_payload),
        )
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), access))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.limits.max_body_bytes,
        ));
    api.fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(state)
}

/// Resolves the caller; refuses unknown or disallowed ones (recording each
/// refusal of a known caller as `access.denied`); counts the request.
async fn access(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = req.uri().path().to_string();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = match identify(&peer, auth.as_deref(), &s.config.tokens, &s.config.access) {
        Ok(actor) => {
            req.extensions_mut().insert(Caller(actor));
            next.run(req).await
        }
        Err(Refusal::Unauthenticated(why)) => ApiError::unauthorized(why).into_response(),
        Err(Refusal::Forbidden(actor, why)) => {
            let draft = RecordDraft::new(
                "access.denied",
                actor,
                serde_json::json!({"path": route, "reason": why}),
            );
            match s.gate.pass(draft).await {
                Ok(_) => ApiError::forbidden(why).into_response(),
                Err(e) => e.into_response(),
            }
        }
    };
    let label = if route.starts_with("/v1/audit/records/") || route.starts_with("/v1/audit/proof/")
    {
        route
            .rsplit_once('/')
            .map(|(p, _)| format!("{p}/:seq"))
            .unwrap_or(route)
    } else {
        route
    };
    s.metrics.request(&label, response.status().as_u16());
    response
}

async fn health(State(s): State<AppState>) -> Response {
    let ledger = s.gate.ledger();
    let cp = ledger.latest_checkpoint().map(|(c, _)| c.size);
    let hsm_lost = s.hsm.as_ref().is_some_and(|h| h.lost());
    let tpm_problem = s
        .tpm
        .as_ref()
        .is_some_and(|t| t.binding.problem().is_some());
    let body = serde_json::json!({
        "status": if ledger.fault().is_some() || hsm_lost || tpm_problem { "degraded" } else { "ok" },
        "fault": ledger.fault(),
        "records": ledger.size(),
        "checkpoint_size": cp,
        "uptime_s": s.started.elapsed().as_secs(),
        "log": ledger.origin(),
        "hsm": s.hsm.as_ref().map(|h| h.json()),
        "tpm": s.tpm.as_ref().map(|t| t.json()),
        "emulated_hw": s.emulated.as_ref().map(|e| e.json()),
    });
    let status = if ledger.fault().is_some() {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::OK
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let ledger = s.gate.ledger();
    let text = s.metrics.render(
        ledger.size(),
        ledger.checkpoint_age().map(|d| d.as_secs_f64()),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Options of one daemon run.
pub struct RunOptions {
    /// The configuration.
    pub config: Config,
    /// Create missing keys (demo mode) instead of refusing to start.
    pub create_keys: bool,
    /// Start even though the TPM's rollback counter does not fit the
    /// ledger (recorded as `tpm.rollback_accepted`).
    pub accept_rollback: bool,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let mut config = opts.config;
    let emulated = crate::emulated_hw::EmulatedHw::start(&mut config.hw, &config.state_dir, true)?
        .map(Arc::new);
    if let Some(e) = &emulated {
        println!("cairnd: {}", e.describe());
    }
    let config = Arc::new(config);
    let refusing = Arc::new(AtomicBool::new(false));
    let tpm = crate::tpm::OpenTpm::from_config(&config.hw, &config.state_dir)?;
    let sealer = tpm
        .as_ref()
        .map(|t| &t.sealer as &dyn cairn_attest::keys::SeedSealer);
    let (keys, hsm) = open_keys(&config, opts.create_keys, &refusing, sealer)?;
    let ledger_config = config.ledger_config()?;
    let state_dir = config.state_dir.clone();
    let ledger = tokio::task::spawn_blocking(move || Ledger::open(&state_dir, keys, ledger_config))
        .await?
        .with_context(|| format!("cannot open the ledger in {}", config.state_dir.display()))?;
    let recovery = ledger.recovery().clone();
    let ledger = Arc::new(ledger);
    let metrics = Arc::new(Metrics::default());
    let gate = Gate::new(ledger.clone(), metrics.clone());
    let system = || Actor::System {
        name: "cairnd".into(),
    };
    let hsm_present = match &hsm {
        Some(h) => hsm_monitor::record_if_absent(&gate, h, config.hw.hsm_lost).await?,
        None => true,
    };

    let tpm = match &tpm {
        Some(t) => Some(Arc::new(
            tpm_start::bind(
                &gate,
                t,
                opts.accept_rollback,
                Duration::from_secs(config.hw.tpm_counter_min_secs),
                &config.state_dir,
            )
            .await?,
        )),
        None => {
            tpm_start::without_tpm(&gate, opts.accept_rollback).await?;
            None
        }
    };
    let aborted = record_interrupted(&gate, system()).await?;
    let key_files = crate::cli::held_keys(&crate::cli::keys_dir(&config.state_dir))?;
    if tpm.is_some() && key_files.any_in_the_clear() {
        tracing::warn!("key files hold their seeds in the clear although a TPM is configured");
        eprintln!(
            "cairnd: warning: key files in {} hold their seeds in the clear although hw.tpm is set: anyone who reads them can sign as this log (and defeat the rollback counter); seal them with `cairn keys seal --config FILE`",
            crate::cli::keys_dir(&config.state_dir).display()
        );
    }

    gate.pass(RecordDraft::new(
        "daemon.start",
        system(),
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "config_digest": config.digest(),
            "aborted_requests": aborted,
            "hsm": hsm.as_ref().map(|h| h.path().display().to_string()),
            "key_files": key_files.holders(),
            "tpm": tpm.as_ref().map(|t| t.json()),
            "emulated_hw": emulated.as_ref().map(|e| e.json()),
            "recovered": {
                "reindexed": recovery.reindexed,
                "torn_tail_bytes": recovery.torn_records.as_ref().map(|t| t.bytes),
                "index_rebuilt": recovery.index_rebuilt.is_some(),
                "reindexed_payloads": recovery.reindexed_payloads,
                "torn_payload_bytes": recovery.torn_payloads.as_ref().map(|t| t.bytes),
                "migrated_payloads": recovery.migrated_payloads,
                "unmoved_payloads": recovery.unmoved_payloads.as_ref().map(|(aside, n)| {
                    serde_json::json!({"count": n, "old_index": aside.display().to_string()})
                }),
            },
        }),
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e.message))?;
    if tpm.is_some() && hsm_present {
        // The first checkpoint of this run carries the counter, so a copy
        // of the state directory taken from now on is older than the TPM
        // (without the HSM no checkpoint is signed: the monitor makes one
        // when it is back).
        let ledger = ledger.clone();
        tokio::task::spawn_blocking(move || ledger.checkpoint())
            .await?
            .context("cannot checkpoint the start")?;
    }

    let pool = Arc::new(models::Pool::default());
    for m in &config.models {
        pool.load(&gate, system(), &m.name, &m.path)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    if let Some(first) = config.models.first() {
        pool.prefer(&first.name);
    }
    if opts.create_keys && config.models.is_empty() {
        load_demo_models(&gate, &pool, &config.state_dir).await?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let hsm_monitor = hsm.map(|h| {
        hsm_monitor::spawn(
            gate.clone(),
            h,
            hsm_present,
            config.hw.clone(),
            refusing,
            stop_rx.clone(),
        )
    });
    let state = AppState {
        gate: gate.clone(),
        pool,
        queue: Arc::new(tokio::sync::Semaphore::new(config.limits.max_queue)),
        compute: Arc::new(tokio::sync::Semaphore::new(1)),
        metrics,
        config: config.clone(),
        started: Instant::now(),
        hsm: hsm_monitor.as_ref().map(|(report, _)| report.clone()),
        tpm: tpm.clone(),
        emulated: emulated.clone(),
    };
    let tpm_state = tpm;
    let app = router(state);
    let socket = bind_unix(&config)?;
    tracing::info!(socket = %config.socket_path().display(), log = ledger.origin(), records = ledger.size(), "cairnd listening");
    println!(
        "cairnd listening on {} (log {}, {} records)",
        config.socket_path().display(),
        ledger.origin(),
        ledger.size()
    );

    let mut servers = tokio::task::JoinSet::new();
    {
        let app = app.clone();
        let mut rx = stop_rx.clone();
        servers.spawn(async move {
            axum::serve(socket, app.into_make_service_with_connect_info::<Peer>())
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
        });
    }
    if let Some(addr) = config.tcp {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        println!("cairnd listening on http://{addr} (bearer tokens)");
        let mut rx = stop_rx.clone();
        servers.spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
        });
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let watchdog = spawn_watchdog(ledger.clone());
    let exports = exports::spawn(
        gate.clone(),
        config.state_dir.clone(),
        config.export.clone(),
        tpm_state,
        stop_rx.clone(),
    );

    let retention = retention::spawn(gate.clone(), config.payload_policy()?, stop_rx.clone());

    let siem = siem::Forwarder::start(&ledger, &config.siem, &config.state_dir)
        .context("cannot start forwarding to the SIEM")?;

    shutdown_signal().await?;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    while servers.join_next().await.is_some() {}
    watchdog.abort();
    if let Some((_, task)) = hsm_monitor {
        let _ = task.await;
    }
    if let Some(exports) = exports {
        let _ = exports.await;
    }
    if let Some(retention) = retention {
        let _ = retention.await;
    }
    let _ = gate
        .pass(RecordDraft::new(
            "daemon.stop",
            system(),
            serde_json::json!({"reason": "signal"}),
        ))
        .await;
    // The forwarders send what is left, the stop included, and let go of
    // the ledger.
    tokio::task::spawn_blocking(move || siem.finish()).await?;
    let _ = std::fs::remove_file(config.socket_path());
    drop(gate);
    // The last reference closes the ledger, which checkpoints every record.
    if let Some(ledger) = Arc::into_inner(ledger) {
        tokio::task::spawn_blocking(move || drop(ledger)).await?;
    }
    println!("cairnd stopped");
    Ok(())
}

/// The ledger's keys: software files in `STATE_DIR/keys`, or, with
/// `hw.hsm`, the identity key in the HSM and the other two in files (with
/// the operational key refusing while the HSM is lost, under
/// `hw.hsm_lost = "refuse-records"`). Creates missing keys in demo mode.
fn open_keys(
    config: &Config,
    create: bool,
    refusing: &Arc<AtomicBool>,
    sealer: Option<&dyn cairn_attest::keys::SeedSealer>,
) -> anyhow::Result<(Keyring, Option<Arc<cairn_hw::hsm::HsmSigner>>)> {
    let keys_dir = crate::cli::keys_dir(&config.state_dir);
    let software = keys_dir.join("identity.key").exists();
    let Some(device) = &config.hw.hsm else {
        if let Some(m) = crate::hsm::Marker::read(&keys_dir)? {
            bail!(
                "this ledger's identity key is held by the HSM created on {} ({}): set hw.hsm",
                m.path.display(),
                keys_dir.join(crate::hsm::MARKER_FILE).display()
            );
        }
        let keys = if software {
            Keyring::load_sealed(&keys_dir, sealer)?
        } else if create {
            Keyring::create_sealed(&keys_dir, &crate::cli::default_origin(), sealer)?
        } else {
            bail!(
                "no keys in {}: create them with `cairn keys init --dir {}`",
                keys_dir.display(),
                config.state_dir.display()
            );
        };
        return Ok((keys, None));
    };
    let timing = crate::hsm::timing(&config.hw);
    let marked = keys_dir.join(crate::hsm::MARKER_FILE).exists();
    let (mut keys, hsm) = if create && !marked && !software {
        crate::hsm::create_keys(
            &keys_dir,
            device,
            &crate::cli::default_origin(),
            timing,
            sealer,
        )?
    } else {
        crate::hsm::load_keys(
            &keys_dir,
            device,
            timing,
            sealer,
            config.hw.hsm_lost == HsmLostPolicy::KeepSigning,
        )?
    };
    if config.hw.hsm_lost == HsmLostPolicy::RefuseRecords {
        keys.operational = Box::new(crate::hsm::Guarded::new(keys.operational, refusing.clone()));
    }
    Ok((keys, Some(hsm)))
}

/// After a crash, finds the requests of the last run that have no result
/// (scanning back to the last `daemon.start` or `daemon.stop`) and records
/// an `inference.aborted` result for each. Returns how many.
async fn record_interrupted(gate: &Gate, actor: Actor) -> anyhow::Result<u64> {
    use cairn_attest::entry::Entry;
    let ledger = gate.ledger().clone();
    let unanswered =
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<cairn_attest::Receipt>> {
            let mut answered = std::collections::HashSet::new();
            let mut open = Vec::new();
            for seq in (0..ledger.size()).rev() {
                let bytes = ledger.entry(seq)?;
                let e = Entry::parse(&bytes)?;
                match e.record.kind.as_str() {
                    "daemon.stop" => return Ok(Vec::new()),
                    "daemon.start" | cairn_attest::record::KIND_GENESIS => break,
                    "inference.request" if !answered.contains(&seq) => {
                        open.push(cairn_attest::Receipt {
                            seq,
                            hash: e.hash().to_hex(),
                            leaf: String::new(),
                        });
                    }
                    _ => {
                        if let Some(r) = &e.record.reference {
                            answered.insert(r.seq);
                        }
                    }
                }
            }
            open.reverse();
            Ok(open)
        })
        .await??;
    for r in &unanswered {
        let mut d = RecordDraft::new(
            "inference.aborted",
            actor.clone(),
            serde_json::json!({"reason": "cairnd stopped before the request finished"}),
        );
        d.reference = Some(r.reference());
        gate.pass(d).await.map_err(|e| anyhow::anyhow!(e.message))?;
    }
    Ok(unanswered.len() as u64)
}

/// The generated demo model's name.
pub const DEMO_MODEL: &str = "demo-tiny";

/// The real demo model's name.
pub const REAL_DEMO_MODEL: &str = "smollm2-135m-instruct";

/// The real demo model's file name in the model cache, and its SHA-256 (as
/// pinned by `tests/fetch-smollm2`).
const REAL_DEMO_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const REAL_DEMO_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// The demo's models: the generated tiny one always (fast, for trying the
/// gate), and SmolLM2-135M-Instruct when its pinned file is in the model
/// cache (`$CAIRN_MODEL_CACHE`, default `~/.cache/cairn/models`), which then
/// becomes the default model.
async fn load_demo_models(
    gate: &Gate,
    pool: &models::Pool,
    state_dir: &Path,
) -> anyhow::Result<()> {
    let system = || Actor::System {
        name: "cairnd".into(),
    };
    let path = demo_model(state_dir).await?;
    let (m, _) = pool
        .load(gate, system(), DEMO_MODEL, &path)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    println!("demo model {DEMO_MODEL}: a generated tiny Llama with random weights ({}), so its answers are noise", m.digest);
    let cache = std::env::var_os("CAIRN_MODEL_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/cairn/models")));
    let Some(real) = cache
        .map(|c| c.join(REAL_DEMO_FILE))
        .filter(|p| p.is_file())
    else {
        println!("no real model cached: run tests/fetch-smollm2 to fetch SmolLM2-135M-Instruct (93 MB) and restart");
        return Ok(());
    };
    let file = real.clone();
    let sha = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        std::io::copy(&mut std::fs::File::open(file)?, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await??;
    if sha != REAL_DEMO_SHA256 {
        println!(
            "{} is not the pinned SmolLM2 file (SHA-256 {sha}); not loading it",
            real.display()
        );
        return Ok(());
    }
    // A real model that does not load (recorded as `model.load_failed`)
    // leaves the demo running on the generated one.
    match pool.load(gate, system(), REAL_DEMO_MODEL, &real).await {
        Ok((m, _)) => {
            pool.prefer(REAL_DEMO_MODEL);
            println!(
                "demo model {REAL_DEMO_MODEL}: SmolLM2-135M-Instruct Q4_1 ({}), the default",
                m.digest
            );
        }
        Err(e) if e.status == axum::http::StatusCode::BAD_REQUEST => {
            println!("cannot load {}: {}", real.display(), e.message);
        }
        Err(e) => anyhow::bail!(e.message),
    }
    Ok(())
}

/// Generates (once) the demo model under `STATE_DIR/models/demo-tiny`.
async fn demo_model(state_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    use cairn_inference::generate::{generate, Format, GgufType, ModelSpec};
    let dir = state_dir.join("models").join(DEMO_MODEL);
    let existing = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "gguf"))
    });
    if let Some(file) = existing {
        return Ok(file);
    }
    tokio::task::spawn_blocking(move || {
        generate(&ModelSpec::tiny_llama(7), Format::Gguf(GgufType::F32), &dir)
    })
    .await?
    .context("cannot generate the demo model")
}

fn bind_unix(config: &Config) -> anyhow::Result<tokio::net::UnixListener> {
    let path = config.socket_path();
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            bail!("{} is in use: another cairnd is running", path.display());
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(
        &path,
        std::fs::Permissions::from_mode(config.socket_mode_bits()?),
    )?;
    if let Some(group) = &config.socket_group {
        set_group(&path, group)?;
    }
    Ok(listener)
}

fn set_group(path: &Path, group: &str) -> anyhow::Result<()> {
    let g = nix::unistd::Group::from_name(group)?
        .with_context(|| format!("socket_group {group:?} does not exist"))?;
    nix::unistd::chown(path, None, Some(g.gid))
        .with_context(|| format!("cannot give {} to group {group}", path.display()))?;
    Ok(())
}

/// Pings the systemd watchdog while the ledger is healthy; a faulted ledger
/// stops the pings so systemd restarts the daemon (reopening recovers).
fn spawn_watchdog(ledger: Arc<Ledger>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut usec = 0u64;
        if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_micros(usec / 2));
        loop {
            tick.tick().await;
            if ledger.fault().is_none() {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
        }
    })
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
