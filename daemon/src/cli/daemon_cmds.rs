//! `cairn` commands that talk to a running `cairnd`: `status`, `records`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::client::{request, socket_path};

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
    fn socket(&self) -> PathBuf {
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
    model: Option<String>,
    max_tokens: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let socket = at.socket();
    let model = match model {
        Some(m) => m,
        None => request(&socket, "GET", "/v1/models", None)?.ok()?.json()?["data"][0]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("the daemon has no model loaded"))?,
    };
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": message}],
        "max_tokens": max_tokens,
    });
    let answer = request(
        &socket,
        "POST",
        "/v1/chat/completions",
        Some(serde_json::to_vec(&body)?),
    )?
    .ok()?
    .json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}",
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
    );
    let r = &answer["cairn"];
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
