//! Keys: public keys in signed-note `vkey` form, the [`Signer`] trait the
//! ledger signs through, and software signers whose 32-byte seeds live in
//! 0600 files and whose expanded keys are mlocked and zeroised.
//!
//! A TPM-sealed or HSM-held key implements [`Signer`] in the `hw` crate; the
//! ledger cannot tell the difference.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use fips204::ml_dsa_65;
use fips204::traits::{KeyGen, SerDes, Verifier as _};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::note::check_key_name;
use crate::secure_mem::{lock_stack_once, scrub_stack, Locked};

/// ML-DSA-65 context for record signatures.
pub const CTX_RECORD: &[u8] = b"cairn/record/v1";
/// ML-DSA-65 context for checkpoint signatures.
pub const CTX_CHECKPOINT: &[u8] = b"cairn/checkpoint/v1";
/// ML-DSA-65 context for key certificates (identity key over operational key).
pub const CTX_KEY_CERTIFICATE: &[u8] = b"cairn/key-certificate/v1";

/// The 4-byte key id of signed notes: the first four bytes of
/// SHA-256(name ‖ "\n" ‖ type ‖ public key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 4]);

/// A signature algorithm and its signed-note type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 (signed-note type 0x01), for co-signatures that existing
    /// note verifiers and witnesses accept.
    Ed25519,
    /// ML-DSA-65, FIPS 204. signed-note registers no type byte for it, so
    /// cairn uses the escape byte 0xFF followed by an identifier
    /// ([`MLDSA65_NOTE_TYPE`]), as signed-note recommends.
    MlDsa65,
}

/// The signed-note "signature type" of cairn's ML-DSA-65 keys: 0xFF (types
/// without an assigned byte) followed by the identifier `cairn/ml-dsa-65`.
pub const MLDSA65_NOTE_TYPE: &[u8] = b"\xffcairn/ml-dsa-65";

impl Algorithm {
    /// The signed-note signature type: one byte, or 0xFF and an identifier.
    pub fn note_type(self) -> &'static [u8] {
        match self {
            Algorithm::Ed25519 => &[0x01],
            Algorithm::MlDsa65 => MLDSA65_NOTE_TYPE,
        }
    }

    /// Splits `type ‖ key` into the algorithm and the key.
    fn split_typed(raw: &[u8]) -> Option<(Self, &[u8])> {
        [Algorithm::Ed25519, Algorithm::MlDsa65]
            .into_iter()
            .find_map(|a| raw.strip_prefix(a.note_type()).map(|k| (a, k)))
    }

    /// The public-key length in bytes.
    pub fn public_len(self) -> usize {
        match self {
            Algorithm::Ed25519 => 32,
            Algorithm::MlDsa65 => ml_dsa_65::PK_LEN,
        }
    }

    /// The signature length in bytes.
    pub fn signature_len(self) -> usize {
        match self {
            Algorithm::Ed25519 => 64,
            Algorithm::MlDsa65 => ml_dsa_65::SIG_LEN,
        }
    }

    /// A short human name.
    pub fn label(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::MlDsa65 => "ml-dsa-65",
        }
    }

    fn from_label(s: &str) -> Option<Self> {
        match s {
            "ed25519" => Some(Algorithm::Ed25519),
            "ml-dsa-65" => Some(Algorithm::MlDsa65),
            _ => None,
        }
    }
}

/// A named public key, as it appears in a signed-note verifier key.
#[derive(Clone)]
pub struct PublicKey {
    name: String,
    algorithm: Algorithm,
    bytes: Vec<u8>,
    key_id: KeyId,
    /// The key expanded once for verification (ML-DSA expansion costs
    /// about a third of a verification).
    expanded: Expanded,
}

#[derive(Clone)]
enum Expanded {
    MlDsa65(Arc<ml_dsa_65::PublicKey>),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.algorithm == other.algorithm && self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PublicKey({} {} {})",
            self.name,
            self.algorithm.label(),
            self.fingerprint()
        )
    }
}

impl PublicKey {
    /// A public key from its parts; checks the name and the key length.
    pub fn new(name: &str, algorithm: Algorithm, bytes: Vec<u8>) -> Result<Self> {
        check_key_name(name)?;
        if bytes.len() != algorithm.public_len() {
            return Err(Error::malformed(
                "public key",
                format!(
                    "{} key is {} bytes, expected {}",
                    algorithm.label(),
                    bytes.len(),
                    algorithm.public_len()
                ),
            ));
        }
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update(b"\n");
        h.update(algorithm.note_type());
        h.update(&bytes);
        let d = h.finalize();
        let invalid = || {
            Error::malformed(
                "public key",
                format!("not a valid {} key", algorithm.label()),
            )
        };
        let expanded = match algorithm {
            Algorithm::MlDsa65 => Expanded::MlDsa65(Arc::new(
                ml_dsa_65::PublicKey::try_from_bytes(
                    bytes.as_slice().try_into().map_err(|_| invalid())?,
                )
                .map_err(|_| invalid())?,
            )),
            Algorithm::Ed25519 => Expanded::Ed25519(
                ed25519_dalek::VerifyingKey::from_bytes(
                    &bytes.as_slice().try_into().map_err(|_| invalid())?,
                )
                .map_err(|_| invalid())?,
            ),
        };
        Ok(PublicKey {
            name: name.to_string(),
            algorithm,
            bytes,
            key_id: KeyId([d[0], d[1], d[2], d[3]]),
            expanded,
        })
    }

    /// Parses a verifier key `name+hex(key id)+base64(type ‖ key)`.
    pub fn from_vkey(vkey: &str) -> Result<Self> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::malformed("verifier key", "expected name+id+key"));
        };
        let raw = B64
            .decode(key)
            .map_err(|_| Error::malformed("verifier key", "key is not base64"))?;
        let (algorithm, bytes) = Algorithm::split_typed(&raw).ok_or_else(|| {
            Error::malformed(
                "verifier key",
                format!(
                    "unknown signature type {:02x?}",
                    raw.get(..1).unwrap_or_default()
                ),
            )
        })?;
        let pk = PublicKey::new(name, algorithm, bytes.to_vec())?;
        if id != hex::encode(pk.key_id.0) {
            return Err(Error::malformed(
                "verifier key",
                "key id does not match the key",
            ));
        }
        Ok(pk)
    }

    /// The verifier key string, `name+hex(key id)+base64(type ‖ key)`.
    pub fn vkey(&self) -> String {
        let mut raw = self.algorithm.note_type().to_vec();
        raw.extend_from_slice(&self.bytes);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id.0),
            B64.encode(raw)
        )
    }

    /// SHA-256 over type ‖ key, hex: the fingerprint to compare out of band.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.algorithm.note_type());
        h.update(&self.bytes);
        hex::encode(h.finalize())
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The raw public key.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signed-note key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Verifies `sig` over `msg`. `ctx` is the ML-DSA context string; Ed25519
    /// signs the message alone (signed-note's convention) and ignores it.
    pub fn verify(&self, msg: &[u8], sig: &[u8], ctx: &[u8]) -> bool {
        match &self.expanded {
            Expanded::MlDsa65(pk) => match <&[u8; ml_dsa_65::SIG_LEN]>::try_from(sig) {
                Ok(sig) => pk.verify(msg, sig, ctx),
                Err(_) => false,
            },
            Expanded::Ed25519(vk) => match ed25519_dalek::Signature::from_slice(sig) {
                Ok(sig) => vk.verify_strict(msg, &sig).is_ok(),
                Err(_) => false,
            },
        }
    }
}

/// Something that signs with one key. The ledger signs only through this
/// trait, so the key may live in software, a TPM-sealed blob or an HSM.
pub trait Signer: Send + Sync {
    /// The public half, with its note name.
    fn public_key(&self) -> &PublicKey;
    /// Signs `msg` with ML-DSA context `ctx` (ignored by Ed25519). An error
    /// means no signature was made (device lost, key unusable).
    fn sign(&self, msg: &[u8], ctx: &[u8]) -> Result<Vec<u8>>;

    /// Whether signing the same message on several threads at once, and
    /// keeping the first signature, is cheap and harmless. True for
    /// software ML-DSA (hedged signing: each attempt draws fresh randomness
    /// and its rejection loop runs a random number of rounds, so the first
    /// of two finishes sooner); false by default, and for devices.
    fn can_race(&self) -> bool {
        false
    }
}

/// A software ML-DSA-65 key, expanded from a 32-byte seed, mlocked.
///
/// Two independent FIPS 204 implementations share the work: `fips204`
/// derives the key pair from the seed and checks every signature, and
/// `libcrux-ml-dsa` (formally verified arithmetic, an AVX2 path chosen at
/// run time) makes the signatures. A signature the check refuses is an
/// error, never returned.
pub struct SoftwareMlDsa65 {
    public: PublicKey,
    secret: Locked<SigningKey>,
}

/// Stack that one libcrux ML-DSA-65 signature may use and leave secrets in,
/// in 8-byte words: 192 KiB (a thread needs 137–144 KiB to sign, AVX2 path).
const SIGNING_STACK_WORDS: usize = 192 * 1024 / 8;

/// libcrux's signing key, zeroised on drop (the type does not do it itself).
struct SigningKey(libcrux_ml_dsa::ml_dsa_65::MLDSA65SigningKey);

impl Drop for SigningKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self.0.as_mut_slice());
    }
}

impl SoftwareMlDsa65 {
    /// Derives the key pair from a seed (FIPS 204 `ML-DSA.KeyGen_internal`).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self> {
        let (pk, sk) = ml_dsa_65::KG::keygen_from_seed(seed);
        Self::from_parts(name, pk, sk)
    }

    /// The signer of private key `sk` (in its FIPS 204 encoding) whose
    /// signatures must verify under `pk`.
    fn from_parts(name: &str, pk: ml_dsa_65::PublicKey, sk: ml_dsa_65::PrivateKey) -> Result<Self> {
        let encoded = Zeroizing::new(sk.into_bytes());
        let mut secret = Locked::new(SigningKey(
            libcrux_ml_dsa::ml_dsa_65::MLDSA65SigningKey::new([0; ml_dsa_65::SK_LEN]),
        ));
        secret
            .value_mut()
            .0
            .as_mut_slice()
            .copy_from_slice(&encoded[..]);
        Ok(SoftwareMlDsa65 {
            public: PublicKey::new(name, Algorithm::MlDsa65, pk.into_bytes().to_vec())?,
            secret,
        })
    }
}

impl Signer for SoftwareMlDsa65 {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn can_race(&self) -> bool {
        true
    }

    fn sign(&self, msg: &[u8], ctx: &[u8]) -> Result<Vec<u8>> {
        let failed = |why: String| Error::Signer {
            key: self.public.name.clone(),
            why,
        };
        // Hedged signing (FIPS 204 §3.4): fresh randomness for each signature.
        let mut rnd = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut rnd[..])
            .map_err(|e| failed(format!("no randomness for signing: {e}")))?;
        // libcrux decodes the key's secret parts onto this thread's stack
        // for each signature (about 140 KiB deep, measured) and does not
        // wipe them: that stack is locked in RAM (once per thread) and
        // overwritten after every signature, before anything else runs on it.
        lock_stack_once::<{ SIGNING_STACK_WORDS + 64 * 1024 / 8 }>();
        let signed = libcrux_ml_dsa::ml_dsa_65::sign(&self.secret.0, msg, ctx, *rnd);
        scrub_stack::<SIGNING_STACK_WORDS>();
        let sig = signed.map_err(|e| failed(format!("ML-DSA-65 signing failed: {e:?}")))?;
        if !self.public.verify(msg, sig.as_ref(), ctx) {
            return Err(failed(
                "the signature did not verify under fips204 (signer fault); not used".into(),
            ));
        }
        Ok(sig.as_ref().to_vec())
    }
}

/// A software Ed25519 key (for co-signing checkpoints), mlocked.
pub struct SoftwareEd25519 {
    public: PublicKey,
    secret: Locked<ed25519_dalek::SigningKey>,
}

impl SoftwareEd25519 {
    /// The key pair for a 32-byte seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self> {
        let sk = ed25519_dalek::SigningKey::from_bytes(seed);
        Ok(SoftwareEd25519 {
            public: PublicKey::new(
                name,
                Algorithm::Ed25519,
                sk.verifying_key().to_bytes().to_vec(),
            )?,
            secret: Locked::new(sk),
        })
    }
}

impl Signer for SoftwareEd25519 {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, msg: &[u8], _ctx: &[u8]) -> Result<Vec<u8>> {
        use ed25519_dalek::Signer as _;
        Ok(self.secret.sign(msg).to_bytes().to_vec())
    }
}

/// Header of a secret key file; the second line is the base64 seed.
const SECRET_HEADER: &str = "cairn-secret-key/v1";
/// Header of a sealed key file: then the public key (`vkey` line) and the
/// sealed seed (`sealed` line, base64 of what the [`SeedSealer`] made).
const SEALED_HEADER: &str = "cairn-sealed-key/v1";
/// The most a key file may hold (a sealed TPM blob is a few hundred bytes).
const MAX_KEY_FILE: u64 = 16 * 1024;

/// Keeps key seeds sealed by a device (a TPM, in the `hw` crate): a sealed
/// key file holds only what [`SeedSealer::seal`] returned, and the seed
/// exists in memory only once the device agreed to [`SeedSealer::unseal`]
/// it.
pub trait SeedSealer: Send + Sync {
    /// Which device seals, and to what, for messages and `cairn keys`.
    fn describe(&self) -> String;
    /// Seals a 32-byte seed, giving bytes to store.
    fn seal(&self, seed: &[u8; 32]) -> Result<Vec<u8>>;
    /// Unseals what [`SeedSealer::seal`] gave; an error when the device
    /// refuses (other PCR values, another device).
    fn unseal(&self, sealed: &[u8]) -> Result<Zeroizing<[u8; 32]>>;
}

/// How a key file keeps its seed, as [`read_key_file_public`] tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// The seed in the file itself (mode 0600).
    File,
    /// The seed sealed by a device; the file holds the sealed blob.
    Sealed,
}

/// Creates a key file (mode 0600, refusing to overwrite) for a fresh
/// random seed and returns the signer: the seed itself, or, with `sealer`,
/// the seed sealed by it beside the public key.
pub fn create_key_file(
    path: &Path,
    algorithm: Algorithm,
    name: &str,
    sealer: Option<&dyn SeedSealer>,
) -> Result<Box<dyn Signer>> {
    check_key_name(name)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut()).map_err(|e| Error::Signer {
        key: name.to_string(),
        why: format!("no randomness for a new key: {e}"),
    })?;
    let signer = signer_from_seed(algorithm, name, &seed)?;
    let body = key_file_body(signer.as_ref(), &seed, sealer)?;
    write_new_private(path, &body)?;
    // The key's name must survive a power loss as well as its bytes.
    crate::journal::sync_parent(path)?;
    Ok(signer)
}

/// A key file's text for `signer`, made from `seed`: the seed itself, or
/// sealed by `sealer` beside the public key.
fn key_file_body(
    signer: &dyn Signer,
    seed: &[u8; 32],
    sealer: Option<&dyn SeedSealer>,
) -> Result<Zeroizing<String>> {
    let pk = signer.public_key();
    let (alg, name) = (pk.algorithm().label(), pk.name());
    Ok(Zeroizing::new(match sealer {
        None => format!("{SECRET_HEADER} {alg} {name}\n{}\n", B64.encode(seed)),
        Some(sealer) => format!(
            "{SEALED_HEADER} {alg} {name}\nvkey {}\nsealed {}\n",
            pk.vkey(),
            B64.encode(sealer.seal(seed)?)
        ),
    }))
}

/// Creates `path` (mode 0600; it must not exist) holding `body`, synced.
fn write_new_private(path: &Path, body: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(body.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Rewrites a key file that holds its seed in the clear so that it holds
/// the seed sealed by `sealer` (a new file renamed over the old one, so a
/// crash leaves one or the other); `false` when it was sealed already.
/// The old file's blocks are freed, not overwritten: on a journaling or
/// copy-on-write file system the seed may stay readable on the disk.
pub fn seal_key_file(path: &Path, sealer: &dyn SeedSealer) -> Result<bool> {
    let KeyFile::Secret {
        algorithm,
        name,
        seed,
    } = read_key_file(path)?
    else {
        return Ok(false);
    };
    let signer = signer_from_seed(algorithm, &name, &seed)?;
    let body = key_file_body(signer.as_ref(), &seed, Some(sealer))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".sealing");
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    write_new_private(&tmp, &body)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    crate::journal::sync_parent(path)?;
    Ok(true)
}

/// A key file's contents, parsed but not unsealed.
enum KeyFile {
    Secret {
        algorithm: Algorithm,
        name: String,
        seed: Zeroizing<[u8; 32]>,
    },
    Sealed {
        algorithm: Algorithm,
        name: String,
        public: Box<PublicKey>,
        sealed: Vec<u8>,
    },
}

/// Reads and parses a key file, refusing one that group or others can
/// read, an oversized one, and anything malformed.
fn read_key_file(path: &Path) -> Result<KeyFile> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Invalid(format!(
            "{}: secret key file has mode {mode:04o}; it must be 0600 (chmod 600 it, or make a new key)",
            path.display()
        )));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(Error::malformed(
            "secret key file",
            format!("{} is too large", path.display()),
        ));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?);
    let bad = |why: &str| Error::malformed("secret key file", format!("{}: {why}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    let [h, alg, name] = header.as_slice() else {
        return Err(bad(
            "first line must be 'cairn-secret-key/v1 ALGORITHM NAME' or 'cairn-sealed-key/v1 ALGORITHM NAME'",
        ));
    };
    let algorithm = Algorithm::from_label(alg).ok_or_else(|| bad("unknown algorithm"))?;
    check_key_name(name)?;
    let name = name.to_string();
    match *h {
        SECRET_HEADER => {
            let raw = Zeroizing::new(
                B64.decode(lines.next().unwrap_or_default())
                    .map_err(|_| bad("seed is not base64"))?,
            );
            let seed = Zeroizing::new(
                <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| bad("seed must be 32 bytes"))?,
            );
            Ok(KeyFile::Secret {
                algorithm,
                name,
                seed,
            })
        }
        SEALED_HEADER => {
            let mut field = |label: &str| {
                lines
                    .next()
                    .and_then(|l| l.strip_prefix(label))
                    .and_then(|l| l.strip_prefix(' '))
                    .ok_or_else(|| bad(&format!("no {label} line")))
            };
            let public = PublicKey::from_vkey(field("vkey")?)?;
            let sealed = B64
                .decode(field("sealed")?)
                .map_err(|_| bad("sealed seed is not base64"))?;
            if public.algorithm() != algorithm || public.name() != name {
                return Err(bad("the vkey line names another key"));
            }
            Ok(KeyFile::Sealed {
                algorithm,
                name,
                public: Box::new(public),
                sealed,
            })
        }
        _ => Err(bad("not a cairn secret key")),
    }
}

/// Loads a key file: a secret key file as it is, a sealed one by asking
/// `sealer` to unseal its seed (refused without a sealer, and when the
/// unsealed seed does not give the public key the file names).
pub fn load_key_file(path: &Path, sealer: Option<&dyn SeedSealer>) -> Result<Box<dyn Signer>> {
    match read_key_file(path)? {
        KeyFile::Secret {
            algorithm,
            name,
            seed,
        } => signer_from_seed(algorithm, &name, &seed),
        KeyFile::Sealed {
            algorithm,
            name,
            public,
            sealed,
        } => {
            let sealer = sealer.ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: the key is sealed to a TPM; configure the TPM (hw.tpm) to use it",
                    path.display()
                ))
            })?;
            let seed = sealer.unseal(&sealed).map_err(|e| {
                Error::Invalid(format!(
                    "{}: {} cannot unseal the key: {e}",
                    path.display(),
                    sealer.describe()
                ))
            })?;
            let signer = signer_from_seed(algorithm, &name, &seed)?;
            if signer.public_key() != public.as_ref() {
                return Err(Error::Invalid(format!(
                    "{}: the unsealed seed is not the key the file names (a sealed blob of another key)",
                    path.display()
                )));
            }
            Ok(signer)
        }
    }
}

/// A key file's public key and how it keeps its seed, without unsealing.
pub fn read_key_file_public(path: &Path) -> Result<(PublicKey, Protection)> {
    match read_key_file(path)? {
        KeyFile::Secret {
            algorithm,
            name,
            seed,
        } => Ok((
            signer_from_seed(algorithm, &name, &seed)?
                .public_key()
                .clone(),
            Protection::File,
        )),
        KeyFile::Sealed { public, .. } => Ok((*public, Protection::Sealed)),
    }
}

fn signer_from_seed(algorithm: Algorithm, name: &str, seed: &[u8; 32]) -> Result<Box<dyn Signer>> {
    Ok(match algorithm {
        Algorithm::MlDsa65 => Box::new(SoftwareMlDsa65::from_seed(name, seed)?),
        Algorithm::Ed25519 => Box::new(SoftwareEd25519::from_seed(name, seed)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ml_dsa_sign_verify_with_context() {
        let k = SoftwareMlDsa65::from_seed("log.example", &[1; 32]).unwrap();
        let sig = k.sign(b"msg", CTX_RECORD).unwrap();
        assert_eq!(sig.len(), 3309);
        assert!(k.public_key().verify(b"msg", &sig, CTX_RECORD));
        assert!(!k.public_key().verify(b"msg", &sig, CTX_CHECKPOINT));
        assert!(!k.public_key().verify(b"msh", &sig, CTX_RECORD));
    }

    #[test]
    fn signatures_are_plain_fips204_and_a_faulty_one_is_refused() {
        // fips204's own verifier, not the key's, accepts the signatures.
        let (pk, _) = ml_dsa_65::KG::keygen_from_seed(&[3; 32]);
        let k = SoftwareMlDsa65::from_seed("log.example", &[3; 32]).unwrap();
        assert_eq!(k.public_key().bytes(), &pk.clone().into_bytes()[..]);
        let a = k.sign(b"record", CTX_RECORD).unwrap();
        let b = k.sign(b"record", CTX_RECORD).unwrap();
        assert_ne!(a, b, "hedged: each signature draws fresh randomness");
        for sig in [&a, &b] {
            let sig: &[u8; ml_dsa_65::SIG_LEN] = sig[..].try_into().unwrap();
            assert!(pk.verify(b"record", sig, CTX_RECORD));
        }
        // A signer whose secret does not match its public key stands for a
        // faulty signature: the check refuses it and nothing is returned.
        let (_, other) = ml_dsa_65::KG::keygen_from_seed(&[4; 32]);
        let faulty = SoftwareMlDsa65::from_parts("log.example", pk, other).unwrap();
        let err = faulty.sign(b"record", CTX_RECORD).unwrap_err();
        assert!(
            err.to_string().contains("did not verify under fips204"),
            "{err}"
        );
        // Context strings over 255 bytes are refused, not truncated.
        assert!(k.sign(b"record", &[b'c'; 256]).is_err());
    }

    #[test]
    fn signing_locks_the_stack_it_leaves_secrets_on() {
        let k = SoftwareMlDsa65::from_seed("log.example", &[5; 32]).unwrap();
        let locked = crate::secure_mem::tests::stack_kib_locked_by(move || {
            k.sign(b"record", CTX_RECORD).unwrap();
        });
        if let Some(kib) = locked {
            assert!(kib >= 192, "{kib} KiB of the signing stack locked");
        }
    }

    #[test]
    fn vkey_round_trips_and_rejects_a_wrong_id() {
        for k in [
            Box::new(SoftwareMlDsa65::from_seed("a.example/log", &[2; 32]).unwrap())
                as Box<dyn Signer>,
            Box::new(SoftwareEd25519::from_seed("a.example/log", &[2; 32]).unwrap()),
        ] {
            let v = k.public_key().vkey();
            assert_eq!(&PublicKey::from_vkey(&v).unwrap(), k.public_key());
            let mut bad = v.clone();
            bad.replace_range(v.find('+').unwrap() + 1..v.find('+').unwrap() + 3, "zz");
            assert!(PublicKey::from_vkey(&bad).is_err());
        }
    }

    #[test]
    fn key_files_are_0600_and_loose_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let a = create_key_file(&p, Algorithm::MlDsa65, "x.example", None).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = load_key_file(&p, None).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert!(create_key_file(&p, Algorithm::MlDsa65, "x.example", None).is_err());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_key_file(&p, None)
            .err()
            .unwrap()
            .to_string()
            .contains("0600"));
    }

    /// A sealer for tests: XOR with a pad, refusing while `refuse` is set.
    struct PadSealer {
        pad: u8,
        refuse: std::sync::atomic::AtomicBool,
    }

    impl SeedSealer for PadSealer {
        fn describe(&self) -> String {
            "the test sealer".into()
        }
        fn seal(&self, seed: &[u8; 32]) -> Result<Vec<u8>> {
            Ok(seed.iter().map(|b| b ^ self.pad).collect())
        }
        fn unseal(&self, sealed: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
            if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::Invalid("policy mismatch".into()));
            }
            let v: Vec<u8> = sealed.iter().map(|b| b ^ self.pad).collect();
            Ok(Zeroizing::new(
                v.try_into()
                    .map_err(|_| Error::Invalid("wrong length".into()))?,
            ))
        }
    }

    #[test]
    fn sealed_key_files_hold_no_seed_and_need_their_sealer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let sealer = PadSealer {
            pad: 0x5a,
            refuse: false.into(),
        };
        let a = create_key_file(&p, Algorithm::MlDsa65, "x.example", Some(&sealer)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("cairn-sealed-key/v1 ml-dsa-65 x.example\nvkey "));
        assert_eq!(
            read_key_file_public(&p).unwrap(),
            (a.public_key().clone(), Protection::Sealed)
        );
        let b = load_key_file(&p, Some(&sealer)).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        // No sealer, a refusing one, or one that unseals another seed.
        let e = load_key_file(&p, None).err().unwrap().to_string();
        assert!(e.contains("sealed to a TPM"), "{e}");
        sealer
            .refuse
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let e = load_key_file(&p, Some(&sealer)).err().unwrap().to_string();
        assert!(
            e.contains("cannot unseal") && e.contains("policy mismatch"),
            "{e}"
        );
        let other = PadSealer {
            pad: 0x33,
            refuse: false.into(),
        };
        let e = load_key_file(&p, Some(&other)).err().unwrap().to_string();
        assert!(e.contains("not the key the file names"), "{e}");
        sealer
            .refuse
            .store(false, std::sync::atomic::Ordering::SeqCst);
        // A vkey line of a key with another name is refused before
        // unsealing; one of another key with the same name, after.
        let line = |k: &dyn Signer| format!("vkey {}", k.public_key().vkey());
        let own = line(a.as_ref());
        let other_name = SoftwareMlDsa65::from_seed("y.example", &[1; 32]).unwrap();
        std::fs::write(&p, text.replacen(&own, &line(&other_name), 1)).unwrap();
        let e = read_key_file_public(&p).err().unwrap().to_string();
        assert!(e.contains("names another key"), "{e}");
        let other_key = SoftwareMlDsa65::from_seed("x.example", &[1; 32]).unwrap();
        std::fs::write(&p, text.replacen(&own, &line(&other_key), 1)).unwrap();
        let e = load_key_file(&p, Some(&sealer)).err().unwrap().to_string();
        assert!(e.contains("not the key the file names"), "{e}");
    }

    #[test]
    fn a_plain_key_file_is_sealed_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let sealer = PadSealer {
            pad: 0x5a,
            refuse: false.into(),
        };
        let a = create_key_file(&p, Algorithm::Ed25519, "x.example", None).unwrap();
        assert!(seal_key_file(&p, &sealer).unwrap());
        assert!(!seal_key_file(&p, &sealer).unwrap(), "sealed already");
        assert_eq!(
            read_key_file_public(&p).unwrap(),
            (a.public_key().clone(), Protection::Sealed)
        );
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = load_key_file(&p, Some(&sealer)).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert!(!dir.path().join("k.sealing").exists());
    }
}
