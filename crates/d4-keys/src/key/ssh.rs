//! OpenSSH keys: public key lines (`ssh-rsa`, `ssh-dss`, `ecdsa-sha2-nistp*`,
//! `ssh-ed25519`; the `sk-` security-key kinds are unsupported, as in badkeys) and the
//! public key stored in clear in an `openssh-key-v1` private key.

use base64::Engine;
use rug::Integer;

use super::spki::{dsa_key, ec_point};
use super::{rsa_key, Key, KeyData, Parsed};
use crate::der::int_from_be_signed;

/// The lines of a text that hold an OpenSSH public key.
pub(super) fn lines(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    input.split(|&b| b == b'\n').filter_map(|l| {
        let l = l.trim_ascii();
        (l.starts_with(b"ssh-") || l.starts_with(b"ecdsa-") || l.starts_with(b"sk-")).then_some(l)
    })
}

/// SSH wire format: u32 lengths before strings and mpints.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if rest.len() < len {
            return None;
        }
        let (s, rest) = rest.split_at(len);
        self.0 = rest;
        Some(s)
    }

    fn mpint(&mut self) -> Option<Integer> {
        let s = self.string()?;
        if s.is_empty() {
            return Some(Integer::new());
        }
        int_from_be_signed(s)
    }

    fn u32(&mut self) -> Option<u32> {
        let (v, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*v))
    }
}

fn bad() -> Parsed {
    Parsed::Unparseable("Invalid OpenSSH key".into())
}

/// One `type base64 [comment]` line.
pub(super) fn parse_line(line: &[u8]) -> Parsed {
    let mut parts = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|p| !p.is_empty());
    let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
        return bad();
    };
    let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return bad();
    };
    let parsed = parse_blob(&blob);
    // the key type written before the blob must match the one inside it
    if let Parsed::Key(_) = parsed {
        if Wire(&blob).string() != Some(kind) {
            return bad();
        }
    }
    parsed
}

/// A public key blob (the base64 part of a public key line).
pub(super) fn parse_blob(blob: &[u8]) -> Parsed {
    parse_blob_inner(blob).unwrap_or_else(bad)
}

fn parse_blob_inner(blob: &[u8]) -> Option<Parsed> {
    let mut w = Wire(blob);
    let kind = w.string()?;
    let parsed = match kind {
        b"ssh-rsa" => {
            let e = w.mpint()?;
            let n = w.mpint()?;
            rsa_key(n, e, None)
        }
        b"ssh-dss" => {
            let (p, q, g, y) = (w.mpint()?, w.mpint()?, w.mpint()?, w.mpint()?);
            if p.significant_bits() != 1024 {
                return Some(Parsed::Unparseable("SSH DSA keys must be 1024 bits".into()));
            }
            dsa_key(p, q, g, y)
        }
        b"ecdsa-sha2-nistp256" | b"ecdsa-sha2-nistp384" | b"ecdsa-sha2-nistp521" => {
            let (curve, len): (&'static str, usize) = match w.string()? {
                b"nistp256" => ("p256", 32),
                b"nistp384" => ("p384", 48),
                b"nistp521" => ("p521", 66),
                _ => return None,
            };
            let point = w.string()?;
            if point.first() != Some(&4) {
                // `cryptography` raises NotImplementedError: badkeys' unsupported
                return Some(Parsed::Unsupported(
                    "Compressed elliptic curve points are not supported".into(),
                ));
            }
            ec_point(curve, len, point, None)
        }
        b"ssh-ed25519" => {
            let pk = w.string()?;
            if pk.len() != 32 {
                return None;
            }
            Parsed::Key(Key::new(KeyData::Raw {
                curve: "ed25519",
                bytes: pk.to_vec(),
            }))
        }
        other => Parsed::Unsupported(format!(
            "Key type {} is not supported",
            String::from_utf8_lossy(other)
        )),
    };
    Some(parsed)
}

/// The public key of an `openssh-key-v1` private key (its binary body, after base64).
pub(super) fn parse_private(body: &[u8]) -> Parsed {
    let Some(rest) = body.strip_prefix(b"openssh-key-v1\0") else {
        return bad();
    };
    let mut w = Wire(rest);
    let blob = (|| {
        w.string()?; // cipher
        w.string()?; // kdf
        w.string()?; // kdf options
        (w.u32()? >= 1).then_some(())?;
        w.string()
    })();
    blob.map_or_else(bad, parse_blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &[u8]) -> Vec<u8> {
        let mut v = (s.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(s);
        v
    }

    #[test]
    fn rsa_line() {
        // e = 65537, n = 0xff010001 (a leading zero keeps an mpint positive)
        let blob = [
            string(b"ssh-rsa"),
            string(&[1, 0, 1]),
            string(&[0, 0xff, 1, 0, 1]),
        ]
        .concat();
        let line = format!(
            "ssh-rsa {} me@host",
            base64::engine::general_purpose::STANDARD.encode(&blob)
        );
        match parse_line(line.as_bytes()) {
            Parsed::Key(Key {
                data: KeyData::Rsa { n, e, .. },
                ..
            }) => {
                assert_eq!(n, 0xff01_0001_u32);
                assert_eq!(e, 65537);
            }
            other => panic!("{other:?}"),
        }
        let wrong = line.replacen("ssh-rsa", "ssh-dss", 1);
        assert!(matches!(
            parse_line(wrong.as_bytes()),
            Parsed::Unparseable(_)
        ));
    }

    #[test]
    fn security_keys_are_unsupported() {
        let blob = string(b"sk-ssh-ed25519@openssh.com");
        assert!(matches!(parse_blob(&blob), Parsed::Unsupported(_)));
    }
}
