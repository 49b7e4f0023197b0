//! One record as an RFC 5424 syslog message whose MSG is an ArcSight CEF
//! event (`CEF:0|cairn|cairnd|VERSION|KIND|NAME|SEVERITY|EXTENSIONS`),
//! escaped as CEF requires: `\` and `|` in the header, `\`, `=`, CR and LF
//! in extension values.

use std::fmt::Write as _;

use cairn_attest::record::RecordHash;
use cairn_attest::{Actor, Record};

/// Syslog facilities by name (RFC 5424 §6.2.1 and the usual names).
pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// The longest extension value sent (longer ones are cut, marked `…`), so
/// one record stays well inside a datagram.
const MAX_VALUE: usize = 512;

/// How a message is addressed: facility number, hostname, process id.
pub struct Header {
    /// The facility (0–23).
    pub facility: u8,
    /// RFC 5424 HOSTNAME.
    pub hostname: String,
    /// PROCID.
    pub pid: u32,
}

/// The CEF severity (0–10) and syslog severity (0–7) of a record kind,
/// and its event name.
fn classify(kind: &str) -> (u8, u8, &str) {
    match kind {
        "access.denied" => (6, 4, "access denied"),
        "inference.failed" => (6, 3, "inference failed"),
        "model.load_failed" => (6, 3, "model load failed"),
        "inference.aborted" => (5, 4, "inference aborted"),
        "model.load" => (4, 5, "model load requested"),
        "model.loaded" => (4, 5, "model loaded"),
        "model.unload" => (4, 5, "model unloaded"),
        "review.record" => (3, 5, "review recorded"),
        "daemon.start" => (3, 5, "daemon started"),
        "daemon.stop" => (3, 5, "daemon stopped"),
        "ledger.export" => (3, 5, "log exported"),
        "ledger.anchor" => (3, 5, "checkpoint anchored"),
        "log.genesis" => (3, 5, "log created"),
        "inference.request" => (1, 6, "inference request"),
        "inference.result" => (1, 6, "inference result"),
        _ => (3, 6, kind),
    }
}

/// Escapes a CEF header field.
pub fn header_field(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|")
}

/// Escapes a CEF extension value, cut to [`MAX_VALUE`] characters.
pub fn ext_value(s: &str) -> String {
    let cut: String = if s.chars().count() > MAX_VALUE {
        s.chars()
            .take(MAX_VALUE)
            .chain(std::iter::once('…'))
            .collect()
    } else {
        s.to_owned()
    };
    let mut out = String::with_capacity(cut.len());
    for c in cut.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// Printable ASCII without spaces, at most `max` characters, `-` if empty
/// (RFC 5424 header fields).
fn token(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}

/// The record's time in milliseconds since 1970 (CEF `rt`).
fn epoch_ms(time: &str) -> Option<i128> {
    let t =
        time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() / 1_000_000)
}

/// The syslog message of one record: `text` is the record text (what its
/// chain hash is over).
pub fn message(h: &Header, r: &Record, text: &[u8]) -> String {
    let (cef_sev, sys_sev, name) = classify(&r.kind);
    let pri = u16::from(h.facility) * 8 + u16::from(sys_sev);
    let mut ext = Vec::<(&str, String)>::new();
    if let Some(ms) = epoch_ms(&r.time) {
        ext.push(("rt", ms.to_string()));
    }
    ext.push(("externalId", r.seq.to_string()));
    ext.push(("cn1Label", "seq".into()));
    ext.push(("cn1", r.seq.to_string()));
    ext.push(("act", r.kind.clone()));
    ext.push(("cs1Label", "log".into()));
    ext.push(("cs1", r.log.clone()));
    ext.push(("cs2Label", "hash".into()));
    ext.push(("cs2", RecordHash::of(text).to_hex()));
    if let Some(m) = &r.model {
        ext.push(("cs3Label", "model".into()));
        ext.push(("cs3", m.clone()));
    }
    if let Some(x) = &r.reference {
        ext.push(("cs4Label", "ref".into()));
        ext.push(("cs4", x.seq.to_string()));
    }
    match &r.actor {
        Actor::Unix { uid, pid, exe, .. } => {
            ext.push(("suid", uid.to_string()));
            ext.push(("spid", pid.to_string()));
            if let Some(e) = exe {
                ext.push(("sproc", e.clone()));
            }
        }
        Actor::Token { name } => ext.push(("suser", format!("token:{name}"))),
        Actor::System { name } => ext.push(("suser", format!("system:{name}"))),
    }
    let b = &r.body;
    for (key, field) in [
        ("request", "path"),
        ("reason", "reason"),
        ("reason", "error"),
    ] {
        if let Some(v) = b[field].as_str() {
            ext.push((key, v.to_owned()));
        }
    }
    if let Some(n) = b["name"].as_str().or(b["model_name"].as_str()) {
        ext.push(("cs5Label", "model name".into()));
        ext.push(("cs5", n.to_owned()));
    }
    if matches!(
        r.kind.as_str(),
        "access.denied" | "inference.failed" | "model.load_failed" | "inference.aborted"
    ) {
        ext.push(("outcome", "failure".into()));
    }
    let mut msg = format!(
        "<{pri}>1 {} {} cairnd {} {} - CEF:0|cairn|cairnd|{}|{}|{}|{cef_sev}|",
        token(&r.time, 64),
        token(&h.hostname, 255),
        h.pid,
        token(&r.kind, 32),
        header_field(env!("CARGO_PKG_VERSION")),
        header_field(&r.kind),
        header_field(name)
    );
    for (i, (k, v)) in ext.iter().enumerate() {
        let _ = write!(msg, "{}{k}={}", if i == 0 { "" } else { " " }, ext_value(v));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_follow_cef() {
        assert_eq!(header_field(r"a|b\c"), r"a\|b\\c");
        assert_eq!(ext_value("a=b\\c\nd\re|f"), r"a\=b\\c\nd\re|f");
        assert_eq!(ext_value(&"x".repeat(600)).chars().count(), MAX_VALUE + 1);
    }

    #[test]
    fn a_record_becomes_one_rfc5424_line() {
        let r: Record = serde_json::from_value(serde_json::json!({
            "v": 1, "log": "l.example/cairn/x", "seq": 42, "time": "2026-11-22T12:54:38.925831Z",
            "kind": "access.denied", "actor": {"type": "unix", "uid": 1000, "gid": 1000, "pid": 7, "exe": "/usr/bin/c url"},
            "model": null, "prev": "00", "body": {"path": "/v1/admin/models", "reason": "needs admin = root\nor|else"}
        })).unwrap();
        let h = Header {
            facility: 16,
            hostname: "ward 3".into(),
            pid: 99,
        };
        let m = message(&h, &r, b"text\n");
        assert!(m.starts_with("<132>1 2026-11-22T12:54:38.925831Z ward3 cairnd 99 access.denied - CEF:0|cairn|cairnd|"), "{m}");
        assert!(
            m.contains("|access.denied|access denied|6|rt=1795352078925 externalId=42 "),
            "{m}"
        );
        assert!(m.contains(r"reason=needs admin \= root\nor|else"), "{m}");
        assert!(
            m.contains("sproc=/usr/bin/c url") && m.contains("outcome=failure"),
            "{m}"
        );
        assert!(!m.contains('\n'));
    }
}
