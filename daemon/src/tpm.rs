//! The TPM in cairnd: which TPM (`hw.tpm`), the sealer for key seeds, and
//! the rollback counter bound to checkpoints.
//!
//! # The rollback counter
//!
//! Every checkpoint the daemon signs carries the extension line
//! `cairn-tpm-counter N` (FORMAT.md section 4), N the value the TPM's NV
//! counter will hold once that checkpoint is stored: the checkpoint is made
//! durable first, then the counter is incremented. So the newest
//! checkpoint with a counter, C, and the TPM's counter, T, always satisfy
//! C = T (in step) or C = T + 1 (stopped between the two; the counter is
//! caught up at start). A state directory restored from a copy carries an
//! older checkpoint: C < T. That, or C > T + 1 (another TPM, or its
//! counter was reset), refuses the start with a `tpm.rollback_detected`
//! record until an operator accepts it (`cairnd --accept-rollback`), which
//! is a `tpm.rollback_accepted` record.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_attest::checkpoint::{Checkpoint, COUNTER_EXTENSION};
use cairn_attest::{CheckpointHook, Ledger};
use cairn_hw::tpm::{with_tpm, PcrSelection, SharedTpm, TpmSealer, COUNTER_NV_INDEX};

use crate::config::HwSection;

/// A TPM named by `hw.tpm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmSpec {
    /// A real TPM or a swtpm, by its TCTI (`device:…`, `swtpm:…`).
    Tcti(String),
    /// The emulated TPM, its state in this file.
    Emulated(PathBuf),
}

impl TpmSpec {
    /// Parses `hw.tpm`; an emulated TPM's state must lie outside the state
    /// directory (restoring an older copy of that directory must not
    /// restore the TPM's counter with it).
    pub fn parse(spec: &str, state_dir: &Path) -> anyhow::Result<Self> {
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        match kind {
            "device" if rest.starts_with('/') => Ok(TpmSpec::Tcti(spec.to_string())),
            "swtpm"
                if rest
                    .split(',')
                    .any(|kv| kv.starts_with("host=") && kv.len() > 5)
                    && rest.split(',').any(|kv| {
                        kv.strip_prefix("port=")
                            .is_some_and(|p| p.parse::<u16>().is_ok())
                    }) =>
            {
                Ok(TpmSpec::Tcti(spec.to_string()))
            }
            "swtpm" => bail!(
                "hw.tpm = {spec:?}: a swtpm needs host and port, e.g. swtpm:host=127.0.0.1,port=2321"
            ),
            "emulated" => {
                let path = PathBuf::from(rest);
                if !path.is_absolute()
                    || path
                        .components()
                        .any(|c| c == std::path::Component::ParentDir)
                {
                    bail!("hw.tpm = {spec:?}: the emulated TPM's state file must be an absolute path without `..`");
                }
                // Through symbolic links, where the paths exist.
                let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
                let parent = path.parent().unwrap_or(&path);
                if path.starts_with(state_dir) || real(parent).starts_with(real(state_dir)) {
                    bail!(
                        "hw.tpm = {spec:?}: the emulated TPM's state must be outside the state directory {} (a restored copy of the directory would restore the TPM's counter too)",
                        state_dir.display()
                    );
                }
                Ok(TpmSpec::Emulated(path))
            }
            _ => bail!(
                "hw.tpm = {spec:?}: expected device:/dev/tpmrm0, swtpm:host=H,port=P or emulated:/PATH"
            ),
        }
    }

    /// Connects to the TPM.
    pub fn open(&self) -> anyhow::Result<SharedTpm> {
        let tpm: Box<dyn cairn_hw::tpm::Tpm + Send> = match self {
            TpmSpec::Emulated(path) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                Box::new(cairn_hw::tpm::EmulatedTpm::open(path).with_context(|| {
                    format!("cannot open the emulated TPM at {}", path.display())
                })?)
            }
            #[cfg(feature = "tpm")]
            TpmSpec::Tcti(tcti) => Box::new(
                cairn_hw::tpm::EsapiTpm::open(tcti)
                    .with_context(|| format!("cannot open the TPM {tcti}"))?,
            ),
            #[cfg(not(feature = "tpm"))]
            TpmSpec::Tcti(tcti) => bail!(
                "hw.tpm = {tcti:?}: this cairnd was built without TPM support (cargo feature `tpm`, which needs libtss2); use emulated:/PATH or a build with --features tpm"
            ),
        };
        Ok(Arc::new(Mutex::new(tpm)))
    }
}

/// The TPM of a configuration, opened, with what it seals to.
pub struct OpenTpm {
    /// The TPM.
    pub tpm: SharedTpm,
    /// The key seeds' sealer.
    pub sealer: TpmSealer,
}

impl OpenTpm {
    /// Opens `hw.tpm`, if set.
    pub fn from_config(hw: &HwSection, state_dir: &Path) -> anyhow::Result<Option<Self>> {
        let Some(spec) = &hw.tpm else {
            return Ok(None);
        };
        let tpm = TpmSpec::parse(spec, state_dir)?.open()?;
        let selection = PcrSelection::new(&hw.tpm_seal_pcrs)?;
        Ok(Some(OpenTpm {
            sealer: TpmSealer::new(tpm.clone(), selection),
            tpm,
        }))
    }

    /// Which TPM this is.
    pub fn describe(&self) -> String {
        with_tpm(&self.tpm, |t| t.describe())
    }
}

/// The checkpoint an export of `log` stops at (its last): its size and
/// signed note, for the TPM to quote before the bundle is written.
pub fn exported_checkpoint(
    log: &cairn_attest::verify::LogBytes<'_>,
) -> anyhow::Result<(u64, Vec<u8>)> {
    let (cut, cp) = cairn_attest::bundle::cut_at_checkpoint(log, None)?;
    let note = cut
        .checkpoints
        .last()
        .context("the cut holds no checkpoint")?;
    Ok((cp.size, note.bytes.to_vec()))
}

/// What the start-up check of the rollback counter found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterCheck {
    /// The log was never bound and the TPM never counted: the counter was
    /// defined at this value, and the log binds to it.
    Bound(u64),
    /// The log's counter (its newest counter checkpoint, or the binding
    /// itself when no checkpoint followed it yet) and the TPM's agree.
    InStep(u64),
    /// The daemon stopped after storing a checkpoint but before
    /// incrementing; the counter was incremented now.
    CaughtUp(u64),
    /// The state directory and the TPM disagree.
    Mismatch(Mismatch),
}

/// A state directory whose counter does not fit the TPM's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The log's counter: the newest counter checkpoint's, or the
    /// binding's when no checkpoint carries one; `None`: never bound.
    pub ledger_counter: Option<u64>,
    /// The size of the checkpoint that carries it (`None`: from a record).
    pub checkpoint_size: Option<u64>,
    /// The TPM's counter (`None`: not defined).
    pub tpm_counter: Option<u64>,
}

impl Mismatch {
    /// What the disagreement means, in a word for records.
    pub fn verdict(&self) -> &'static str {
        match (self.ledger_counter, self.tpm_counter) {
            (None, _) => "never-bound",
            (Some(c), Some(t)) if c < t => "state-older-than-tpm",
            _ => "tpm-behind-state",
        }
    }

    /// The record body for `tpm.rollback_detected` / `tpm.rollback_accepted`.
    pub fn body(&self, tpm: &str) -> serde_json::Value {
        serde_json::json!({
            "tpm": tpm,
            "nv_index": format!("{COUNTER_NV_INDEX:#010x}"),
            "ledger_counter": self.ledger_counter,
            "checkpoint_size": self.checkpoint_size,
            "tpm_counter": self.tpm_counter,
            "verdict": self.verdict(),
        })
    }

    /// The operator's explanation.
    pub fn explain(&self, state_dir: &Path) -> String {
        let show = |v: Option<u64>| v.map_or("undefined".to_string(), |t| t.to_string());
        let (tpm, ledger) = (show(self.tpm_counter), show(self.ledger_counter));
        let whence = match self.checkpoint_size {
            Some(size) => format!("the newest checkpoint in {} (size {size}) carries TPM counter {ledger}", state_dir.display()),
            None => format!("the ledger in {} was bound to TPM counter {ledger} and has no checkpoint with a counter since", state_dir.display()),
        };
        let accept = "If that is intended, start once with --accept-rollback (recorded as tpm.rollback_accepted).";
        match self.verdict() {
            "state-older-than-tpm" => format!(
                "rollback detected: {whence}, but the TPM's counter is {tpm}: this state directory is older than the one the TPM last saw (restored from a copy?), and records written after it are missing from this ledger. {accept}"
            ),
            "never-bound" => format!(
                "the ledger in {} was never bound to this TPM, but the TPM's counter is already {tpm}: the TPM served another ledger before (a new installation), or this state directory is a copy from before the TPM was configured (a rollback). {accept}",
                state_dir.display()
            ),
            _ => format!(
                "{whence}, but the TPM's counter is {tpm}: this is not the TPM this ledger was bound to, or its counter was reset. {accept}"
            ),
        }
    }
}

/// The counter the log bound to, when no checkpoint carries one: the
/// newest `tpm.counter_bound` (its `counter`) or `tpm.rollback_accepted`
/// (its `continues_from`) record, scanning back from the end.
fn newest_binding(ledger: &Ledger) -> anyhow::Result<Option<Option<u64>>> {
    for seq in (0..ledger.size()).rev() {
        let bytes = ledger.entry(seq)?;
        let record = cairn_attest::entry::Entry::parse(&bytes)?.record;
        let field = match record.kind.as_str() {
            "tpm.counter_bound" => "counter",
            "tpm.rollback_accepted" => "continues_from",
            _ => continue,
        };
        return Ok(Some(record.body.get(field).and_then(|v| v.as_u64())));
    }
    Ok(None)
}

/// Compares the log's counter with the TPM's, catching the counter up by
/// one where the daemon stopped between storing a checkpoint and
/// incrementing, and defining it where a log that was never bound meets a
/// TPM that never counted. Anything else is a [`Mismatch`]: a state
/// directory that lost its counter checkpoints (or never had one) on a TPM
/// that counted is refused like an older one.
pub fn check_counter(ledger: &Ledger, tpm: &SharedTpm) -> anyhow::Result<CounterCheck> {
    let newest = ledger
        .latest_checkpoint_where(|c| c.tpm_counter().is_some())
        .context("cannot read the ledger's checkpoints")?;
    let (ledger_counter, checkpoint_size) = match &newest {
        Some((cp, _)) => (cp.tpm_counter(), Some(cp.size)),
        None => match newest_binding(ledger).context("cannot read the ledger's records")? {
            Some(bound) => (bound, None),
            None => (None, None),
        },
    };
    let never_bound = newest.is_none() && ledger_counter.is_none();
    with_tpm(tpm, |t| {
        let now = t.counter_read().context("cannot read the TPM's counter")?;
        Ok(match (ledger_counter, now) {
            (None, None) if never_bound => CounterCheck::Bound(
                t.counter_increment()
                    .context("cannot define the TPM's counter")?,
            ),
            (Some(c), Some(v)) if v == c => CounterCheck::InStep(v),
            (Some(c), Some(v)) if checkpoint_size.is_some() && v.checked_add(1) == Some(c) => {
                CounterCheck::CaughtUp(
                    t.counter_increment()
                        .context("cannot increment the TPM's counter")?,
                )
            }
            (ledger_counter, tpm_counter) => CounterCheck::Mismatch(Mismatch {
                ledger_counter,
                checkpoint_size,
                tpm_counter,
            }),
        })
    })
}

/// The checkpoint hook that binds checkpoints to the TPM's counter (see
/// the module docs). It increments at most once per `min_interval` (a TPM's
/// NV memory wears and rate-limits writes); a checkpoint made sooner
/// carries the current value.
pub struct CounterBinding {
    tpm: SharedTpm,
    min_interval: Duration,
    state: Mutex<Counting>,
    /// The latest failure, for `/healthz`.
    problem: Mutex<Option<String>>,
}

struct Counting {
    /// The counter's value after the last increment this process made or
    /// saw at start.
    last: u64,
    /// When this process last incremented it.
    at: Option<Instant>,
}

impl CounterBinding {
    /// Binds from a counter at `last`, incrementing at most once per
    /// `min_interval`.
    pub fn new(tpm: SharedTpm, last: u64, min_interval: Duration) -> Self {
        Self {
            tpm,
            min_interval,
            state: Mutex::new(Counting { last, at: None }),
            problem: Mutex::new(None),
        }
    }

    fn counting(&self) -> std::sync::MutexGuard<'_, Counting> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counter's value after the last increment.
    pub fn counter(&self) -> u64 {
        self.counting().last
    }

    /// The latest failure to increment, if the last attempt failed.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl CheckpointHook for CounterBinding {
    fn extensions(&self) -> Vec<String> {
        let c = self.counting();
        let due = c.at.is_none_or(|at| at.elapsed() >= self.min_interval);
        vec![format!("{COUNTER_EXTENSION} {}", c.last + u64::from(due))]
    }

    fn stored(&self, checkpoint: &Checkpoint) {
        let mut c = self.counting();
        if checkpoint.tpm_counter() != Some(c.last + 1) {
            return; // not due: the checkpoint carries the current value
        }
        let result = with_tpm(&self.tpm, |t| t.counter_increment());
        let mut problem = self.problem.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(v) => {
                if v != c.last + 1 {
                    // Someone else incremented it: the next start will see
                    // the TPM ahead of the ledger and refuse.
                    tracing::error!(
                        counter = v,
                        expected = c.last + 1,
                        "the TPM's counter moved outside cairnd"
                    );
                    *problem = Some(format!(
                        "the TPM's counter is {v}, expected {}: something else increments it",
                        c.last + 1
                    ));
                } else {
                    *problem = None;
                }
                c.last = v;
                c.at = Some(Instant::now());
            }
            Err(e) => {
                // The checkpoint carries last + 1; the next one will too,
                // and a start catches the counter up by one.
                tracing::error!(error = %e, size = checkpoint.size, "cannot increment the TPM's counter");
                *problem = Some(format!("cannot increment the TPM's counter: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_emulated_state_stays_outside_the_state_dir() {
        let sd = Path::new("/var/lib/cairn");
        assert_eq!(
            TpmSpec::parse("device:/dev/tpmrm0", sd).unwrap(),
            TpmSpec::Tcti("device:/dev/tpmrm0".into())
        );
        assert!(TpmSpec::parse("swtpm:host=127.0.0.1,port=2321", sd).is_ok());
        assert_eq!(
            TpmSpec::parse("emulated:/var/lib/cairn-hw/tpm", sd).unwrap(),
            TpmSpec::Emulated("/var/lib/cairn-hw/tpm".into())
        );
        for bad in [
            "device:dev/tpm0",
            "swtpm:host=h",
            "swtpm:host=h,port=99999",
            "emulated:/var/lib/cairn/tpm",
            "emulated:/var/lib/cairn-hw/../cairn/tpm",
            "emulated:tpm",
            "tpm0",
        ] {
            assert!(TpmSpec::parse(bad, sd).is_err(), "{bad}");
        }
    }

    #[test]
    fn mismatches_name_their_direction() {
        let m = |c, t| Mismatch {
            ledger_counter: c,
            checkpoint_size: Some(9),
            tpm_counter: t,
        };
        assert_eq!(m(Some(3), Some(5)).verdict(), "state-older-than-tpm");
        assert_eq!(m(Some(7), Some(5)).verdict(), "tpm-behind-state");
        assert_eq!(m(Some(7), None).verdict(), "tpm-behind-state");
        assert_eq!(m(None, Some(5)).verdict(), "never-bound");
        for (c, t) in [(Some(3), Some(5)), (Some(7), None), (None, Some(5))] {
            let e = m(c, t).explain(Path::new("/s"));
            assert!(e.contains("--accept-rollback"), "{e}");
        }
    }

    /// A new ledger and an emulated TPM that never counted, in a temporary
    /// directory.
    fn ledger_and_tpm() -> (tempfile::TempDir, Ledger, SharedTpm) {
        use cairn_attest::{Keyring, LedgerConfig};
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::create(&dir.path().join("keys"), "cairn.example/log").unwrap();
        let ledger = Ledger::open(dir.path(), keys, LedgerConfig::default()).unwrap();
        let tpm: SharedTpm = Arc::new(Mutex::new(Box::new(
            cairn_hw::tpm::EmulatedTpm::open(&dir.path().join("tpm")).unwrap(),
        )));
        (dir, ledger, tpm)
    }

    /// Adds the next counter's line but never increments: a daemon stopped
    /// between storing a checkpoint and incrementing the counter.
    struct StopsBeforeIncrementing(u64);

    impl CheckpointHook for StopsBeforeIncrementing {
        fn extensions(&self) -> Vec<String> {
            vec![format!("{COUNTER_EXTENSION} {}", self.0)]
        }
        fn stored(&self, _: &Checkpoint) {}
    }

    #[test]
    fn the_counter_binds_keeps_step_catches_up_and_sees_a_rollback() {
        use cairn_attest::{Actor, RecordDraft};
        let (_dir, ledger, tpm) = ledger_and_tpm();
        let append = |i: u64| {
            let actor = Actor::System { name: "t".into() };
            ledger
                .append(RecordDraft::new("t", actor, serde_json::json!({ "i": i })))
                .unwrap();
            ledger.checkpoint().unwrap();
        };
        // A TPM that never counted: the counter is defined at 1.
        assert_eq!(
            check_counter(&ledger, &tpm).unwrap(),
            CounterCheck::Bound(1)
        );
        let binding = Arc::new(CounterBinding::new(tpm.clone(), 1, Duration::ZERO));
        ledger.set_checkpoint_hook(binding.clone());
        append(1);
        assert_eq!(binding.counter(), 2);
        assert_eq!(ledger.latest_checkpoint().unwrap().0.tpm_counter(), Some(2));
        assert_eq!(
            check_counter(&ledger, &tpm).unwrap(),
            CounterCheck::InStep(2)
        );
        // Stopped after the checkpoint, before the increment.
        ledger.set_checkpoint_hook(Arc::new(StopsBeforeIncrementing(3)));
        append(2);
        assert_eq!(
            check_counter(&ledger, &tpm).unwrap(),
            CounterCheck::CaughtUp(3)
        );
        assert_eq!(
            check_counter(&ledger, &tpm).unwrap(),
            CounterCheck::InStep(3)
        );
        // The TPM moved on without this ledger (a newer state elsewhere).
        with_tpm(&tpm, |t| t.counter_increment()).unwrap();
        with_tpm(&tpm, |t| t.counter_increment()).unwrap();
        match check_counter(&ledger, &tpm).unwrap() {
            CounterCheck::Mismatch(m) => {
                assert_eq!((m.ledger_counter, m.tpm_counter), (Some(3), Some(5)));
                assert_eq!(m.verdict(), "state-older-than-tpm");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_log_without_counter_checkpoints_binds_only_to_a_tpm_that_never_counted() {
        use cairn_attest::{Actor, RecordDraft};
        let (_dir, ledger, tpm) = ledger_and_tpm();
        // The TPM counted for another ledger (or for this one, before its
        // counter checkpoints were removed).
        with_tpm(&tpm, |t| t.counter_increment()).unwrap();
        with_tpm(&tpm, |t| t.counter_increment()).unwrap();
        match check_counter(&ledger, &tpm).unwrap() {
            CounterCheck::Mismatch(m) => {
                assert_eq!(m.verdict(), "never-bound");
                assert_eq!(m.tpm_counter, Some(2));
            }
            other => panic!("{other:?}"),
        }
        let bind = |counter: u64| {
            let actor = Actor::System { name: "t".into() };
            let body = serde_json::json!({ "counter": counter });
            ledger
                .append(RecordDraft::new("tpm.counter_bound", actor, body))
                .unwrap();
        };
        // Bound, stopped before the first checkpoint with the counter.
        bind(2);
        assert_eq!(
            check_counter(&ledger, &tpm).unwrap(),
            CounterCheck::InStep(2)
        );
        // A binding the TPM has moved on from.
        bind(1);
        match check_counter(&ledger, &tpm).unwrap() {
            CounterCheck::Mismatch(m) => {
                assert_eq!(m.verdict(), "state-older-than-tpm");
                assert_eq!((m.ledger_counter, m.checkpoint_size), (Some(1), None));
            }
            other => panic!("{other:?}"),
        }
    }
}
