use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::header::{Header, HEADER_LEN, HMAC_LEN, HMAC_OFFSET};
use crate::Frame;

type HmacSha256 = Hmac<Sha256>;

/// A sensor key, prepared once for signing and verifying many frames.
///
/// The HMAC is `HMAC-SHA256(key, header_with_hmac_zeroed || payload)`, all 32 bytes.
/// The keyed state (inner and outer pads) is computed once here and cloned per frame.
#[derive(Clone)]
pub struct HmacKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

impl HmacKey {
    /// Prepares `key` (the raw bytes of the sensor's key, trailing newline removed).
    pub fn new(key: &[u8]) -> HmacKey {
        // HMAC accepts keys of any length (long keys are hashed first), so this never fails;
        // fall back to the empty key's state rather than panicking if that ever changed.
        let mac = match <HmacSha256 as Mac>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()),
        };
        HmacKey { mac }
    }

    /// The HMAC of raw header bytes (its HMAC field is ignored: zeroed by offset) and payload.
    pub fn sign_raw(&self, header: &[u8; HEADER_LEN], payload: &[u8]) -> [u8; HMAC_LEN] {
        let mut zeroed = *header;
        zeroed[HMAC_OFFSET..HMAC_OFFSET + HMAC_LEN].fill(0);
        let mut mac = self.mac.clone();
        mac.update(&zeroed);
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }

    /// The HMAC a header (whatever its `hmac` field holds) and payload must carry.
    pub fn sign(&self, header: &Header, payload: &[u8]) -> [u8; HMAC_LEN] {
        self.sign_raw(&header.to_bytes(), payload)
    }

    /// Checks, in constant time, the HMAC carried by raw header bytes against the payload.
    pub fn verify_raw(&self, header: &[u8; HEADER_LEN], payload: &[u8]) -> bool {
        let mut zeroed = *header;
        zeroed[HMAC_OFFSET..HMAC_OFFSET + HMAC_LEN].fill(0);
        let mut mac = self.mac.clone();
        mac.update(&zeroed);
        mac.update(payload);
        mac.verify_slice(&header[HMAC_OFFSET..HMAC_OFFSET + HMAC_LEN])
            .is_ok()
    }

    /// Checks, in constant time, that `frame` carries the right HMAC for this key.
    pub fn verify(&self, frame: &Frame) -> bool {
        self.verify_raw(&frame.header.to_bytes(), &frame.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn sign_ignores_the_hmac_field_and_verify_detects_any_flip() {
        let key = HmacKey::new(b"private key to change");
        let mut h = Header {
            version: 1,
            d4_type: 3,
            uuid: Uuid::from_bytes([7; 16]),
            timestamp: 42,
            hmac: [0xff; 32],
            size: 3,
        };
        let tag = key.sign(&h, b"abc");
        h.hmac = [0; 32];
        assert_eq!(key.sign(&h, b"abc"), tag);
        h.hmac = tag;
        let frame = Frame::new(h, bytes::Bytes::from_static(b"abc"));
        assert!(key.verify(&frame));
        assert!(!HmacKey::new(b"other").verify(&frame));
        let mut raw = h.to_bytes();
        for i in 0..HEADER_LEN {
            raw[i] ^= 1;
            assert!(!key.verify_raw(&raw, b"abc"), "flip at {i} went unnoticed");
            raw[i] ^= 1;
        }
        assert!(!key.verify_raw(&raw, b"abd"));
    }
}
