//! `cairn` commands that talk to a running `cairnd`: `status`, `records`,
//! `chat`, `models list|add|remove`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use std::io::Write;

use crate::client::{request, request_streaming, socket_path};

/// Where the daemon is: `--socket PATH`, or `--state-dir DIR` (its socket
/// inside), defaulting to the system socket.
#[derive(Args)]
pub(super) struct DaemonAt {
    /// The daemon's Unix socket.
    #[arg(long, conflicts_with = "state_dir")]
    socket: Option<PathBuf>,
    /// The daemon's state directory (its socket is inside).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

impl DaemonAt {
    pub(super) fn socket(&self) -> PathBuf {
        socket_path(self.socket.as_deref(), self.state_dir.as_deref())
    }
}

pub(super) fn status(at: &DaemonAt, json: bool) -> anyhow::Result<ExitCode> {
    let socket = at.socket();
    let health = request(&socket, "GET", "/healthz", None)?;
    let healthy = health.status == 200;
    let h = health.json()?;
    let cp = request(&socket, "GET", "/v1/audit/checkpoint", None)?;
    let checkpoint = (cp.status == 200).then(|| String::from_utf8_lossy(&cp.body).into_owned());
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"health": h, "checkpoint": checkpoint})
            )?
        );
    } else {
        println!(
            "daemon      {} ({})",
            socket.display(),
            h["status"].as_str().unwrap_or("?")
        );
        println!("log         {}", h["log"].as_str().unwrap_or("?"));
        println!("records     {}", h["records"]);
        println!(
            "checkpoint  {}",
            h["checkpoint_size"]
                .as_u64()
                .map_or("none yet".into(), |s| format!("covers {s} records"))
        );
        println!("uptime      {} s", h["uptime_s"]);
        if let Some(device) = h["hsm"]["device"].as_str() {
            match h["hsm"]["state"].as_str() {
                Some("present") => println!("HSM         {device}: present (identity key)"),
                _ => println!(
                    "HSM         {device}: LOST ({}): no checkpoint is signed until it is back; records: {}",
                    h["hsm"]["why"].as_str().unwrap_or("?"),
                    h["hsm"]["policy"].as_str().unwrap_or("?")
                ),
            }
        }
        if let Some(device) = h["tpm"]["device"].as_str() {
            let counter = &h["tpm"]["counter"];
            match h["tpm"]["problem"].as_str() {
                None => println!(
                    "TPM         {device}: counter {counter} ({} at start)",
                    h["tpm"]["check"].as_str().unwrap_or("?")
                ),
                Some(why) => println!("TPM         {device}: counter {counter}, PROBLEM: {why}"),
            }
        }
        if let Some(dir) = h["emulated_hw"]["dir"].as_str() {
            let usb = &h["emulated_hw"]["usb"];
            let stick = match usb["stick"].as_str() {
                Some(label) => format!("USB stick {label}"),
                None => format!(
                    "no USB stick ({})",
                    usb["unavailable"].as_str().unwrap_or("?")
                ),
            };
            println!("hardware    emulated in {dir}: TPM, HSM, {stick}");
        }
        if let Some(fault) = h["fault"].as_str() {
            println!("FAULT       {fault}");
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_INVALID)
    })
}

pub(super) fn records(
    at: &DaemonAt,
    from: u64,
    limit: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let r = request(
        &at.socket(),
        "GET",
        &format!("/v1/audit/records?from={from}&limit={limit}"),
        None,
    )?
    .ok()?;
    let v = r.json()?;
    for rec in v["records"].as_array().into_iter().flatten() {
        let entry = rec["entry"].as_str().unwrap_or_default();
        if json {
            println!("{}", entry.lines().next().unwrap_or_default());
            continue;
        }
        let r: serde_json::Value =
            serde_json::from_str(entry.lines().next().unwrap_or("{}")).unwrap_or_default();
        let actor = match r["actor"]["type"].as_str() {
            Some("unix") => format!("uid {}", r["actor"]["uid"]),
            Some("token") => format!("token {}", r["actor"]["name"].as_str().unwrap_or("?")),
            Some("system") => r["actor"]["name"].as_str().unwrap_or("?").to_string(),
            _ => "?".into(),
        };
        println!(
            "{:>8}  {}  {:<22} {:<16} {}",
            r["seq"],
            r["time"].as_str().unwrap_or("?"),
            r["kind"].as_str().unwrap_or("?"),
            actor,
            r["model"].as_str().unwrap_or("")
        );
    }
    if !json {
        eprintln!("({} records in the log)", v["size"]);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn chat(
    at: &DaemonAt,
    message: &str,
    system: &str,
    model: Option<String>,
    max_tokens: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let socket = at.socket();
    let model = match model {
        Some(m) => m,
        None => {
            let list = request(&socket, "GET", "/v1/models", None)?.ok()?.json()?;
            let models = list["data"].as_array().cloned().unwrap_or_default();
            models
                .iter()
                .find(|m| m["cairn"]["default"] == true)
                .or(models.first())
                .and_then(|m| m["id"].as_str())
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("the daemon has no model loaded"))?
        }
    };
    let mut messages = vec![serde_json::json!({"role": "user", "content": message})];
    if !system.is_empty() {
        messages.insert(0, serde_json::json!({"role": "system", "content": system}));
    }
    let body = serde_json::json!({
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": !json,
    });
    let body = Some(serde_json::to_vec(&body)?);
    if json {
        let answer = request(&socket, "POST", "/v1/chat/completions", body)?
            .ok()?
            .json()?;
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    // Stream: print text as it comes; the last event carries the receipt.
    let (mut pending, mut receipt, mut error, mut raw) = (Vec::new(), None, None, Vec::new());
    let mut out = std::io::stdout();
    let status = request_streaming(&socket, "POST", "/v1/chat/completions", body, |chunk| {
        pending.extend_from_slice(chunk);
        while let Some(eol) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=eol).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim_end().strip_prefix("data: ") else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(data) else {
                continue;
            };
            if let Some(text) = event["choices"][0]["delta"]["content"].as_str() {
                let _ = write!(out, "{text}");
                let _ = out.flush();
            }
            if event.get("cairn").is_some() {
                receipt = Some(event["cairn"].clone());
            }
            if event.get("error").is_some() {
                error = event["error"]["message"].as_str().map(str::to_owned);
            }
        }
        raw.extend_from_slice(chunk);
    })?;
    if !(200..300).contains(&status) {
        crate::client::Response {
            status,
            body: raw.into(),
        }
        .ok()?;
    }
    println!();
    if let Some(e) = error {
        anyhow::bail!("cairnd: {e}");
    }
    let r = receipt.ok_or_else(|| anyhow::anyhow!("the answer ended without its receipt"))?;
    eprintln!(
        "receipt: request record {} ({}), result record {} ({}); model {}",
        r["request"]["seq"],
        r["request"]["hash"].as_str().unwrap_or("?"),
        r["result"]["seq"],
        r["result"]["hash"].as_str().unwrap_or("?"),
        model
    );
    Ok(ExitCode::SUCCESS)
}

/// `cairn models …` commands served by the daemon.
#[derive(Subcommand)]
pub(super) enum DaemonModels {
    /// List the daemon's models with their digests.
    List {
        #[command(flatten)]
        at: DaemonAt,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load a model into the daemon under a name (replacing, i.e.
    /// swapping, a model of that name). Needs an administrator.
    Add {
        #[command(flatten)]
        at: DaemonAt,
        /// The name clients will use.
        name: String,
        /// A `.gguf` file or a safetensors directory, as the daemon sees it.
        path: PathBuf,
    },
    /// Unload a model. Needs an administrator.
    Remove {
        #[command(flatten)]
        at: DaemonAt,
        /// The model's name.
        name: String,
    },
}

pub(super) fn models(cmd: DaemonModels) -> anyhow::Result<ExitCode> {
    match cmd {
        DaemonModels::List { at, json } => {
            let v = request(&at.socket(), "GET", "/v1/models", None)?
                .ok()?
                .json()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            for m in v["data"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<8} {:>7}  {}",
                    m["id"].as_str().unwrap_or("?"),
                    m["cairn"]["arch"].as_str().unwrap_or("?"),
                    m["cairn"]["context"],
                    m["cairn"]["digest"].as_str().unwrap_or("?")
                );
            }
        }
        DaemonModels::Add { at, name, path } => {
            let path = std::path::absolute(&path)?;
            let body = serde_json::json!({"name": name, "path": path});
            let v = request(
                &at.socket(),
                "POST",
                "/v1/admin/models",
                Some(serde_json::to_vec(&body)?),
            )?
            .ok()?
            .json()?;
            println!(
                "loaded {} ({}), record {}",
                name,
                v["digest"].as_str().unwrap_or("?"),
                v["cairn"]["record"]["seq"]
            );
        }
        DaemonModels::Remove { at, name } => {
            let v = request(
                &at.socket(),
                "DELETE",
                &format!("/v1/admin/models/{name}"),
                None,
            )?
            .ok()?
            .json()?;
            println!("removed {name}, record {}", v["cairn"]["record"]["seq"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}
