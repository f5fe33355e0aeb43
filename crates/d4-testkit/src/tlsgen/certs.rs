//! Server certificates for the generated handshakes: a self-signed leaf, or a leaf signed by
//! a generated CA. ECDSA P-256 keys come from rcgen (ring); RSA 2048 keys from OpenSSL (ring
//! cannot generate RSA keys), handed to rcgen as PKCS#8. RSA keys are made once per process.

use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use rustls_pki_types::PrivatePkcs8KeyDer;

use super::KeyKind;

/// What the server needs: its chain (leaf first), its key, and what the client trusts.
pub(crate) struct Credentials {
    pub(crate) chain_der: Vec<Vec<u8>>,
    /// The leaf's private key, PKCS#8 DER.
    pub(crate) key_pkcs8: Vec<u8>,
    /// The trust anchor: the CA, or the self-signed leaf.
    pub(crate) root_der: Vec<u8>,
}

fn rsa_pkcs8() -> Result<Vec<u8>, String> {
    let rsa = openssl::rsa::Rsa::generate(2048).map_err(|e| format!("RSA key: {e}"))?;
    let pkey = openssl::pkey::PKey::from_rsa(rsa).map_err(|e| format!("RSA key: {e}"))?;
    pkey.private_key_to_pkcs8()
        .map_err(|e| format!("RSA key to PKCS#8: {e}"))
}

/// PKCS#8 DER of the CA's and the leaf's RSA keys.
type RsaKeys = (Vec<u8>, Vec<u8>);

/// Two RSA keys (CA, leaf), generated once: RSA generation is the slow part.
fn rsa_keys() -> Result<&'static RsaKeys, String> {
    static KEYS: OnceLock<Result<RsaKeys, String>> = OnceLock::new();
    KEYS.get_or_init(|| Ok((rsa_pkcs8()?, rsa_pkcs8()?)))
        .as_ref()
        .map_err(Clone::clone)
}

fn key_pair(kind: KeyKind, ca: bool) -> Result<KeyPair, String> {
    match kind {
        KeyKind::EcdsaP256 => {
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("EC key: {e}"))
        }
        KeyKind::Rsa2048 => {
            let keys = rsa_keys()?;
            let der = if ca { &keys.0 } else { &keys.1 };
            KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(der.as_slice()),
                &PKCS_RSA_SHA256,
            )
            .map_err(|e| format!("RSA key into rcgen: {e}"))
        }
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "LU");
    dn.push(DnType::OrganizationName, "d4-rs tests");
    dn.push(DnType::CommonName, cn);
    dn
}

/// Makes the server's certificates for `names` (DNS names or IP addresses, as SANs).
pub(crate) fn server_credentials(
    kind: KeyKind,
    chain: bool,
    names: &[String],
) -> Result<Credentials, String> {
    let err = |e: rcgen::Error| format!("certificate: {e}");
    let leaf_key = key_pair(kind, false)?;
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(err)?;
    leaf.distinguished_name = name(names.first().map_or("d4 test server", |n| n.as_str()));
    if chain {
        let ca_key = key_pair(kind, true)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.distinguished_name = name("d4 test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
        let issuer = Issuer::new(ca, ca_key);
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(err)?;
        Ok(Credentials {
            chain_der: vec![leaf_cert.der().to_vec(), ca_cert.der().to_vec()],
            key_pkcs8: leaf_key.serialize_der(),
            root_der: ca_cert.der().to_vec(),
        })
    } else {
        let leaf_cert = leaf.self_signed(&leaf_key).map_err(err)?;
        Ok(Credentials {
            chain_der: vec![leaf_cert.der().to_vec()],
            key_pkcs8: leaf_key.serialize_der(),
            root_der: leaf_cert.der().to_vec(),
        })
    }
}
