//! A certificate as OpenSSL prints it, for the CIRCL Passive SSL API's `cfetch` answer:
//! the SubjectPublicKeyInfo DER (the `-----BEGIN PUBLIC KEY-----` block) and the
//! extensions as `openssl x509 -text` (and pyOpenSSL's `str(extension)`) writes their
//! values: `basicConstraints` → `CA:FALSE`, `subjectAltName` → `DNS:a.example, IP
//! Address:192.0.2.1`, `keyUsage` → `Digital Signature, Key Encipherment`,
//! `extendedKeyUsage` → `TLS Web Server Authentication`, `subjectKeyIdentifier` and
//! `authorityKeyIdentifier` → colon-separated uppercase hex. Other extensions are named by
//! their OpenSSL short name (or dotted OID) with their value as lowercase hex.

use std::net::IpAddr;

use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::{parse_x509, CertError};

/// What `cfetch` shows of a certificate besides the facts of [`super::CertInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpensslView {
    /// The SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// (OpenSSL short name, value as OpenSSL prints it), in certificate order.
    pub extensions: Vec<(String, String)>,
}

/// Reads the public key block and the extensions of one DER certificate.
pub fn openssl_view(der: &[u8]) -> Result<OpensslView, CertError> {
    let cert = parse_x509(der)?;
    let extensions = cert
        .extensions()
        .iter()
        .map(|e| {
            let oid = e.oid.to_id_string();
            let name = short_name(&oid).map_or_else(|| oid.clone(), str::to_string);
            let value = match e.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    let mut s = if bc.ca { "CA:TRUE" } else { "CA:FALSE" }.to_string();
                    if let Some(n) = bc.path_len_constraint {
                        s.push_str(&format!(", pathlen:{n}"));
                    }
                    s
                }
                ParsedExtension::SubjectAlternativeName(san) => general_names(&san.general_names),
                ParsedExtension::IssuerAlternativeName(ian) => general_names(&ian.general_names),
                ParsedExtension::KeyUsage(ku) => {
                    let flags = [
                        (ku.digital_signature(), "Digital Signature"),
                        (ku.non_repudiation(), "Non Repudiation"),
                        (ku.key_encipherment(), "Key Encipherment"),
                        (ku.data_encipherment(), "Data Encipherment"),
                        (ku.key_agreement(), "Key Agreement"),
                        (ku.key_cert_sign(), "Certificate Sign"),
                        (ku.crl_sign(), "CRL Sign"),
                        (ku.encipher_only(), "Encipher Only"),
                        (ku.decipher_only(), "Decipher Only"),
                    ];
                    join(
                        flags
                            .iter()
                            .filter(|(on, _)| *on)
                            .map(|(_, n)| n.to_string()),
                    )
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    let flags = [
                        (eku.any, "Any Extended Key Usage"),
                        (eku.server_auth, "TLS Web Server Authentication"),
                        (eku.client_auth, "TLS Web Client Authentication"),
                        (eku.code_signing, "Code Signing"),
                        (eku.email_protection, "E-mail Protection"),
                        (eku.time_stamping, "Time Stamping"),
                        (eku.ocsp_signing, "OCSP Signing"),
                    ];
                    join(
                        flags
                            .iter()
                            .filter(|(on, _)| *on)
                            .map(|(_, n)| n.to_string())
                            .chain(eku.other.iter().map(|o| o.to_id_string())),
                    )
                }
                ParsedExtension::SubjectKeyIdentifier(k) => colon_hex(k.0),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    let mut parts = Vec::new();
                    if let Some(k) = &aki.key_identifier {
                        parts.push(format!("keyid:{}", colon_hex(k.0)));
                    }
                    if let Some(names) = &aki.authority_cert_issuer {
                        parts.push(general_names(names));
                    }
                    if let Some(serial) = aki.authority_cert_serial {
                        parts.push(format!("serial:{}", colon_hex(serial)));
                    }
                    join(parts.into_iter())
                }
                _ => hex::encode(e.value),
            };
            (name, value)
        })
        .collect();
    Ok(OpensslView {
        spki_der: cert.public_key().raw.to_vec(),
        extensions,
    })
}

/// OpenSSL's short names of the common certificate extensions.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.29.14" => "subjectKeyIdentifier",
        "2.5.29.15" => "keyUsage",
        "2.5.29.17" => "subjectAltName",
        "2.5.29.18" => "issuerAltName",
        "2.5.29.19" => "basicConstraints",
        "2.5.29.30" => "nameConstraints",
        "2.5.29.31" => "crlDistributionPoints",
        "2.5.29.32" => "certificatePolicies",
        "2.5.29.35" => "authorityKeyIdentifier",
        "2.5.29.37" => "extendedKeyUsage",
        "1.3.6.1.5.5.7.1.1" => "authorityInfoAccess",
        "1.3.6.1.4.1.11129.2.4.2" => "ct_precert_scts",
        "1.3.6.1.5.5.7.1.24" => "tlsfeature",
        _ => return None,
    })
}

fn join(parts: impl Iterator<Item = String>) -> String {
    parts.collect::<Vec<_>>().join(", ")
}

/// `AB:CD:...`, as OpenSSL prints key identifiers and serials.
fn colon_hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// General names as OpenSSL 3 prints them (`IP Address:2001:DB8:0:0:0:0:0:1` for IPv6).
fn general_names(names: &[GeneralName<'_>]) -> String {
    join(names.iter().map(|gn| match gn {
        GeneralName::DNSName(s) => format!("DNS:{s}"),
        GeneralName::RFC822Name(s) => format!("email:{s}"),
        GeneralName::URI(s) => format!("URI:{s}"),
        GeneralName::IPAddress(b) => match ip_of(b) {
            Some(IpAddr::V4(a)) => format!("IP Address:{a}"),
            Some(IpAddr::V6(a)) => format!(
                "IP Address:{}",
                a.segments()
                    .iter()
                    .map(|s| format!("{s:X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            ),
            None => "IP Address:<invalid>".to_string(),
        },
        GeneralName::DirectoryName(n) => {
            format!("DirName:{}", super::GoName::from_x509(n).go_string())
        }
        GeneralName::RegisteredID(o) => format!("Registered ID:{}", o.to_id_string()),
        _ => "othername:<unsupported>".to_string(),
    }))
}

fn ip_of(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        Some(IpAddr::from(a))
    } else {
        <[u8; 16]>::try_from(b).ok().map(IpAddr::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, PublicKeyData, SanType,
    };

    fn ext<'a>(v: &'a OpensslView, name: &str) -> Option<&'a str> {
        v.extensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn extensions_as_openssl_prints_them() {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("192.0.2.1".parse().unwrap()));
        p.subject_alt_names
            .push(SanType::IpAddress("2001:db8::1".parse().unwrap()));
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let cert = p.self_signed(&key).unwrap();
        let v = openssl_view(cert.der()).unwrap();
        assert_eq!(v.spki_der, key.subject_public_key_info());
        assert_eq!(
            ext(&v, "subjectAltName"),
            Some("DNS:a.example, IP Address:192.0.2.1, IP Address:2001:DB8:0:0:0:0:0:1")
        );
        assert_eq!(
            ext(&v, "keyUsage"),
            Some("Digital Signature, Key Encipherment")
        );
        assert_eq!(
            ext(&v, "extendedKeyUsage"),
            Some("TLS Web Server Authentication, TLS Web Client Authentication")
        );
        assert_eq!(ext(&v, "basicConstraints"), Some("CA:TRUE, pathlen:0"));
        let ski = ext(&v, "subjectKeyIdentifier").unwrap();
        assert_eq!(ski.len(), 20 * 3 - 1, "{ski}");
        assert!(ski.split(':').all(|b| b.len() == 2
            && b.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())));
    }

    /// Every value printed by `openssl x509 -text` (when the CLI is installed) under its
    /// extension's heading.
    #[test]
    fn values_match_the_openssl_cli() {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["b.example".to_string()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("2001:db8::7".parse().unwrap()));
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.is_ca = IsCa::ExplicitNoCa;
        let cert = p.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.der");
        std::fs::write(&f, cert.der()).unwrap();
        let Ok(out) = std::process::Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout", "-text", "-in"])
            .arg(&f)
            .output()
        else {
            eprintln!("no openssl CLI: skipped");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let v = openssl_view(cert.der()).unwrap();
        let headings = [
            ("basicConstraints", "X509v3 Basic Constraints"),
            ("subjectAltName", "X509v3 Subject Alternative Name"),
            ("keyUsage", "X509v3 Key Usage"),
            ("extendedKeyUsage", "X509v3 Extended Key Usage"),
            ("subjectKeyIdentifier", "X509v3 Subject Key Identifier"),
        ];
        for (name, heading) in headings {
            let i = lines
                .iter()
                .position(|l| l.starts_with(heading))
                .unwrap_or_else(|| panic!("{heading} not in {text}"));
            assert_eq!(ext(&v, name), Some(lines[i + 1]), "{name}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(openssl_view(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
    }
}
