//! [`HsmSigner`]: the HSM's identity key as a
//! [`cairn_attest::keys::Signer`].
//!
//! The signer is either *present* (a port open, the device answering) or
//! *lost*. A link failure (hang-up, end of file, timeout, a line that
//! garbles every attempt) makes it lost; while lost, `sign` fails at once
//! without touching the line, so a caller that signs on a hot path (the
//! ledger's writer, when a checkpoint is due) never waits on a dead device.
//! Only [`HsmSigner::probe`] opens the port again, and only a device that
//! shows the same public key is taken back.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use cairn_attest::keys::{Algorithm, PublicKey, Signer};

use super::client::{HsmClient, HsmError, Status, Timing};
use super::serial::SerialTransport;

/// Whether the device answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// The port is open and the device answered its last request.
    Present,
    /// The device is gone, since when and why.
    Lost {
        /// When it was found lost.
        since: SystemTime,
        /// The failure.
        why: String,
    },
}

/// Why [`HsmSigner::open`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// No device at the path, or it does not answer (absent, unplugged,
    /// hung).
    #[error("{0}")]
    Unreachable(String),
    /// A device answered, but not with a usable key.
    #[error("{0}")]
    Unusable(String),
}

enum Link {
    Up(HsmClient<SerialTransport>),
    Lost { since: SystemTime, why: String },
}

/// The identity key held by a serial HSM.
pub struct HsmSigner {
    path: PathBuf,
    public: PublicKey,
    timing: Timing,
    link: Mutex<Link>,
}

impl HsmSigner {
    /// Opens the HSM at `path`, reads its public key and names it `name`
    /// (the log's origin, for the identity key). Fails if the device is
    /// not there or does not answer ([`OpenError::Unreachable`]), or
    /// answers but is not ready or not an HSM of this protocol
    /// ([`OpenError::Unusable`]).
    pub fn open(path: &Path, name: &str, timing: Timing) -> Result<Self, OpenError> {
        let mut client = connect(path, timing).map_err(OpenError::Unreachable)?;
        let answer = |e: HsmError| {
            let why = describe(path, &e);
            if e.is_link_failure() {
                OpenError::Unreachable(why)
            } else {
                OpenError::Unusable(why)
            }
        };
        let status = client.status().map_err(answer)?;
        if !status.ready {
            return Err(OpenError::Unusable(format!(
                "the HSM at {} ({}) has no usable key",
                path.display(),
                status.firmware
            )));
        }
        let bytes = client.public_key().map_err(answer)?;
        let public = PublicKey::new(name, Algorithm::MlDsa65, bytes)
            .map_err(|e| OpenError::Unusable(format!("the HSM at {}: {e}", path.display())))?;
        Ok(HsmSigner {
            path: path.to_path_buf(),
            public,
            timing,
            link: Mutex::new(Link::Up(client)),
        })
    }

    /// The HSM at `path` that holds `public` (as the key directory
    /// recorded it) but did not answer at start (`why`): lost from the
    /// beginning, taken back by [`HsmSigner::probe`] once a device with
    /// that key answers there.
    pub fn absent(path: &Path, public: PublicKey, timing: Timing, why: String) -> Self {
        HsmSigner {
            path: path.to_path_buf(),
            public,
            timing,
            link: Mutex::new(Link::Lost {
                since: SystemTime::now(),
                why,
            }),
        }
    }

    /// The device's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Present or lost, as last seen (no I/O).
    pub fn health(&self) -> Health {
        match &*self.lock() {
            Link::Up(_) => Health::Present,
            Link::Lost { since, why } => Health::Lost {
                since: *since,
                why: why.clone(),
            },
        }
    }

    /// Checks the device: a present one is asked for its status (and found
    /// lost if it does not answer); a lost one is opened again and taken
    /// back if it answers with the same public key. Returns the health and,
    /// when present, the status.
    pub fn probe(&self) -> (Health, Option<Status>) {
        let mut link = self.lock();
        if let Link::Lost { .. } = &*link {
            match self.reconnect() {
                Ok(client) => *link = Link::Up(client),
                Err(why) => {
                    if let Link::Lost { why: w, .. } = &mut *link {
                        *w = why;
                    }
                }
            }
        }
        let status = match &mut *link {
            Link::Up(client) => match client.status() {
                Ok(s) => Some(s),
                Err(e) => {
                    *link = lost(&self.path, &e);
                    None
                }
            },
            Link::Lost { .. } => None,
        };
        drop(link);
        (self.health(), status)
    }

    /// Adds one to the device's monotonic counter (never resent: see
    /// [`HsmClient::increment_counter`]).
    pub fn increment_counter(&self) -> Result<u64, String> {
        self.with_client(|c| c.increment_counter())
    }

    fn reconnect(&self) -> Result<HsmClient<SerialTransport>, String> {
        let mut client = connect(&self.path, self.timing)?;
        let bytes = client.public_key().map_err(|e| describe(&self.path, &e))?;
        if bytes != self.public.bytes() {
            return Err(format!(
                "the device now at {} holds a different key; it is not taken as the log's identity",
                self.path.display()
            ));
        }
        Ok(client)
    }

    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut HsmClient<SerialTransport>) -> Result<T, HsmError>,
    ) -> Result<T, String> {
        let mut link = self.lock();
        let client = match &mut *link {
            Link::Up(c) => c,
            Link::Lost { why, .. } => {
                return Err(format!("the HSM at {} is lost: {why}", self.path.display()))
            }
        };
        f(client).map_err(|e| {
            let why = describe(&self.path, &e);
            if e.is_link_failure() {
                *link = lost(&self.path, &e);
            }
            why
        })
    }

    fn lock(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Signer for HsmSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs on the device, then checks the signature with the public key,
    /// so a faulty device cannot slip a bad signature into the log.
    fn sign(&self, msg: &[u8], ctx: &[u8]) -> cairn_attest::Result<Vec<u8>> {
        let err = |why: String| cairn_attest::Error::Signer {
            key: self.public.name().to_string(),
            why,
        };
        let sig = self.with_client(|c| c.sign(msg, ctx)).map_err(err)?;
        if !self.public.verify(msg, &sig, ctx) {
            return Err(err(format!(
                "the HSM at {} returned a signature that does not verify",
                self.path.display()
            )));
        }
        Ok(sig)
    }
}

fn connect(path: &Path, timing: Timing) -> Result<HsmClient<SerialTransport>, String> {
    SerialTransport::open(path)
        .map(|t| HsmClient::new(t, timing))
        .map_err(|e| format!("cannot open the HSM at {}: {e}", path.display()))
}

fn describe(path: &Path, e: &HsmError) -> String {
    format!("the HSM at {}: {e}", path.display())
}

fn lost(path: &Path, e: &HsmError) -> Link {
    Link::Lost {
        since: SystemTime::now(),
        why: describe(path, e),
    }
}
