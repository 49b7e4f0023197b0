//! A client for `cairnd`'s Unix socket, used by the `cairn` commands that
//! need a running daemon (sled admits one process per database, so they go
//! through the daemon's API).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;

/// The system daemon's socket.
pub const SYSTEM_SOCKET: &str = "/run/cairn/cairnd.sock";

/// Where to find the daemon.
pub fn socket_path(socket: Option<&Path>, state_dir: Option<&Path>) -> PathBuf {
    match (socket, state_dir) {
        (Some(s), _) => s.to_path_buf(),
        (None, Some(d)) => d.join("cairnd.sock"),
        (None, None) => PathBuf::from(SYSTEM_SOCKET),
    }
}

/// A response: status and body.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the daemon's answer is not JSON")
    }

    /// Fails with the daemon's error message unless the status is 2xx.
    pub fn ok(self) -> anyhow::Result<Self> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let msg = self
            .json()
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        bail!("cairnd answered {}: {msg}", self.status)
    }
}

/// Asks the daemon at `socket` to checkpoint now, so that whoever reads its
/// journals next finds every record so far covered by a signed root.
/// `Ok(false)` when no daemon answers there, unless `required`.
pub fn checkpoint_now(socket: &Path, required: bool) -> anyhow::Result<bool> {
    match request(socket, "POST", "/v1/audit/checkpoint", None) {
        Ok(r) => {
            r.ok().context("the daemon could not checkpoint")?;
            Ok(true)
        }
        Err(e) if required => Err(e),
        Err(_) => Ok(false),
    }
}

/// One request to the daemon at `socket`.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Response> {
    let mut all = Vec::new();
    let status = request_streaming(socket, method, path, body, |chunk| {
        all.extend_from_slice(chunk)
    })?;
    Ok(Response {
        status,
        body: Bytes::from(all),
    })
}

/// One request whose response body is handed to `on_chunk` as it arrives
/// (for server-sent events); returns the status.
pub fn request_streaming(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    mut on_chunk: impl FnMut(&[u8]),
) -> anyhow::Result<u16> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .with_context(|| {
                format!(
                    "cannot reach cairnd at {} (is it running? use --socket or --state-dir)",
                    socket.display()
                )
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "cairnd")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let mut res = sender
            .send_request(req)
            .await
            .context("cairnd closed the connection")?;
        let status = res.status().as_u16();
        while let Some(frame) = res.frame().await {
            if let Some(data) = frame?.data_ref() {
                on_chunk(data);
            }
        }
        Ok(status)
    })
}
