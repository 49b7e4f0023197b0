//! `cairnd`'s configuration: a TOML file, every key optional, validated at
//! start with messages that name the key and the problem.
//!
//! ```toml
//! state_dir = "/var/lib/cairn"          # ledger, keys, index
//! socket = "/run/cairn/cairnd.sock"     # default: STATE_DIR/cairnd.sock
//! socket_mode = "0660"
//! socket_group = "cairn"                # group allowed to connect (optional)
//! # tcp = "127.0.0.1:8420"              # optional; loopback only; needs tokens
//!
//! [[tokens]]                            # bearer tokens for TCP clients
//! name = "ehr-integration"
//! sha256 = "hex of SHA-256(token)"      # the secret itself is never stored
//!
//! [access]
//! allow_uids = []                       # empty: anyone who can open the socket
//! allow_gids = []
//! admin_uids = []                       # besides root and cairnd's own user
//!
//! [limits]
//! max_body_bytes = 1048576
//! max_queue = 64                        # requests waiting for the model
//!
//! [[models]]                            # loaded at start, each load a record
//! name = "llama-3.2-1b"
//! path = "/var/lib/cairn/models/llama-3.2-1b-q4_k_m.gguf"
//!
//! [ledger]
//! checkpoint_every_records = 1000
//! checkpoint_every_secs = 60
//! payloads = "store"                    # store | hash-only | erase-after-days
//! erase_after_days = 30
//!
//! [export]                              # scheduled export bundles (optional)
//! dir = "/var/lib/cairn/exports"        # absent: no scheduled export
//! every_secs = 86400
//! keep = 7                              # bundles kept in dir, newest first
//! # verifier = "/usr/share/cairn/verify.html"  # copied into each bundle
//!
//! [siem]                                # records forwarded once durable (optional)
//! syslog = "tcp://127.0.0.1:6514"       # RFC 5424 + CEF; tcp:// (at least once) or udp://
//! jsonl = "/var/log/cairn/records.jsonl" # one JSON line per record, each once
//! facility = "local0"                   # syslog facility
//! # hostname = "ward3-appliance"        # syslog HOSTNAME (default: this machine's)
//!
//! [hw]                                  # hardware (optional)
//! # mode = "emulated"                   # TPM, HSM and USB all emulated (cairnd --hw emulated)
//! # emulated_dir = "/var/lib/cairn-hw"  # their state (default: STATE_DIR-hw)
//! tpm = "device:/dev/tpmrm0"            # or "swtpm:host=127.0.0.1,port=2321",
//!                                       # or "emulated:/var/lib/cairn-hw/tpm"
//! tpm_seal_pcrs = [7]                   # key seeds sealed to these sha256 PCRs
//! tpm_counter_min_secs = 60             # rollback counter: at most one NV write per …
//! hsm = "/dev/ttyACM0"                  # serial HSM holding the identity key
//! hsm_lost = "keep-signing"             # keep-signing | refuse-records
//! hsm_timeout_ms = 2000                 # one answer's deadline
//! hsm_probe_ms = 1000                   # how often the device is checked
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_attest::payload::PayloadPolicy;
use cairn_attest::LedgerConfig;
use serde::{Deserialize, Serialize};

/// The whole configuration, with defaults filled in.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the ledger, keys and index live.
    pub state_dir: PathBuf,
    /// The Unix socket path (default: `STATE_DIR/cairnd.sock`).
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// The socket's permission bits, octal.
    #[serde(default = "default_socket_mode")]
    pub socket_mode: String,
    /// The group that owns the socket.
    #[serde(default)]
    pub socket_group: Option<String>,
    /// Optional loopback TCP listener.
    #[serde(default)]
    pub tcp: Option<SocketAddr>,
    /// Bearer tokens accepted on TCP.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Who may call the API.
    #[serde(default)]
    pub access: AccessConfig,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Checkpoint cadence and payload policy.
    #[serde(default)]
    pub ledger: LedgerSection,
    /// Models to load at start.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Scheduled exports.
    #[serde(default)]
    pub export: ExportSection,
    /// Records forwarded to a SIEM. Left out of the configuration's digest
    /// when off, so configurations written before it keep theirs.
    #[serde(default, skip_serializing_if = "SiemSection::is_off")]
    pub siem: SiemSection,
    /// Hardware. Left out of the configuration's digest when off, like
    /// `siem`.
    #[serde(default, skip_serializing_if = "HwSection::is_off")]
    pub hw: HwSection,
}

/// The appliance's hardware: the TPM that seals the key seeds and keeps
/// the rollback counter, and the serial HSM that holds the log's identity
/// key (which signs checkpoints and certifies the operational key); see
/// `hw/HSM-PROTOCOL.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HwSection {
    /// `real` (the devices named below, if any) or `emulated`: the TPM,
    /// the serial HSM and USB sticks all emulated, their state in
    /// `emulated_dir` (see `crate::emulated_hw`).
    #[serde(default, skip_serializing_if = "HwMode::is_real")]
    pub mode: HwMode,
    /// Where the emulated devices keep their state (default: the state
    /// directory's name with `-hw`, beside it: outside it, so that a
    /// restored copy of it does not restore the TPM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulated_dir: Option<PathBuf>,
    /// The TPM: `device:PATH` (a TPM resource manager, `/dev/tpmrm0`),
    /// `swtpm:host=H,port=P` (a swtpm), or `emulated:PATH` (the emulated
    /// TPM's state file, kept outside the state directory). Absent: no
    /// TPM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<String>,
    /// The sha256 PCRs the key seeds are sealed to.
    #[serde(
        default = "default_seal_pcrs",
        skip_serializing_if = "is_default_seal_pcrs"
    )]
    pub tpm_seal_pcrs: Vec<u8>,
    /// The rollback counter is incremented at most once per this many
    /// seconds (a TPM's NV memory wears and rate-limits writes); a
    /// checkpoint made sooner carries the current value. A state directory
    /// copied less than this before a restore is not told apart.
    #[serde(
        default = "default_counter_min_secs",
        skip_serializing_if = "is_default_counter_min_secs"
    )]
    pub tpm_counter_min_secs: u64,
    /// The HSM's serial device (absent: the identity key is a 0600 file).
    #[serde(default)]
    pub hsm: Option<PathBuf>,
    /// What happens to records while the HSM is lost. Checkpoints are never
    /// signed without it (fail closed); records are signed by the certified
    /// operational key (`keep-signing`) or refused with 503
    /// (`refuse-records`). Either way each loss and return is a record.
    #[serde(default)]
    pub hsm_lost: HsmLostPolicy,
    /// How long one answer may take, in milliseconds.
    #[serde(default = "default_hsm_timeout_ms")]
    pub hsm_timeout_ms: u64,
    /// How often the device is checked (and, when lost, looked for again),
    /// in milliseconds.
    #[serde(default = "default_hsm_probe_ms")]
    pub hsm_probe_ms: u64,
}

/// Real or emulated hardware.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HwMode {
    /// The devices the configuration names (none: software keys only).
    #[default]
    Real,
    /// All three emulated.
    Emulated,
}

impl HwMode {
    fn is_real(&self) -> bool {
        *self == HwMode::Real
    }
}

/// What records do while the HSM is lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HsmLostPolicy {
    /// Keep signing records with the operational key (the identity key
    /// certified it); checkpoints wait for the HSM.
    #[default]
    KeepSigning,
    /// Refuse every record (the gate answers 503) until the HSM is back.
    RefuseRecords,
}

impl HsmLostPolicy {
    /// The policy's name in the configuration.
    pub fn label(self) -> &'static str {
        match self {
            HsmLostPolicy::KeepSigning => "keep-signing",
            HsmLostPolicy::RefuseRecords => "refuse-records",
        }
    }
}

impl Default for HwSection {
    fn default() -> Self {
        HwSection {
            mode: HwMode::Real,
            emulated_dir: None,
            tpm: None,
            tpm_seal_pcrs: default_seal_pcrs(),
            tpm_counter_min_secs: default_counter_min_secs(),
            hsm: None,
            hsm_lost: HsmLostPolicy::default(),
            hsm_timeout_ms: default_hsm_timeout_ms(),
            hsm_probe_ms: default_hsm_probe_ms(),
        }
    }
}

impl HwSection {
    /// Whether no hardware is configured (the default).
    pub fn is_off(&self) -> bool {
        *self == HwSection::default()
    }

    /// Checks the section for a daemon whose state is in `state_dir`.
    pub fn validate(&self, state_dir: &Path) -> anyhow::Result<()> {
        if self.mode == HwMode::Emulated && (self.hsm.is_some() || self.tpm.is_some()) {
            bail!(
                "hw.mode = \"emulated\" emulates the TPM and the HSM: leave hw.tpm and hw.hsm out"
            );
        }
        match &self.emulated_dir {
            Some(_) if self.mode != HwMode::Emulated => {
                bail!("hw.emulated_dir is set but hw.mode is not \"emulated\"")
            }
            Some(d) if !d.is_absolute() || d.starts_with(state_dir) || state_dir.starts_with(d) => {
                bail!("hw.emulated_dir = {d:?}: must be an absolute path outside the state directory, and not above it")
            }
            _ => {}
        }
        if let Some(p) = &self.hsm {
            if !p.is_absolute() {
                bail!("hw.hsm = {p:?}: must be an absolute device path, e.g. /dev/ttyACM0");
            }
        } else if self.mode == HwMode::Real {
            let d = HwSection::default();
            if (self.hsm_lost, self.hsm_timeout_ms, self.hsm_probe_ms)
                != (d.hsm_lost, d.hsm_timeout_ms, d.hsm_probe_ms)
            {
                bail!("[hw] sets HSM options but no hw.hsm device");
            }
        }
        match &self.tpm {
            Some(spec) => {
                crate::tpm::TpmSpec::parse(spec, state_dir)?;
            }
            None if self.mode == HwMode::Real
                && (!is_default_seal_pcrs(&self.tpm_seal_pcrs)
                    || !is_default_counter_min_secs(&self.tpm_counter_min_secs)) =>
            {
                bail!("[hw] sets TPM options but no hw.tpm")
            }
            None => {}
        }
        if self.tpm_counter_min_secs > 86_400 {
            bail!(
                "hw.tpm_counter_min_secs = {}: at most 86400 (a day)",
                self.tpm_counter_min_secs
            );
        }
        cairn_hw::tpm::PcrSelection::new(&self.tpm_seal_pcrs)
            .map_err(|e| anyhow::anyhow!("hw.tpm_seal_pcrs = {:?}: {e}", self.tpm_seal_pcrs))?;
        if self.tpm_seal_pcrs.contains(&cairn_hw::tpm::CHECKPOINT_PCR) {
            bail!(
                "hw.tpm_seal_pcrs must not include PCR {}: cairnd extends it with every export, so the keys would not unseal at the next start",
                cairn_hw::tpm::CHECKPOINT_PCR
            );
        }
        if !(50..=60_000).contains(&self.hsm_timeout_ms) {
            bail!(
                "hw.hsm_timeout_ms = {}: must be 50 to 60000",
                self.hsm_timeout_ms
            );
        }
        if !(100..=60_000).contains(&self.hsm_probe_ms) {
            bail!(
                "hw.hsm_probe_ms = {}: must be 100 to 60000",
                self.hsm_probe_ms
            );
        }
        Ok(())
    }
}

fn default_seal_pcrs() -> Vec<u8> {
    cairn_hw::tpm::SEAL_PCRS.pcrs().collect()
}

fn is_default_seal_pcrs(pcrs: &Vec<u8>) -> bool {
    *pcrs == default_seal_pcrs()
}

fn default_counter_min_secs() -> u64 {
    60
}

fn is_default_counter_min_secs(secs: &u64) -> bool {
    *secs == default_counter_min_secs()
}

fn default_hsm_timeout_ms() -> u64 {
    2000
}

fn default_hsm_probe_ms() -> u64 {
    1000
}

/// Records forwarded to a SIEM once durable: RFC 5424 syslog with a CEF
/// payload, and/or JSON lines appended to a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiemSection {
    /// `tcp://HOST:PORT` (RFC 6587 octet counting; at least once) or
    /// `udp://HOST:PORT` (one datagram per record; best effort).
    #[serde(default)]
    pub syslog: Option<String>,
    /// An absolute file to append one JSON line per record to.
    #[serde(default)]
    pub jsonl: Option<PathBuf>,
    /// The syslog facility, by name (`kern` … `local7`).
    #[serde(default = "default_facility")]
    pub facility: String,
    /// The syslog HOSTNAME (default: this machine's name).
    #[serde(default)]
    pub hostname: Option<String>,
}

impl Default for SiemSection {
    fn default() -> Self {
        SiemSection {
            syslog: None,
            jsonl: None,
            facility: default_facility(),
            hostname: None,
        }
    }
}

impl SiemSection {
    /// Whether nothing is forwarded (the default).
    pub fn is_off(&self) -> bool {
        *self == SiemSection::default()
    }
}

fn default_facility() -> String {
    "local0".into()
}

/// Export bundles written on the daemon's own schedule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSection {
    /// Where bundles go (absolute); none: no scheduled export.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Seconds between exports (an export is skipped when nothing but the
    /// previous export's record was added since).
    #[serde(default = "default_export_secs")]
    pub every_secs: u64,
    /// Bundles kept in `dir`; older ones are removed after each export.
    #[serde(default = "default_export_keep")]
    pub keep: usize,
    /// The browser verifier page copied into each bundle (default: the
    /// installed one, when present).
    #[serde(default)]
    pub verifier: Option<PathBuf>,
}

impl Default for ExportSection {
    fn default() -> Self {
        ExportSection {
            dir: None,
            every_secs: default_export_secs(),
            keep: default_export_keep(),
            verifier: None,
        }
    }
}

fn default_export_secs() -> u64 {
    86_400
}
fn default_export_keep() -> usize {
    7
}

/// A model to load at start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients use in `"model"`.
    pub name: String,
    /// A `.gguf` file (its tokenizer from a `tokenizer.json` beside it, else
    /// from its metadata) or a safetensors directory.
    pub path: PathBuf,
}

/// A named bearer token, stored as its SHA-256.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The name recorded as the actor.
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// Whether the token may manage models (`/v1/admin/…`).
    #[serde(default)]
    pub admin: bool,
}

/// Allow-lists of Unix callers; empty lists allow everyone who can open
/// the socket (its mode and group already restrict that).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Allowed user ids.
    #[serde(default)]
    pub allow_uids: Vec<u32>,
    /// Allowed group ids.
    #[serde(default)]
    pub allow_gids: Vec<u32>,
    /// User ids that may manage models (`/v1/admin/…`) over the socket;
    /// root and the daemon's own user always may.
    #[serde(default)]
    pub admin_uids: Vec<u32>,
}

/// Request limits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest request body accepted (413 above; 1 KiB to 8 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Requests allowed to wait for the model (429 above).
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: default_max_body(),
            max_queue: default_max_queue(),
        }
    }
}

/// Ledger settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    /// Checkpoint after this many records (0: not by count).
    #[serde(default = "default_cp_records")]
    pub checkpoint_every_records: u64,
    /// Checkpoint after this many seconds with new records (0: not by time).
    #[serde(default = "default_cp_secs")]
    pub checkpoint_every_secs: u64,
    /// `store`, `hash-only` or `erase-after-days`.
    #[serde(default = "default_payloads")]
    pub payloads: String,
    /// Days to keep payloads under `erase-after-days`.
    #[serde(default = "default_erase_days")]
    pub erase_after_days: u32,
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            checkpoint_every_records: default_cp_records(),
            checkpoint_every_secs: default_cp_secs(),
            payloads: default_payloads(),
            erase_after_days: default_erase_days(),
        }
    }
}

fn default_socket_mode() -> String {
    "0660".into()
}
fn default_max_body() -> usize {
    1024 * 1024
}
fn default_max_queue() -> usize {
    64
}
fn default_cp_records() -> u64 {
    1000
}
fn default_cp_secs() -> u64 {
    60
}
fn default_payloads() -> String {
    "store".into()
}
fn default_erase_days() -> u32 {
    30
}

impl Config {
    /// The defaults for a state directory.
    pub fn for_state_dir(state_dir: &Path) -> Self {
        toml::from_str::<Config>(&format!(
            "state_dir = {:?}",
            state_dir.display().to_string()
        ))
        .expect("defaults parse")
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration {}", path.display()))?;
        let config: Config = toml::from_str(&text)
            .with_context(|| format!("configuration {} is invalid", path.display()))?;
        config
            .validate()
            .with_context(|| format!("configuration {} is invalid", path.display()))?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.socket_mode_bits()?;
        if let Some(dir) = &self.export.dir {
            if !dir.is_absolute() {
                bail!("export.dir = {dir:?}: must be an absolute path");
            }
            if self.export.keep == 0 {
                bail!("export.keep = 0: keep at least the newest bundle");
            }
            if self.export.every_secs == 0 {
                bail!("export.every_secs = 0: give the seconds between exports");
            }
        }
        if let Some(addr) = self.tcp {
            if !addr.ip().is_loopback() {
                bail!("tcp = {addr}: cairnd listens on loopback only; put a TLS proxy in front for anything else");
            }
            if self.tokens.is_empty() {
                bail!("tcp is set but no [[tokens]] are configured: every TCP request would be refused");
            }
        }
        for t in &self.tokens {
            if t.name.is_empty() || t.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!(
                    "[[tokens]] name {:?} must be non-empty without spaces",
                    t.name
                );
            }
            if t.sha256.len() != 64 || hex::decode(&t.sha256).is_err() {
                bail!(
                    "[[tokens]] {:?}: sha256 must be 64 hex digits (the SHA-256 of the token)",
                    t.name
                );
            }
        }
        // A request's payload (its messages or prompt) is stored whole with
        // its record; the store takes at most MAX_PAYLOAD_BYTES per record.
        let most = cairn_attest::payload_store::MAX_PAYLOAD_BYTES / 2;
        if !(1024..=most).contains(&self.limits.max_body_bytes) {
            bail!(
                "limits.max_body_bytes = {} is out of range (1024 to {most}: a request's payload is stored with its record)",
                self.limits.max_body_bytes
            );
        }
        if self.limits.max_queue == 0 {
            bail!("limits.max_queue must be at least 1");
        }
        self.payload_policy()?;
        crate::server::siem::validate(&self.siem)?;
        self.hw.validate(&self.state_dir)?;
        let mut names = std::collections::BTreeSet::new();
        for m in &self.models {
            if m.name.is_empty()
                || m.name.len() > 128
                || m.name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                bail!(
                    "[[models]] name {:?} must be 1-128 characters without spaces",
                    m.name
                );
            }
            if !names.insert(&m.name) {
                bail!("[[models]] name {:?} appears twice", m.name);
            }
        }
        Ok(())
    }

    /// The socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.state_dir.join("cairnd.sock"))
    }

    /// The socket mode as bits.
    pub fn socket_mode_bits(&self) -> anyhow::Result<u32> {
        let bits = u32::from_str_radix(self.socket_mode.trim_start_matches("0o"), 8).with_context(
            || {
                format!(
                    "socket_mode = {:?} is not an octal mode like \"0660\"",
                    self.socket_mode
                )
            },
        )?;
        if bits > 0o777 || bits & 0o006 != 0 {
            bail!(
                "socket_mode = {:?}: must not give others access (use a group)",
                self.socket_mode
            );
        }
        Ok(bits)
    }

    /// The payload policy.
    pub fn payload_policy(&self) -> anyhow::Result<PayloadPolicy> {
        Ok(match self.ledger.payloads.as_str() {
            "store" => PayloadPolicy::Store,
            "hash-only" => PayloadPolicy::HashOnly,
            "erase-after-days" => PayloadPolicy::EraseAfterDays(self.ledger.erase_after_days),
            other => {
                bail!("ledger.payloads = {other:?}: expected store, hash-only or erase-after-days")
            }
        })
    }

    /// The ledger configuration.
    pub fn ledger_config(&self) -> anyhow::Result<LedgerConfig> {
        Ok(LedgerConfig {
            checkpoint_every_records: self.ledger.checkpoint_every_records,
            checkpoint_every: (self.ledger.checkpoint_every_secs > 0)
                .then(|| Duration::from_secs(self.ledger.checkpoint_every_secs)),
            payload_policy: self.payload_policy()?,
            ..LedgerConfig::default()
        })
    }

    /// SHA-256 of the effective configuration (as canonical JSON), recorded
    /// at start so every configuration change is visible in the ledger.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("sha256:{}", hex::encode(Sha256::digest(json)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_mistakes_are_named() {
        let c = Config::for_state_dir(Path::new("/tmp/x"));
        c.validate().unwrap();
        assert_eq!(c.socket_path(), Path::new("/tmp/x/cairnd.sock"));
        for (toml, needle) in [
            ("state_dir='/x'\nsocket_mode='0666'", "others"),
            (
                "state_dir='/x'\ntcp='0.0.0.0:80'\n[[tokens]]\nname='a'\nsha256='00'",
                "loopback",
            ),
            ("state_dir='/x'\ntcp='127.0.0.1:80'", "tokens"),
            ("state_dir='/x'\n[ledger]\npayloads='keep'", "payloads"),
            ("state_dir='/x'\n[limits]\nmax_queue=0", "max_queue"),
            ("state_dir='/x'\n[export]\ndir='rel'", "export.dir"),
            ("state_dir='/x'\n[export]\ndir='/e'\nkeep=0", "export.keep"),
            (
                "state_dir='/x'\n[export]\ndir='/e'\nevery_secs=0",
                "export.every_secs",
            ),
            ("state_dir='/x'\n[siem]\nsyslog='http://h:1'", "siem.syslog"),
            ("state_dir='/x'\n[siem]\nsyslog='tcp://h'", "siem.syslog"),
            ("state_dir='/x'\n[siem]\njsonl='rel.jsonl'", "siem.jsonl"),
            ("state_dir='/x'\n[siem]\nfacility='mail2'", "siem.facility"),
            ("state_dir='/x'\n[siem]\nhostname='a b'", "siem.hostname"),
            ("state_dir='/x'\n[hw]\nhsm='ttyACM0'", "hw.hsm"),
            ("state_dir='/x'\n[hw]\nhsm_probe_ms=500", "no hw.hsm"),
            (
                "state_dir='/x'\n[hw]\nhsm='/dev/ttyACM0'\nhsm_timeout_ms=10",
                "hw.hsm_timeout_ms",
            ),
            (
                "state_dir='/x'\n[hw]\nhsm='/dev/ttyACM0'\nhsm_probe_ms=0",
                "hw.hsm_probe_ms",
            ),
            ("state_dir='/x'\n[hw]\ntpm='/dev/tpm0'", "hw.tpm"),
            (
                "state_dir='/x'\n[hw]\nmode='emulated'\ntpm='device:/dev/tpmrm0'",
                "leave hw.tpm",
            ),
            ("state_dir='/x'\n[hw]\nemulated_dir='/x-hw'", "hw.mode"),
            (
                "state_dir='/x'\n[hw]\nmode='emulated'\nemulated_dir='/x/hw'",
                "outside",
            ),
            (
                "state_dir='/x/y'\n[hw]\nmode='emulated'\nemulated_dir='/x'",
                "not above",
            ),
            ("state_dir='/x'\n[hw]\ntpm='emulated:rel'", "absolute"),
            ("state_dir='/x'\n[hw]\ntpm='emulated:/x/tpm'", "outside"),
            ("state_dir='/x'\n[hw]\ntpm='swtpm:port=2321'", "host"),
            ("state_dir='/x'\n[hw]\ntpm_seal_pcrs=[0]", "no hw.tpm"),
            ("state_dir='/x'\n[hw]\ntpm_counter_min_secs=0", "no hw.tpm"),
            (
                "state_dir='/x'\n[hw]\ntpm='device:/dev/tpmrm0'\ntpm_counter_min_secs=86401",
                "tpm_counter_min_secs",
            ),
            (
                "state_dir='/x'\n[hw]\ntpm='device:/dev/tpmrm0'\ntpm_seal_pcrs=[7,23]",
                "PCR 23",
            ),
            (
                "state_dir='/x'\n[hw]\ntpm='device:/dev/tpmrm0'\ntpm_seal_pcrs=[24]",
                "tpm_seal_pcrs",
            ),
        ] {
            let c: Config = toml::from_str(toml).unwrap();
            let e = format!("{:#}", c.validate().unwrap_err());
            assert!(e.contains(needle), "{toml}: {e}");
        }
        assert!(toml::from_str::<Config>("state_dir='/x'\nunknown=1").is_err());
        assert!(toml::from_str::<Config>("state_dir='/x'\n[hw]\nhsm_lost='maybe'").is_err());
        let hw: Config =
            toml::from_str("state_dir='/x'\n[hw]\nhsm='/dev/ttyACM0'\nhsm_lost='refuse-records'")
                .unwrap();
        hw.validate().unwrap();
        assert_eq!(hw.hw.hsm_lost, HsmLostPolicy::RefuseRecords);
        let tpm: Config =
            toml::from_str("state_dir='/x'\n[hw]\ntpm='emulated:/x-hw/tpm'\ntpm_seal_pcrs=[0,7]")
                .unwrap();
        tpm.validate().unwrap();
        assert_ne!(tpm.digest(), c.digest());
        assert_ne!(hw.digest(), c.digest());
        // Configurations without [siem] keep the digest they had before it.
        let mut with = c.clone();
        assert_eq!(with.digest(), c.digest());
        with.siem.jsonl = Some("/var/log/cairn.jsonl".into());
        assert_ne!(with.digest(), c.digest());
    }
}
