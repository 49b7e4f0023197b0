//! A real TPM 2.0 (or `swtpm`) through tpm2-tss's ESAPI (`tss-esapi` 7.x).
//!
//! - TCTI: `device:/dev/tpmrm0` on hardware (the kernel's resource
//!   manager), `swtpm:host=127.0.0.1,port=P` in tests. Every transient object and
//!   session is flushed after use, so it also works without a resource
//!   manager (swtpm), and nothing is left in the TPM between calls.
//! - **Storage key**: an ECC P-256 restricted decryption primary key in the
//!   owner hierarchy, created again for each seal and unseal (primary keys
//!   derive deterministically from the hierarchy's seed and the template,
//!   so it is the same key each time; nothing persistent is needed).
//! - **Sealing**: a keyed-hash object under it holding the seed, with no
//!   user auth (`userWithAuth` clear): only a policy session that passed
//!   TPM2_PolicyPCR over the selection, with the values at sealing time,
//!   satisfies its policy. The blob is TPM2B_PUBLIC ‖ TPM2B_PRIVATE
//!   (wrapped by the storage key: useless on another TPM).
//! - **Attestation key**: an ECC P-256 restricted signing primary key
//!   (ECDSA, SHA-256) in the endorsement hierarchy, likewise created per
//!   use and the same each time. Its public key is what a verifier pins;
//!   there is no credential activation against the EK certificate here, so
//!   the verifier must learn the AK from the appliance at enrolment.
//! - **Counter**: NV index [`super::COUNTER_NV_INDEX`], type counter,
//!   owner read/write, defined at the first increment.
//! - Hierarchy auth values are taken to be empty (a fresh TPM's).
//! - No parameter encryption: the seed crosses the bus in clear when
//!   unsealed, as with most TPM software; an attacker probing the LPC/SPI
//!   bus is outside what this defends against.

use super::{
    pcr_digest, AkPublic, Backend, PcrSelection, Quote, QuoteSignature, SealedSeed, Tpm, TpmError,
    COUNTER_NV_INDEX,
};
use std::str::FromStr;
use tss_esapi::attributes::{NvIndexAttributesBuilder, ObjectAttributesBuilder};
use tss_esapi::constants::{response_code::Tss2ResponseCodeKind, SessionType};
use tss_esapi::handles::{
    KeyHandle, NvIndexHandle, NvIndexTpmHandle, ObjectHandle, PcrHandle, SessionHandle, TpmHandle,
};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::{Hierarchy, NvAuth, Provision};
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Data, Digest, DigestValues, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme,
    KeyedHashScheme, NvPublicBuilder, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, Private,
    Public, PublicBuilder, PublicEccParameters, PublicEccParametersBuilder,
    PublicKeyedHashParameters, SensitiveData, Signature, SignatureScheme, SymmetricDefinition,
    SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::{Context, TctiNameConf};
use zeroize::Zeroizing;

/// A TPM reached through a TCTI.
pub struct EsapiTpm {
    ctx: Context,
    tcti: String,
}

fn dev(e: tss_esapi::Error) -> TpmError {
    TpmError::Device(e.to_string())
}

fn kind(e: &tss_esapi::Error) -> Option<Tss2ResponseCodeKind> {
    match e {
        tss_esapi::Error::Tss2Error(rc) => rc.kind(),
        tss_esapi::Error::WrapperError(_) => None,
    }
}

fn selection_list(selection: PcrSelection) -> Result<PcrSelectionList, TpmError> {
    let slots = selection
        .pcrs()
        .map(|p| PcrSlot::try_from(1u32 << p).map_err(dev))
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(dev)
}

fn storage_key_template() -> Result<Public, TpmError> {
    restricted_p256_template(
        |a| a.with_no_da(true).with_decrypt(true),
        PublicEccParametersBuilder::new_restricted_decryption_key(
            SymmetricDefinitionObject::AES_128_CFB,
            EccCurve::NistP256,
        )
        .build()
        .map_err(dev)?,
    )
}

fn ak_template() -> Result<Public, TpmError> {
    restricted_p256_template(
        |a| a.with_sign_encrypt(true),
        PublicEccParametersBuilder::new()
            .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
            .with_curve(EccCurve::NistP256)
            .with_is_signing_key(true)
            .with_is_decryption_key(false)
            .with_restricted(true)
            .with_symmetric(SymmetricDefinitionObject::Null)
            .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
            .build()
            .map_err(dev)?,
    )
}

/// A restricted P-256 primary key made in the TPM and bound to it (the
/// storage key and the AK), with `purpose`'s attributes and `parameters`.
fn restricted_p256_template(
    purpose: impl FnOnce(ObjectAttributesBuilder) -> ObjectAttributesBuilder,
    parameters: PublicEccParameters,
) -> Result<Public, TpmError> {
    let attributes = purpose(
        ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_restricted(true),
    )
    .build()
    .map_err(dev)?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(dev)
}

fn sealed_template(policy: Digest) -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .build()
        .map_err(dev)?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(dev)
}

/// A 32-byte big-endian integer from a TPM's (possibly shorter) one.
fn be32(bytes: &[u8]) -> Result<[u8; 32], TpmError> {
    if bytes.len() > 32 {
        return Err(TpmError::Device("ECC value longer than 32 bytes".into()));
    }
    let mut out = [0u8; 32];
    out[32 - bytes.len()..].copy_from_slice(bytes);
    Ok(out)
}

fn push_sized(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), TpmError> {
    let n = u16::try_from(bytes.len()).map_err(|_| TpmError::Device("blob too long".into()))?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn take_sized<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], TpmError> {
    let bad = || TpmError::Malformed {
        what: "sealed seed",
        why: "truncated TPM blob".into(),
    };
    if bytes.len() < 2 {
        return Err(bad());
    }
    let n = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
    let rest = &bytes[2..];
    if rest.len() < n {
        return Err(bad());
    }
    let (head, tail) = rest.split_at(n);
    *bytes = tail;
    Ok(head)
}

impl EsapiTpm {
    /// Connects through `tcti` (e.g. `device:/dev/tpmrm0`,
    /// `swtpm:path=/run/swtpm.sock`).
    pub fn open(tcti: &str) -> Result<Self, TpmError> {
        let conf = TctiNameConf::from_str(tcti).map_err(dev)?;
        Ok(Self {
            ctx: Context::new(conf).map_err(dev)?,
            tcti: tcti.to_string(),
        })
    }

    /// Runs `f` with a primary key made from `template` in `hierarchy`,
    /// flushing the key afterwards whatever `f` returned.
    fn with_primary<T>(
        &mut self,
        hierarchy: Hierarchy,
        template: Public,
        f: impl FnOnce(&mut Context, KeyHandle, &Public) -> Result<T, TpmError>,
    ) -> Result<T, TpmError> {
        let created = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.create_primary(hierarchy, template, None, None, None, None)
            })
            .map_err(dev)?;
        let result = f(&mut self.ctx, created.key_handle, &created.out_public);
        let flushed = self.ctx.flush_context(created.key_handle.into());
        let value = result?;
        flushed.map_err(dev)?;
        Ok(value)
    }

    /// Runs `f` with a new policy (or trial) session, flushing it after.
    fn with_policy_session<T>(
        &mut self,
        kind: SessionType,
        f: impl FnOnce(&mut Context, PolicySession) -> Result<T, TpmError>,
    ) -> Result<T, TpmError> {
        let session = self
            .ctx
            .start_auth_session(
                None,
                None,
                None,
                kind,
                SymmetricDefinition::Null,
                HashingAlgorithm::Sha256,
            )
            .map_err(dev)?
            .ok_or_else(|| TpmError::Device("the TPM returned no session".into()))?;
        let result = PolicySession::try_from(session)
            .map_err(dev)
            .and_then(|p| f(&mut self.ctx, p));
        let flushed = self
            .ctx
            .flush_context(ObjectHandle::from(SessionHandle::from(session)));
        let value = result?;
        flushed.map_err(dev)?;
        Ok(value)
    }

    /// Runs `f` with the counter's NV index, `None` if it is not defined;
    /// closes the ESAPI handle after.
    fn with_counter<T>(
        &mut self,
        f: impl FnOnce(&mut Context, Option<NvIndexHandle>) -> Result<T, TpmError>,
    ) -> Result<T, TpmError> {
        let index = NvIndexTpmHandle::new(COUNTER_NV_INDEX).map_err(dev)?;
        let handle = match self.ctx.tr_from_tpm_public(TpmHandle::NvIndex(index)) {
            Ok(h) => Some(h),
            Err(e) if kind(&e) == Some(Tss2ResponseCodeKind::Handle) => None,
            Err(e) => return Err(dev(e)),
        };
        let result = f(&mut self.ctx, handle.map(NvIndexHandle::from));
        if let Some(mut h) = handle {
            self.ctx.tr_close(&mut h).map_err(dev)?;
        }
        result
    }
}

impl Tpm for EsapiTpm {
    fn describe(&self) -> String {
        format!("TPM 2.0 ({})", self.tcti)
    }

    fn pcr_read(&mut self, selection: PcrSelection) -> Result<Vec<[u8; 32]>, TpmError> {
        let (_, _, digests) = self
            .ctx
            .execute_without_session(|c| c.pcr_read(selection_list(selection)?).map_err(dev))?;
        let values = digests
            .value()
            .iter()
            .map(|d| {
                d.value()
                    .try_into()
                    .map_err(|_| TpmError::Device("a sha256 PCR that is not 32 bytes".into()))
            })
            .collect::<Result<Vec<[u8; 32]>, _>>()?;
        if values.len() != selection.pcrs().count() {
            return Err(TpmError::Device("the TPM returned fewer PCRs".into()));
        }
        Ok(values)
    }

    fn pcr_extend(&mut self, pcr: u8, digest: &[u8; 32]) -> Result<(), TpmError> {
        if pcr > 23 {
            return Err(TpmError::NoSuchPcr(pcr));
        }
        let handle = PcrHandle::try_from(u32::from(pcr)).map_err(dev)?;
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(digest.to_vec()).map_err(dev)?,
        );
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.pcr_extend(handle, values)
            })
            .map_err(dev)
    }

    fn seal(&mut self, seed: &[u8; 32], selection: PcrSelection) -> Result<SealedSeed, TpmError> {
        let values = self.pcr_read(selection)?;
        let digest = Digest::try_from(pcr_digest(&values).to_vec()).map_err(dev)?;
        let policy = self.with_policy_session(SessionType::Trial, |c, s| {
            c.policy_pcr(s, digest, selection_list(selection)?)
                .map_err(dev)?;
            c.policy_get_digest(s).map_err(dev)
        })?;
        let template = sealed_template(policy)?;
        let data = SensitiveData::try_from(seed.to_vec()).map_err(dev)?;
        let created =
            self.with_primary(Hierarchy::Owner, storage_key_template()?, |c, srk, _| {
                c.execute_with_session(Some(AuthSession::Password), |c| {
                    c.create(srk, template, None, Some(data), None, None)
                })
                .map_err(dev)
            })?;
        let mut blob = Vec::new();
        push_sized(&mut blob, &created.out_public.marshall().map_err(dev)?)?;
        push_sized(&mut blob, created.out_private.value())?;
        Ok(SealedSeed {
            backend: Backend::Tpm,
            selection,
            blob,
        })
    }

    fn unseal(&mut self, sealed: &SealedSeed) -> Result<Zeroizing<[u8; 32]>, TpmError> {
        if sealed.backend != Backend::Tpm {
            return Err(TpmError::Malformed {
                what: "sealed seed",
                why: "not sealed by a TPM".into(),
            });
        }
        let mut rest = sealed.blob.as_slice();
        let public = take_sized(&mut rest)?;
        let private = take_sized(&mut rest)?;
        if !rest.is_empty() {
            return Err(TpmError::Malformed {
                what: "sealed seed",
                why: "bytes after the TPM blob".into(),
            });
        }
        let malformed = |e: tss_esapi::Error| TpmError::Malformed {
            what: "sealed seed",
            why: e.to_string(),
        };
        let public = Public::unmarshall(public).map_err(malformed)?;
        let private = Private::try_from(private.to_vec()).map_err(malformed)?;
        let selection = sealed.selection;
        let data = self.with_primary(Hierarchy::Owner, storage_key_template()?, |c, srk, _| {
            let object = c
                .execute_with_session(Some(AuthSession::Password), |c| {
                    c.load(srk, private, public)
                })
                .map_err(dev)?;
            let result = unseal_under_policy(c, object, selection);
            let flushed = c.flush_context(object.into());
            let data = result?;
            flushed.map_err(dev)?;
            Ok(data)
        })?;
        let data = Zeroizing::new(data.value().to_vec());
        let seed: [u8; 32] = data
            .as_slice()
            .try_into()
            .map_err(|_| TpmError::Device("the unsealed seed is not 32 bytes".into()))?;
        Ok(Zeroizing::new(seed))
    }

    fn counter_read(&mut self) -> Result<Option<u64>, TpmError> {
        self.with_counter(|c, h| match h {
            None => Ok(None),
            Some(h) => read_counter(c, h),
        })
    }

    fn counter_increment(&mut self) -> Result<u64, TpmError> {
        self.with_counter(|c, h| {
            let h = match h {
                Some(h) => h,
                None => define_counter(c)?,
            };
            c.execute_with_session(Some(AuthSession::Password), |c| {
                c.nv_increment(NvAuth::Owner, h)
            })
            .map_err(dev)?;
            read_counter(c, h)?.ok_or_else(|| {
                TpmError::Device("the counter is uninitialised after an increment".into())
            })
        })
    }

    fn ak_public(&mut self) -> Result<AkPublic, TpmError> {
        self.with_primary(
            Hierarchy::Endorsement,
            ak_template()?,
            |_, _, public| match public {
                Public::Ecc { unique, .. } => {
                    let mut point = vec![4u8];
                    point.extend_from_slice(&be32(unique.x().value())?);
                    point.extend_from_slice(&be32(unique.y().value())?);
                    Ok(AkPublic::EcdsaP256(point))
                }
                _ => Err(TpmError::Device("the AK is not an ECC key".into())),
            },
        )
    }

    fn quote(&mut self, selection: PcrSelection, nonce: &[u8]) -> Result<Quote, TpmError> {
        let nonce = Data::try_from(nonce.to_vec()).map_err(dev)?;
        let list = selection_list(selection)?;
        let (attest, signature) =
            self.with_primary(Hierarchy::Endorsement, ak_template()?, |c, ak, _| {
                c.execute_with_session(Some(AuthSession::Password), |c| {
                    c.quote(ak, nonce, SignatureScheme::Null, list)
                })
                .map_err(dev)
            })?;
        let signature = match signature {
            Signature::EcDsa(sig) => QuoteSignature::EcdsaP256 {
                r: be32(sig.signature_r().value())?,
                s: be32(sig.signature_s().value())?,
            },
            other => {
                return Err(TpmError::Device(format!(
                    "unexpected quote signature {:?}",
                    other.algorithm()
                )))
            }
        };
        Ok(Quote {
            attest: attest.marshall().map_err(dev)?,
            signature,
        })
    }
}

/// Satisfies the sealed object's policy (TPM2_PolicyPCR over the current
/// values) in a policy session and unseals it.
fn unseal_under_policy(
    c: &mut Context,
    object: KeyHandle,
    selection: PcrSelection,
) -> Result<SensitiveData, TpmError> {
    let session = c
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Policy,
            SymmetricDefinition::Null,
            HashingAlgorithm::Sha256,
        )
        .map_err(dev)?
        .ok_or_else(|| TpmError::Device("the TPM returned no session".into()))?;
    let result = (|| {
        let policy = PolicySession::try_from(session).map_err(dev)?;
        c.policy_pcr(policy, Digest::default(), selection_list(selection)?)
            .map_err(dev)?;
        c.execute_with_session(Some(session), |c| c.unseal(object.into()))
            .map_err(|e| match kind(&e) {
                Some(Tss2ResponseCodeKind::PolicyFail | Tss2ResponseCodeKind::PcrChanged) => {
                    TpmError::PolicyMismatch
                }
                _ => dev(e),
            })
    })();
    let flushed = c.flush_context(ObjectHandle::from(SessionHandle::from(session)));
    let data = result?;
    flushed.map_err(dev)?;
    Ok(data)
}

fn define_counter(c: &mut Context) -> Result<NvIndexHandle, TpmError> {
    let attributes = NvIndexAttributesBuilder::new()
        .with_nv_index_type(tss_esapi::constants::NvIndexType::Counter)
        .with_owner_write(true)
        .with_owner_read(true)
        .build()
        .map_err(dev)?;
    let public = NvPublicBuilder::new()
        .with_nv_index(NvIndexTpmHandle::new(COUNTER_NV_INDEX).map_err(dev)?)
        .with_index_name_algorithm(HashingAlgorithm::Sha256)
        .with_index_attributes(attributes)
        .with_data_area_size(8)
        .build()
        .map_err(dev)?;
    c.execute_with_session(Some(AuthSession::Password), |c| {
        c.nv_define_space(Provision::Owner, None, public)
    })
    .map_err(dev)
}

fn read_counter(c: &mut Context, h: NvIndexHandle) -> Result<Option<u64>, TpmError> {
    match c.execute_with_session(Some(AuthSession::Password), |c| {
        c.nv_read(NvAuth::Owner, h, 8, 0)
    }) {
        Ok(data) => {
            let bytes: [u8; 8] = data
                .value()
                .try_into()
                .map_err(|_| TpmError::Device("the counter is not 8 bytes".into()))?;
            Ok(Some(u64::from_be_bytes(bytes)))
        }
        Err(e) if kind(&e) == Some(Tss2ResponseCodeKind::NvUninitialized) => Ok(None),
        Err(e) => Err(dev(e)),
    }
}
