//! QUIC version 1 Initial packet protection (RFC 9001 §5): the initial secrets derived from the
//! client's original Destination Connection ID, header protection with AES-128 on a 16-byte
//! sample, and AES-128-GCM on the payload (nonce = IV xor packet number, AAD = the unprotected
//! header).

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::Aes128Gcm;
use hkdf::Hkdf;
use sha2::Sha256;

use super::packet::LongHeader;
use super::QuicError;

/// `initial_salt` of QUIC version 1 (RFC 9001 §5.2).
pub const INITIAL_SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];

/// Length of the AEAD tag ending every protected payload.
pub const TAG_LEN: usize = 16;

/// The keys protecting one direction's Initial packets.
#[derive(Clone, PartialEq, Eq)]
pub struct InitialKeys {
    /// AEAD key (`quic key`).
    pub key: [u8; 16],
    /// AEAD IV (`quic iv`).
    pub iv: [u8; 12],
    /// Header protection key (`quic hp`).
    pub hp: [u8; 16],
}

impl std::fmt::Debug for InitialKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Initial keys are public knowledge (derived from a cleartext field), but keep logs short.
        f.write_str("InitialKeys(..)")
    }
}

/// Both directions' Initial keys for one connection, with the secrets they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialSecrets {
    /// `initial_secret` = HKDF-Extract(initial_salt, original DCID).
    pub initial_secret: [u8; 32],
    /// `client_initial_secret` (label `client in`).
    pub client_secret: [u8; 32],
    /// `server_initial_secret` (label `server in`).
    pub server_secret: [u8; 32],
    /// Keys of the client's Initial packets.
    pub client: InitialKeys,
    /// Keys of the server's Initial packets.
    pub server: InitialKeys,
}

impl InitialSecrets {
    /// Derives both directions' keys from the Destination Connection ID of the client's first
    /// Initial packet (RFC 9001 §5.2).
    pub fn new(original_dcid: &[u8]) -> Result<Self, QuicError> {
        let (prk, _) = Hkdf::<Sha256>::extract(Some(&INITIAL_SALT_V1), original_dcid);
        let mut initial_secret = [0u8; 32];
        initial_secret.copy_from_slice(&prk);
        let mut client_secret = [0u8; 32];
        let mut server_secret = [0u8; 32];
        expand_label(&initial_secret, b"client in", &mut client_secret)?;
        expand_label(&initial_secret, b"server in", &mut server_secret)?;
        Ok(Self {
            initial_secret,
            client: InitialKeys::from_secret(&client_secret)?,
            server: InitialKeys::from_secret(&server_secret)?,
            client_secret,
            server_secret,
        })
    }
}

impl InitialKeys {
    /// The `quic key`, `quic iv` and `quic hp` of a traffic secret.
    pub fn from_secret(secret: &[u8; 32]) -> Result<Self, QuicError> {
        let mut keys = Self {
            key: [0; 16],
            iv: [0; 12],
            hp: [0; 16],
        };
        expand_label(secret, b"quic key", &mut keys.key)?;
        expand_label(secret, b"quic iv", &mut keys.iv)?;
        expand_label(secret, b"quic hp", &mut keys.hp)?;
        Ok(keys)
    }

    /// The keys of one side's Initial packets: `is_server` picks `server in` over `client in`.
    pub fn for_side(original_dcid: &[u8], is_server: bool) -> Result<Self, QuicError> {
        let secrets = InitialSecrets::new(original_dcid)?;
        Ok(if is_server {
            secrets.server
        } else {
            secrets.client
        })
    }

    /// The 5 header-protection mask bytes that matter for a 16-byte `sample` (RFC 9001 §5.4.3).
    pub fn header_mask(&self, sample: &[u8; 16]) -> [u8; 5] {
        let cipher = Aes128::new(&self.hp.into());
        let mut block = (*sample).into();
        cipher.encrypt_block(&mut block);
        [block[0], block[1], block[2], block[3], block[4]]
    }

    fn nonce(&self, packet_number: u64) -> [u8; 12] {
        let mut nonce = self.iv;
        for (n, p) in nonce[4..].iter_mut().zip(packet_number.to_be_bytes()) {
            *n ^= p;
        }
        nonce
    }

    /// Decrypts `payload` in place (AES-128-GCM, `aad` = the unprotected header).
    pub fn open_payload(
        &self,
        packet_number: u64,
        aad: &[u8],
        payload: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), QuicError> {
        let cipher = Aes128Gcm::new(&self.key.into());
        cipher
            .decrypt_in_place_detached(
                &self.nonce(packet_number).into(),
                aad,
                payload,
                &(*tag).into(),
            )
            .map_err(|_| QuicError::AuthFailed)
    }

    /// Encrypts `payload` in place and returns the tag (builder support).
    pub fn seal_payload(
        &self,
        packet_number: u64,
        aad: &[u8],
        payload: &mut [u8],
    ) -> Result<[u8; TAG_LEN], QuicError> {
        let cipher = Aes128Gcm::new(&self.key.into());
        let tag = cipher
            .encrypt_in_place_detached(&self.nonce(packet_number).into(), aad, payload)
            .map_err(|_| QuicError::KeyDerivation)?;
        Ok(tag.into())
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context, as QUIC uses it.
fn expand_label(secret: &[u8; 32], label: &[u8], out: &mut [u8]) -> Result<(), QuicError> {
    let hk = Hkdf::<Sha256>::from_prk(secret).map_err(|_| QuicError::KeyDerivation)?;
    let out_len = u16::try_from(out.len()).map_err(|_| QuicError::KeyDerivation)?;
    let label_len = u8::try_from(6 + label.len()).map_err(|_| QuicError::KeyDerivation)?;
    let len_bytes = out_len.to_be_bytes();
    let info: [&[u8]; 5] = [&len_bytes, &[label_len], b"tls13 ", label, &[0]];
    hk.expand_multi_info(&info, out)
        .map_err(|_| QuicError::KeyDerivation)
}

/// Recovers a full packet number from its truncated form (RFC 9000 §A.3). `largest` is the
/// largest packet number already received in this space (`None`: none yet).
pub fn decode_packet_number(largest: Option<u64>, truncated: u64, pn_len: usize) -> u64 {
    let expected = largest.map_or(0, |l| l.saturating_add(1));
    let bits = 8 * pn_len as u32;
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | truncated;
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if candidate > expected.saturating_add(hwin) && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

/// Removes header protection from an Initial packet and decrypts it with `keys`.
///
/// On success `out` holds the plaintext payload (frames) and the packet number is returned.
/// `largest_pn` is the largest packet number decrypted so far in this direction (for the
/// packet-number expansion; `None` at first). On failure `out`'s content is unspecified.
pub fn open_initial(
    header: &LongHeader<'_>,
    keys: &InitialKeys,
    largest_pn: Option<u64>,
    out: &mut Vec<u8>,
) -> Result<u64, QuicError> {
    let packet = header.packet;
    let pn_offset = header.pn_offset;
    let sample: &[u8; 16] = packet
        .get(pn_offset + 4..pn_offset + 20)
        .and_then(|s| s.try_into().ok())
        .ok_or(QuicError::TooShortForSample)?;
    let mask = keys.header_mask(sample);
    out.clear();
    out.extend_from_slice(packet);
    out[0] ^= mask[0] & 0x0f;
    let pn_len = usize::from(out[0] & 0x03) + 1;
    let header_len = pn_offset + pn_len;
    if out.len() < header_len + TAG_LEN {
        return Err(QuicError::TooShortForSample);
    }
    let mut truncated = 0u64;
    for (i, b) in out[pn_offset..header_len].iter_mut().enumerate() {
        *b ^= mask[1 + i];
        truncated = (truncated << 8) | u64::from(*b);
    }
    let packet_number = decode_packet_number(largest_pn, truncated, pn_len);
    let reserved = out[0] & 0x0c;
    let (aad, rest) = out.split_at_mut(header_len);
    let (payload, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| QuicError::Truncated)?;
    keys.open_payload(packet_number, aad, payload, &tag)?;
    // Checked only after authentication, as RFC 9000 §17.2 asks.
    if reserved != 0 {
        return Err(QuicError::ReservedBits);
    }
    let payload_len = payload.len();
    out.copy_within(header_len..header_len + payload_len, 0);
    out.truncate(payload_len);
    Ok(packet_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_number_expansion_rfc9000_a3() {
        // RFC 9000 §A.3 example: largest 0xa82f30ea, 2-byte truncated 0x9b32.
        assert_eq!(
            decode_packet_number(Some(0xa82f_30ea), 0x9b32, 2),
            0xa82f_9b32
        );
        assert_eq!(decode_packet_number(None, 2, 4), 2);
        assert_eq!(decode_packet_number(Some(255), 1, 1), 257);
    }
}
