//! PEM blocks (`-----BEGIN LABEL-----` ... `-----END LABEL-----`) anywhere in a text,
//! with comments before and between them, and the dispatch of each block by its label.

use base64::Engine;

use super::{parse_der, private, spki, ssh, Parsed};

/// One PEM block: its label and its base64 body (`None` when the END line is missing).
pub(super) struct Block<'a> {
    label: &'a str,
    body: Option<&'a str>,
}

const BEGIN: &str = "-----BEGIN ";
const DASHES: &str = "-----";

/// Every PEM block of the input, in order.
pub(super) fn blocks(input: &[u8]) -> Vec<Block<'_>> {
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        // Binary around the blocks: only an ASCII prefix can hold them.
        Err(e) => match std::str::from_utf8(&input[..e.valid_up_to()]) {
            Ok(t) => t,
            Err(_) => return Vec::new(),
        },
    };
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let Some(label_end) = after.find(DASHES) else {
            break;
        };
        let label = &after[..label_end];
        if label.contains('\n') {
            rest = after;
            continue;
        }
        let body_start = &after[label_end + DASHES.len()..];
        let end_marker = format!("-----END {label}-----");
        match body_start.find(&end_marker) {
            Some(end) => {
                out.push(Block {
                    label,
                    body: Some(&body_start[..end]),
                });
                rest = &body_start[end + end_marker.len()..];
            }
            None => {
                out.push(Block { label, body: None });
                break;
            }
        }
    }
    out
}

/// The base64 body without RFC 1421 headers; `None` for a broken body.
fn decode(body: &str) -> Result<Vec<u8>, String> {
    let mut b64 = String::with_capacity(body.len());
    for line in body.lines() {
        let line = line.trim();
        if line.contains(':') {
            if line.starts_with("Proc-Type:") && line.contains("ENCRYPTED") {
                return Err("encrypted".into());
            }
            continue;
        }
        b64.push_str(line);
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| "Unable to load PEM file".into())
}

/// The key in one block, or `None` for a label that holds no key (CRL, parameters...).
pub(super) fn parse_block(block: Block<'_>) -> Option<Parsed> {
    const KEY_LABELS: &[&str] = &[
        "CERTIFICATE",
        "X509 CERTIFICATE",
        "TRUSTED CERTIFICATE",
        "CERTIFICATE REQUEST",
        "NEW CERTIFICATE REQUEST",
        "PUBLIC KEY",
        "RSA PUBLIC KEY",
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "DSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ];
    if !KEY_LABELS.contains(&block.label) {
        return None;
    }
    let Some(body) = block.body else {
        return Some(Parsed::Unparseable("Unable to load PEM file".into()));
    };
    if block.label == "ENCRYPTED PRIVATE KEY" {
        return Some(Parsed::Unsupported("encrypted private key".into()));
    }
    let der = match decode(body) {
        Ok(d) => d,
        Err(e) if e == "encrypted" => {
            return Some(Parsed::Unsupported("encrypted private key".into()))
        }
        Err(e) => return Some(Parsed::Unparseable(e)),
    };
    let bad = || Parsed::Unparseable("Error decoding DER/ASN.1 key structure".into());
    let parsed = match block.label {
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
            spki::try_certificate(&der).unwrap_or_else(bad)
        }
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {
            spki::try_csr(&der).unwrap_or_else(bad)
        }
        "PUBLIC KEY" => spki::try_spki(&der).unwrap_or_else(bad),
        "RSA PUBLIC KEY" => spki::try_rsa_public(&der).unwrap_or_else(bad),
        "OPENSSH PRIVATE KEY" => ssh::parse_private(&der),
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "DSA PRIVATE KEY" | "EC PRIVATE KEY" => {
            private::try_private(&der).unwrap_or_else(bad)
        }
        _ => parse_der(&der),
    };
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_between_comments() {
        let text = b"comment\n-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\nmore\n-----BEGIN CERTIFICATE-----\nAA==\n";
        let b = blocks(text);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].label, "PUBLIC KEY");
        assert_eq!(b[0].body.map(str::trim), Some("AAAA"));
        assert_eq!(b[1].label, "CERTIFICATE");
        assert!(b[1].body.is_none());
    }

    #[test]
    fn broken_base64_is_unparseable() {
        let text = b"-----BEGIN PUBLIC KEY-----\nMIGf[...]\n-----END PUBLIC KEY-----\n";
        let b = blocks(text).into_iter().next().unwrap();
        assert!(matches!(parse_block(b), Some(Parsed::Unparseable(_))));
    }
}
