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
