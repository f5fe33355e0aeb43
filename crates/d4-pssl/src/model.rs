//! The values the passive SSL store keeps: [`Certificate`], [`PublicKey`], [`Session`], and
//! the [`Batch`] that carries them to a store (built with [`BatchBuilder`], which drops
//! repeats within the batch). Every certificate fact comes from `d4_tls::cert::parse`: this
//! crate never reads X.509 itself.

use std::collections::HashSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// SHA-1 of the DER, lowercase hex.
    pub sha1: String,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256: String,
    /// The DER bytes (not serialized: stores keep them apart).
    #[serde(skip)]
    pub der: Vec<u8>,
    /// Subject, as Go's `pkix.Name.String()` prints it.
    pub subject: String,
    /// Issuer, as Go's `pkix.Name.String()` prints it.
    pub issuer: String,
    /// Serial number, signed decimal.
    pub serial: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Subject alternative names: DNS names, then IP addresses, e-mails and URIs as text.
    pub sans: Vec<String>,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// Subject equals issuer and the signature verifies with the certificate's own key.
    pub self_signed: bool,
    /// SHA-256 of the SubjectPublicKeyInfo DER, lowercase hex: the [`PublicKey`] it holds.
    pub spki_sha256: String,
}

/// One subject public key, identified by the SHA-256 of its SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// SHA-256 of the SubjectPublicKeyInfo DER, lowercase hex.
    pub spki_sha256: String,
    /// `RSA`, `ECDSA`, `Ed25519`, `DSA` or `other`.
    pub key_type: String,
    /// Size in bits (RSA modulus, curve size, 256 for Ed25519, DSA Y; 0 unknown).
    pub bits: u32,
    /// RSA modulus, decimal.
    pub modulus: Option<String>,
    /// RSA public exponent (`None` past 64 bits).
    pub exponent: Option<u64>,
    /// EC curve (`P-256`...) or the dotted OID of another named curve.
    pub curve: Option<String>,
    /// EC point X, decimal.
    pub x: Option<String>,
    /// EC point Y, decimal.
    pub y: Option<String>,
}

/// Reads a DER certificate (with d4-tls) into its [`Certificate`] and [`PublicKey`].
pub fn certificate_from_der(
    der: &[u8],
) -> Result<(Certificate, PublicKey), d4_tls::cert::CertError> {
    let info = d4_tls::cert::parse(der)?;
    let mut sans = info.dns_names.clone();
    sans.extend(info.ip_addresses.iter().map(IpAddr::to_string));
    sans.extend(info.emails.iter().cloned());
    sans.extend(info.uris.iter().cloned());
    let k = &info.key;
    let key = PublicKey {
        spki_sha256: info.spki_sha256.clone(),
        key_type: k.kind.name().to_string(),
        bits: k.bits,
        modulus: k.rsa.as_ref().map(|r| r.modulus_decimal.clone()),
        exponent: k.rsa.as_ref().and_then(|r| {
            (r.exponent.len() <= 8).then(|| {
                r.exponent
                    .iter()
                    .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
            })
        }),
        curve: k
            .ec
            .as_ref()
            .map(|e| e.curve.clone())
            .filter(|c| !c.is_empty()),
        x: k.ec
            .as_ref()
            .map(|e| e.x_decimal.clone())
            .filter(|c| !c.is_empty()),
        y: k.ec
            .as_ref()
            .map(|e| e.y_decimal.clone())
            .filter(|c| !c.is_empty()),
    };
    let cert = Certificate {
        self_signed: info.self_signed(),
        sha1: info.sha1,
        sha256: info.sha256,
        der: der.to_vec(),
        subject: info.subject,
        issuer: info.issuer,
        serial: info.serial,
        not_before: info.not_before_unix,
        not_after: info.not_after_unix,
        sans,
        is_ca: info.is_ca,
        spki_sha256: info.spki_sha256,
    };
    Ok((cert, key))
}

/// One TLS session as the sensor recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Session {
    /// Capture time, Unix seconds.
    pub ts: i64,
    pub client_ip: Option<IpAddr>,
    pub client_port: Option<u16>,
    pub server_ip: Option<IpAddr>,
    pub server_port: Option<u16>,
    /// JA3 digest (MD5, lowercase hex), `""` when no ClientHello was seen.
    pub ja3: String,
    pub ja3_raw: String,
    /// JA3S digest (MD5, lowercase hex), `""` when no ServerHello was seen.
    pub ja3s: String,
    pub ja3s_raw: String,
    pub ja4: String,
    pub ja4_r: String,
    pub sni: String,
    pub alpn: Vec<String>,
    pub tlsh: String,
    /// `tcp` or `quic` (`""` when the record does not say: the reference's records).
    pub transport: String,
    /// SHA-1 (lowercase hex) of each certificate, in the order the server sent them.
    pub chain: Vec<String>,
}

impl Session {
    /// The session's identity: SHA-256 over its time, addresses, ports, fingerprints, SNI,
    /// ALPN and chain (each field length-prefixed), so the same record always maps to the
    /// same session and ingesting it twice stores it once.
    pub fn id(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        field(&self.ts.to_be_bytes());
        let ip = |ip: &Option<IpAddr>| ip.map(|a| a.to_string()).unwrap_or_default();
        field(ip(&self.client_ip).as_bytes());
        field(&self.client_port.map_or(-1, i32::from).to_be_bytes());
        field(ip(&self.server_ip).as_bytes());
        field(&self.server_port.map_or(-1, i32::from).to_be_bytes());
        for s in [
            &self.ja3,
            &self.ja3_raw,
            &self.ja3s,
            &self.ja3s_raw,
            &self.ja4,
            &self.ja4_r,
            &self.sni,
            &self.tlsh,
            &self.transport,
        ] {
            field(s.as_bytes());
        }
        field(&(self.alpn.len() as u64).to_be_bytes());
        for a in &self.alpn {
            field(a.as_bytes());
        }
        field(&(self.chain.len() as u64).to_be_bytes());
        for c in &self.chain {
            field(c.as_bytes());
        }
        h.finalize().into()
    }

    /// The id as lowercase hex.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id())
    }
}

/// What one store commit writes. Build it with [`BatchBuilder`] to drop repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub certificates: Vec<Certificate>,
    pub keys: Vec<PublicKey>,
    pub sessions: Vec<Session>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty() && self.keys.is_empty() && self.sessions.is_empty()
    }
}

/// Collects certificates, keys and sessions, each once: certificates by SHA-1, keys by SPKI
/// SHA-256, sessions by [`Session::id`].
#[derive(Debug, Default)]
pub struct BatchBuilder {
    batch: Batch,
    certs: HashSet<String>,
    keys: HashSet<String>,
    sessions: HashSet<[u8; 32]>,
}

impl BatchBuilder {
    pub fn new() -> BatchBuilder {
        BatchBuilder::default()
    }

    /// Adds a certificate; false when the batch holds it already.
    pub fn add_certificate(&mut self, c: Certificate) -> bool {
        if !self.certs.insert(c.sha1.clone()) {
            return false;
        }
        self.batch.certificates.push(c);
        true
    }

    /// Adds a key; false when the batch holds it already.
    pub fn add_key(&mut self, k: PublicKey) -> bool {
        if !self.keys.insert(k.spki_sha256.clone()) {
            return false;
        }
        self.batch.keys.push(k);
        true
    }

    /// Adds a session; false when the batch holds the same session already.
    pub fn add_session(&mut self, s: Session) -> bool {
        if !self.sessions.insert(s.id()) {
            return false;
        }
        self.batch.sessions.push(s);
        true
    }

    /// Adds everything of another batch (a record's fragment).
    pub fn extend(&mut self, b: Batch) {
        for c in b.certificates {
            self.add_certificate(c);
        }
        for k in b.keys {
            self.add_key(k);
        }
        for s in b.sessions {
            self.add_session(s);
        }
    }

    /// Certificates, keys and sessions held.
    pub fn len(&self) -> usize {
        self.batch.certificates.len() + self.batch.keys.len() + self.batch.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// The batch so far, leaving the builder empty for the next one.
    pub fn take(&mut self) -> Batch {
        self.certs.clear();
        self.keys.clear();
        self.sessions.clear();
        std::mem::take(&mut self.batch)
    }

    pub fn build(mut self) -> Batch {
        self.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(ts: i64) -> Session {
        Session {
            ts,
            ja3: "a".repeat(32),
            chain: vec!["0".repeat(40)],
            ..Session::default()
        }
    }

    #[test]
    fn session_id_follows_content() {
        assert_eq!(session(1).id(), session(1).id());
        assert_ne!(session(1).id(), session(2).id());
        let mut s = session(1);
        s.chain.push("1".repeat(40));
        assert_ne!(s.id(), session(1).id());
        // Field boundaries matter: ("ab", "") differs from ("a", "b").
        let mut a = session(1);
        a.sni = "ab".into();
        let mut b = session(1);
        b.sni = "a".into();
        b.tlsh = "b".into();
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn builder_drops_repeats() {
        let mut b = BatchBuilder::new();
        assert!(b.add_session(session(1)));
        assert!(!b.add_session(session(1)));
        assert!(b.add_session(session(2)));
        let batch = b.build();
        assert_eq!(batch.sessions.len(), 2);
    }
}
