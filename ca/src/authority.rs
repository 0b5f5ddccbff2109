//! One operator's certificate authority: its root, leaf issuance from a CSR, and CRLs.

use alloy::primitives::{keccak256, Address, B256};
use rand_core::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
    RevokedCertParams, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::binding::{operator_ext_der, NodeBinding, BINDING_OID, OPERATOR_OID};
use crate::log::Hash32;
use crate::pop::ed25519_of_peer_id;

/// Validity of an operator root certificate.
const ROOT_VALIDITY_SECS: u64 = 10 * 365 * 24 * 3600;

/// Errors of the CA's own operations.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// rcgen failed to build or sign.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A timestamp is out of range.
    #[error("timestamp {0} out of range")]
    Time(u64),
}

/// Why a CSR was refused; each variant names the field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    /// The CSR does not parse or its self-signature does not verify.
    #[error("csr does not parse or its signature does not verify")]
    BadCsr,
    /// The CSR key is not Ed25519.
    #[error("csr key is not Ed25519")]
    NotEd25519,
    /// The CSR key is not the key of the claimed PeerId.
    #[error("csr key does not match peer_id")]
    KeyMismatch,
}

/// A freshly issued leaf certificate.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// Certificate DER.
    pub der: Vec<u8>,
    /// Serial number bytes.
    pub serial: Vec<u8>,
    /// SHA-256 of the DER.
    pub cert_hash: Hash32,
    /// Unix seconds.
    pub not_before: u64,
    /// Unix seconds.
    pub not_after: u64,
}

/// The operator's CA: signing key and self-signed root.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    key_pem: String,
    cert_der: Vec<u8>,
    operator: Address,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Creates a new ECDSA P-256 root for the operator with chain address `operator`.
    pub fn create(operator: Address, now: u64) -> Result<Self, AuthorityError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "FlowShield DeCA");
        dn.push(
            DnType::CommonName,
            format!("DeCA operator {}", operator.to_checksum(None)),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = to_time(now.saturating_sub(3600))?;
        params.not_after = to_time(now + ROOT_VALIDITY_SECS)?;
        params.serial_number = Some(random_serial());
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                OPERATOR_OID,
                operator_ext_der(operator),
            ));
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
            operator,
        })
    }

    /// Loads a root created by [`Authority::create`].
    pub fn load(key_pem: &str, cert_der: &[u8], operator: Address) -> Result<Self, AuthorityError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_der(&cert_der.into(), key)?;
        Ok(Authority {
            issuer,
            key_pem: key_pem.to_string(),
            cert_der: cert_der.to_vec(),
            operator,
        })
    }

    /// PKCS#8 PEM of the signing key (for the 0600 key file; never log it).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The root certificate DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The root certificate PEM.
    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// SHA-256 of the root DER: the `caCertHash` registered on chain.
    pub fn ca_cert_hash(&self) -> Hash32 {
        Sha256::digest(&self.cert_der).into()
    }

    /// The operator's chain address.
    pub fn operator(&self) -> Address {
        self.operator
    }

    /// Checks a CSR against the claimed binding: self-signature valid, Ed25519, key = PeerId key.
    pub fn check_csr(
        csr_der: &[u8],
        binding: &NodeBinding,
    ) -> Result<CertificateSigningRequestParams, CsrError> {
        let csr = CertificateSigningRequestParams::from_der(&csr_der.into())
            .map_err(|_| CsrError::BadCsr)?;
        if csr.public_key.algorithm() != &rcgen::PKCS_ED25519 {
            return Err(CsrError::NotEd25519);
        }
        let expected = ed25519_of_peer_id(&binding.peer_id).map_err(|_| CsrError::KeyMismatch)?;
        if csr.public_key.der_bytes() != expected.to_bytes() {
            return Err(CsrError::KeyMismatch);
        }
        Ok(csr)
    }

    /// Issues a leaf for a CSR already checked by [`Authority::check_csr`]. The CA decides every
    /// field; nothing the CSR requested besides its key is copied.
    pub fn issue(
        &self,
        mut csr: CertificateSigningRequestParams,
        binding: &NodeBinding,
        now: u64,
        validity_secs: u64,
    ) -> Result<IssuedCert, AuthorityError> {
        let serial = random_serial();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, binding.peer_id.to_base58());
        params.distinguished_name = dn;
        params.subject_alt_names = binding
            .san_uris()
            .into_iter()
            .map(|u| u.try_into().map(SanType::URI))
            .collect::<Result<_, _>>()?;
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                BINDING_OID,
                binding.to_der(),
            ));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        // Clocks drift: back-date a minute so a freshly issued cert verifies everywhere.
        let not_before = now.saturating_sub(60);
        let not_after = now.saturating_add(validity_secs);
        params.not_before = to_time(not_before)?;
        params.not_after = to_time(not_after)?;
        params.serial_number = Some(serial.clone());
        csr.params = params;
        let der = csr.signed_by(&self.issuer)?.der().to_vec();
        Ok(IssuedCert {
            cert_hash: Sha256::digest(&der).into(),
            der,
            serial: serial.to_bytes(),
            not_before,
            not_after,
        })
    }

    /// A signed X.509 CRL (DER) listing `(serial, revoked_at)` pairs.
    pub fn crl(
        &self,
        revoked: &[(Vec<u8>, u64)],
        crl_number: u64,
        now: u64,
        next_update_secs: u64,
    ) -> Result<Vec<u8>, AuthorityError> {
        let revoked_certs = revoked
            .iter()
            .map(|(serial, at)| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: to_time(*at)?,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<_, AuthorityError>>()?;
        let params = CertificateRevocationListParams {
            this_update: to_time(now)?,
            next_update: to_time(now + next_update_secs.max(1))?,
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.der().to_vec())
    }
}

/// The on-chain key of a serial number: `keccak256(serial bytes)`.
pub fn serial_hash(serial: &[u8]) -> B256 {
    keccak256(serial)
}

/// PEM armour for DER.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// DER from PEM armour (first block).
pub fn pem_decode(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    (!der.is_empty()).then_some(der)
}

/// 16 random bytes, first byte in 0x01..=0x7f so the DER INTEGER is positive and minimal and
/// the serial bytes read back from the certificate equal these.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

fn to_time(secs: u64) -> Result<OffsetDateTime, AuthorityError> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(AuthorityError::Time(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeKeys;

    #[test]
    fn csr_for_other_peer_id_refused() {
        let keys = NodeKeys::generate();
        let other = NodeKeys::generate();
        let csr = keys.csr_der().unwrap();
        assert_eq!(
            Authority::check_csr(&csr, &other.binding()).err(),
            Some(CsrError::KeyMismatch)
        );
        let mut broken = csr.clone();
        let last = broken.len() - 1;
        broken[last] ^= 1;
        assert_eq!(
            Authority::check_csr(&broken, &keys.binding()).err(),
            Some(CsrError::BadCsr)
        );
    }

    #[test]
    fn load_round_trip_and_crl_parses() {
        let ca = Authority::create(Address::repeat_byte(9), 1_700_000_000).unwrap();
        let again = Authority::load(ca.key_pem(), ca.cert_der(), ca.operator()).unwrap();
        assert_eq!(again.ca_cert_hash(), ca.ca_cert_hash());
        let crl = again
            .crl(&[(vec![1, 2, 3], 1_700_000_100)], 7, 1_700_000_200, 3600)
            .unwrap();
        use x509_parser::prelude::FromDer;
        let (_, parsed) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&crl).unwrap();
        assert_eq!(parsed.iter_revoked_certificates().count(), 1);
        assert_eq!(pem_decode(&ca.cert_pem()).unwrap(), ca.cert_der());
        assert_eq!(pem_decode("\n"), None);
    }
}
