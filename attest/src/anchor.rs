//! Anchoring requests for an exported checkpoint: what an operator takes
//! to an outside timestamping service, so a third party can later show the
//! checkpoint existed by a date the appliance could not fake.
//!
//! - RFC 3161: a DER `TimeStampReq` (`checkpoint.tsq`) with the SHA-256
//!   imprint of the checkpoint file, a random 64-bit nonce and `certReq`
//!   set, for any RFC 3161 TSA (`curl --data-binary @checkpoint.tsq -H
//!   'Content-Type: application/timestamp-query' TSA-URL > checkpoint.tsr`).
//! - OpenTimestamps: the client stamps the checkpoint file itself
//!   (`ots stamp checkpoint`), i.e. its SHA-256, which `SHA256SUMS` lists.

use der::asn1::{Int, Null, OctetString};
use der::oid::ObjectIdentifier;
use der::{Any, Encode};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifier;
use x509_tsp::{MessageImprint, TimeStampReq, TspVersion};

use crate::error::{Error, Result};

/// SHA-256 (NIST, RFC 5754).
pub const SHA256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// The DER RFC 3161 `TimeStampReq` for `document` (the checkpoint file's
/// bytes): version 1, SHA-256 imprint (algorithm parameters NULL, as
/// OpenSSL writes them), `nonce` (see [`random_nonce`]), `certReq` true.
pub fn timestamp_request(document: &[u8], nonce: u64) -> Result<Vec<u8>> {
    let der_err = |e: der::Error| Error::Invalid(format!("timestamp request: {e}"));
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifier {
                oid: SHA256_OID,
                parameters: Some(Any::from(Null)),
            },
            hashed_message: OctetString::new(Sha256::digest(document).to_vec()).map_err(der_err)?,
        },
        req_policy: None,
        nonce: Some(Int::new(&nonce.to_be_bytes()).map_err(der_err)?),
        cert_req: true,
        extensions: None,
    };
    req.to_der().map_err(der_err)
}

/// A random nonce for [`timestamp_request`]: 63 bits with the top one set,
/// so its DER INTEGER is always eight bytes and positive.
pub fn random_nonce() -> Result<u64> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b)
        .map_err(|e| Error::Invalid(format!("no randomness for a nonce: {e}")))?;
    Ok(u64::from_be_bytes(b) & !(1 << 63) | (1 << 62))
}

#[cfg(test)]
mod tests {
    use der::Decode;
    use sha2::{Digest, Sha256};
    use x509_tsp::TimeStampReq;

    use super::{random_nonce, timestamp_request, SHA256_OID};

    /// The request decodes as RFC 3161's `TimeStampReq` with the document's
    /// SHA-256, the nonce as a positive 8-byte integer, and `certReq` set.
    #[test]
    fn requests_carry_the_sha256_imprint_and_the_nonce() {
        let doc = b"cairn.example/anchor\n7\nAAAA\n";
        for _ in 0..100 {
            let nonce = random_nonce().unwrap();
            assert!(nonce >> 62 == 1, "{nonce:x}");
            let req = TimeStampReq::from_der(&timestamp_request(doc, nonce).unwrap()).unwrap();
            assert_eq!(req.message_imprint.hash_algorithm.oid, SHA256_OID);
            assert_eq!(
                req.message_imprint.hashed_message.as_bytes(),
                Sha256::digest(doc).as_slice()
            );
            assert_eq!(req.nonce.unwrap().as_bytes(), nonce.to_be_bytes());
            assert!(req.cert_req);
        }
    }
}

/// An RFC 3161 timestamp of a document, verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Timestamp {
    /// When the authority says it saw the document, RFC 3339 UTC.
    pub gen_time: String,
    /// The authority's certificate subject.
    pub tsa: String,
    /// The token's serial number, hex.
    pub serial: String,
}

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const SHA384_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// Verifies an RFC 3161 `TimeStampResp` (`tsr`, DER) for the request
/// `tsq` (DER, as [`timestamp_request`] wrote it) of `document`, signed by
/// the authority whose certificate (`tsa_cert`, PEM or DER) the operator
/// trusts: the status is granted; the token is CMS SignedData over a
/// TSTInfo whose imprint is the document's SHA-256 and whose nonce is the
/// request's; its one signer is that certificate (issuer and serial, or key
/// identifier), which was valid at the token's time; the signed attributes
/// carry the content type and the digest of the TSTInfo; the signature over
/// them verifies (RSA PKCS #1 v1.5 with SHA-256/384/512, ECDSA P-256 or
/// P-384).
pub fn verify_timestamp_response(
    tsr: &[u8],
    tsq: &[u8],
    document: &[u8],
    tsa_cert: &[u8],
) -> Result<Timestamp> {
    use der::{Decode, DecodePem};
    use x509_cert::Certificate;
    use x509_tsp::{TimeStampResp, TstInfo};

    let bad = |why: String| Error::Invalid(format!("timestamp response: {why}"));
    let der = |what: &'static str| move |e: der::Error| bad(format!("{what}: {e}"));
    let cert = if tsa_cert.starts_with(b"-----BEGIN") {
        Certificate::from_pem(tsa_cert).map_err(der("TSA certificate"))?
    } else {
        Certificate::from_der(tsa_cert).map_err(der("TSA certificate"))?
    };
    let req = TimeStampReq::from_der(tsq).map_err(der("timestamp request"))?;
    let resp = TimeStampResp::from_der(tsr).map_err(der("not a TimeStampResp"))?;
    if (resp.status.status as u8) > 1 {
        return Err(bad(format!("the authority refused: {:?}", resp.status)));
    }
    let token = resp
        .time_stamp_token
        .ok_or_else(|| bad("granted without a token".into()))?;
    if token.content_type != ID_SIGNED_DATA {
        return Err(bad("the token is not CMS SignedData".into()));
    }
    let signed: cms::signed_data::SignedData =
        token.content.decode_as().map_err(der("SignedData"))?;
    let eci = &signed.encap_content_info;
    if eci.econtent_type != ID_CT_TST_INFO {
        return Err(bad("the token does not hold a TSTInfo".into()));
    }
    let content = eci
        .econtent
        .as_ref()
        .ok_or_else(|| bad("the token's TSTInfo is missing".into()))?
        .decode_as::<OctetString>()
        .map_err(der("TSTInfo octets"))?;
    let tst = TstInfo::from_der(content.as_bytes()).map_err(der("TSTInfo"))?;
    if tst.message_imprint.hash_algorithm.oid != SHA256_OID
        || tst.message_imprint.hashed_message.as_bytes() != Sha256::digest(document).as_slice()
    {
        return Err(bad(
            "it timestamps another document (imprint differs)".into()
        ));
    }
    if tst.nonce != req.nonce {
        return Err(bad("its nonce is not the request's".into()));
    }
    let [signer] = signed.signer_infos.0.as_slice() else {
        return Err(bad("the token needs exactly one signer".into()));
    };
    let tbs = &cert.tbs_certificate;
    let is_cert = match &signer.sid {
        cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(i) => {
            i.issuer == tbs.issuer && i.serial_number == tbs.serial_number
        }
        cms::signed_data::SignerIdentifier::SubjectKeyIdentifier(ski) => tbs
            .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .is_some_and(|(_, own)| own == *ski),
    };
    if !is_cert {
        return Err(bad("it was not signed by the given TSA certificate".into()));
    }
    let gen = tst.gen_time.to_unix_duration();
    let validity = &tbs.validity;
    if gen < validity.not_before.to_unix_duration() || gen > validity.not_after.to_unix_duration() {
        return Err(bad(
            "the TSA certificate was not valid at the token's time".into()
        ));
    }
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| bad("the signer has no signed attributes".into()))?;
    let attr = |oid: ObjectIdentifier| {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.get(0))
    };
    let digest_of = |bytes: &[u8]| -> Result<Vec<u8>> {
        Ok(match signer.digest_alg.oid {
            SHA256_OID => Sha256::digest(bytes).to_vec(),
            SHA384_OID => sha2::Sha384::digest(bytes).to_vec(),
            SHA512_OID => sha2::Sha512::digest(bytes).to_vec(),
            other => return Err(bad(format!("unsupported digest algorithm {other}"))),
        })
    };
    let claimed = attr(ID_MESSAGE_DIGEST)
        .ok_or_else(|| bad("no message-digest attribute".into()))?
        .decode_as::<OctetString>()
        .map_err(der("message-digest"))?;
    if claimed.as_bytes() != digest_of(content.as_bytes())? {
        return Err(bad("the signed digest is not the TSTInfo's".into()));
    }
    let content_type = attr(ID_CONTENT_TYPE)
        .ok_or_else(|| bad("no content-type attribute".into()))?
        .decode_as::<ObjectIdentifier>()
        .map_err(der("content-type"))?;
    if content_type != ID_CT_TST_INFO {
        return Err(bad("the signed content type is not TSTInfo".into()));
    }
    let signed_bytes = attrs.to_der().map_err(der("signed attributes"))?;
    let spki = tbs
        .subject_public_key_info
        .to_der()
        .map_err(der("TSA public key"))?;
    verify_signature(
        &spki,
        signer.digest_alg.oid,
        &signed_bytes,
        signer.signature.as_bytes(),
    )
    .map_err(|why| bad(format!("the signature does not verify: {why}")))?;
    let gen_time = time::OffsetDateTime::from_unix_timestamp(gen.as_secs() as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    Ok(Timestamp {
        gen_time,
        tsa: tbs.subject.to_string(),
        serial: hex::encode(tst.serial_number.as_bytes()),
    })
}

/// Verifies `signature` over `message` with the key in `spki` (DER):
/// RSA PKCS #1 v1.5 with the digest `digest`, or ECDSA (P-256 with SHA-256,
/// P-384 with SHA-384).
fn verify_signature(
    spki: &[u8],
    digest: ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> std::result::Result<(), String> {
    use p256::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;

    if let Ok(key) = rsa::RsaPublicKey::from_public_key_der(spki) {
        let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(|e| e.to_string())?;
        let result = match digest {
            SHA256_OID => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key).verify(message, &sig),
            SHA384_OID => {
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(key).verify(message, &sig)
            }
            SHA512_OID => {
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(key).verify(message, &sig)
            }
            other => return Err(format!("unsupported digest {other} for RSA")),
        };
        return result.map_err(|e| e.to_string());
    }
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(spki) {
        let sig = p256::ecdsa::DerSignature::try_from(signature).map_err(|e| e.to_string())?;
        return key.verify(message, &sig).map_err(|e| e.to_string());
    }
    if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(spki) {
        let sig = p384::ecdsa::DerSignature::try_from(signature).map_err(|e| e.to_string())?;
        return key.verify(message, &sig).map_err(|e| e.to_string());
    }
    Err("the TSA key is neither RSA nor ECDSA P-256/P-384".into())
}

/// The SHA-256 digest an OpenTimestamps proof (`.ots`) commits to: its
/// header is the magic `\0OpenTimestamps\0\0Proof\0` + 8 bytes, a version
/// (1), the file-hash operation (`0x08`, SHA-256) and the 32-byte digest.
/// The attestations that follow are kept, not checked (that needs Bitcoin
/// block headers).
pub fn ots_digest(ots: &[u8]) -> Result<[u8; 32]> {
    const MAGIC: &[u8] = b"\x00OpenTimestamps\x00\x00Proof\x00\xbf\x89\xe2\xe8\x84\xe8\x92\x94";
    let bad = |why: &str| Error::Invalid(format!("not an OpenTimestamps proof: {why}"));
    let rest = ots.strip_prefix(MAGIC).ok_or_else(|| bad("bad magic"))?;
    match rest {
        [1, 0x08, digest @ ..] => digest
            .get(..32)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| bad("truncated digest")),
        [1, op, ..] => Err(bad(&format!(
            "file hash operation {op:#04x} is not SHA-256"
        ))),
        [v, ..] => Err(bad(&format!("version {v}"))),
        [] => Err(bad("truncated header")),
    }
}
