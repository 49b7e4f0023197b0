//! `cairn review record`: a reviewer signs off the model and configuration
//! state of a running daemon (a `review.record` record, written by the
//! daemon with the reviewer's identity), clearing the re-assessment
//! triggers `cairn evidence` reports.

use std::process::ExitCode;

use clap::Subcommand;

use super::daemon_cmds::DaemonAt;
use crate::client::request;

/// `cairn review …`.
#[derive(Subcommand)]
pub(super) enum ReviewCommand {
    /// Sign off the state in force: the models loaded, the configuration,
    /// and every model digest, configuration and system prompt recorded
    /// so far. Needs an administrator; the daemon records who you are.
    Record {
        /// What was reviewed and the conclusion (at most 4,096 characters).
        #[arg(long)]
        note: String,
        #[command(flatten)]
        at: DaemonAt,
        /// Print the daemon's answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(command: ReviewCommand) -> anyhow::Result<ExitCode> {
    let ReviewCommand::Record { note, at, json } = command;
    let body = serde_json::json!({ "note": note });
    let answer = request(
        &at.socket(),
        "POST",
        "/v1/admin/reviews",
        Some(body.to_string().into()),
    )?
    .ok()?
    .json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let state = &answer["state"];
    println!(
        "recorded    review as record {} (review.record)",
        answer["cairn"]["record"]["seq"]
    );
    for m in state["models"].as_array().into_iter().flatten() {
        println!(
            "model       {} {}",
            m["name"].as_str().unwrap_or("?"),
            m["digest"].as_str().unwrap_or("?")
        );
    }
    println!(
        "config      {}",
        state["config_digest"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}
