//! Who is calling: SO_PEERCRED on the Unix socket, a bearer token on TCP.

use std::os::fd::AsFd;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use cairn_attest::Actor;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, UnixListener};

use crate::config::{AccessConfig, TokenConfig};

/// The peer of a connection, captured when it is accepted.
#[derive(Clone, Debug)]
pub enum Peer {
    /// A local process, from SO_PEERCRED (None if the kernel refused).
    Unix(Option<(u32, u32, i32)>),
    /// A TCP client (loopback only; identified by its bearer token).
    Tcp,
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        let creds = nix::sys::socket::getsockopt(
            &stream.io().as_fd(),
            nix::sys::socket::sockopt::PeerCredentials,
        )
        .ok()
        .map(|c| (c.uid(), c.gid(), c.pid()));
        Peer::Unix(creds)
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let _ = stream.remote_addr();
        Peer::Tcp
    }
}

/// Why a caller is refused.
#[derive(Debug)]
pub enum Refusal {
    /// No or an unknown bearer token (401).
    Unauthenticated(String),
    /// A known caller outside the allow-list (403).
    Forbidden(Actor, String),
}

/// Resolves the caller of a request to the actor recorded in the ledger.
pub fn identify(
    peer: &Peer,
    authorization: Option<&str>,
    tokens: &[TokenConfig],
    access: &AccessConfig,
) -> Result<Actor, Refusal> {
    match peer {
        Peer::Unix(None) => Err(Refusal::Unauthenticated(
            "the caller's credentials could not be read".into(),
        )),
        Peer::Unix(Some((uid, gid, pid))) => {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                .ok()
                .map(|p| p.display().to_string());
            let actor = Actor::Unix {
                uid: *uid,
                gid: *gid,
                pid: *pid,
                exe,
            };
            let allowed = (access.allow_uids.is_empty() && access.allow_gids.is_empty())
                || access.allow_uids.contains(uid)
                || access.allow_gids.contains(gid);
            if allowed {
                Ok(actor)
            } else {
                Err(Refusal::Forbidden(
                    actor,
                    format!("uid {uid} / gid {gid} is not in the allow-list"),
                ))
            }
        }
        Peer::Tcp => {
            let token = authorization
                .and_then(|h| h.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    Refusal::Unauthenticated("a bearer token is required on TCP".into())
                })?;
            let digest = hex::encode(Sha256::digest(token.trim().as_bytes()));
            tokens
                .iter()
                .find(|t| {
                    constant_time_eq(t.sha256.to_ascii_lowercase().as_bytes(), digest.as_bytes())
                })
                .map(|t| Actor::Token {
                    name: t.name.clone(),
                })
                .ok_or_else(|| Refusal::Unauthenticated("unknown bearer token".into()))
        }
    }
}

/// Whether `actor` may manage models (`/v1/admin/…`): on the socket root,
/// the daemon's own user and `[access] admin_uids`; on TCP a token marked
/// `admin = true`.
pub fn may_administer(actor: &Actor, tokens: &[TokenConfig], access: &AccessConfig) -> bool {
    match actor {
        Actor::Unix { uid, .. } => {
            *uid == 0 || *uid == nix::unistd::geteuid().as_raw() || access.admin_uids.contains(uid)
        }
        Actor::Token { name } => tokens.iter().any(|t| t.admin && &t.name == name),
        _ => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
