use uuid::Uuid;

use crate::error::EncodeError;
use crate::header::{Header, HEADER_LEN, HMAC_LEN, HMAC_OFFSET, PROTOCOL_VERSION};
use crate::hmac::HmacKey;

/// Turns payloads into signed D4 frames for one sensor.
///
/// The encoder holds no clock: the caller passes each frame's timestamp.
#[derive(Debug, Clone)]
pub struct Encoder {
    uuid: Uuid,
    key: HmacKey,
    d4_type: u8,
    version: u8,
}

impl Encoder {
    /// An encoder for header version 1.
    pub fn new(uuid: Uuid, key: &[u8], d4_type: u8) -> Encoder {
        Encoder {
            uuid,
            key: HmacKey::new(key),
            d4_type,
            version: PROTOCOL_VERSION,
        }
    }

    /// Sets the version byte written in headers (the C client reads it from its config).
    pub fn with_version(mut self, version: u8) -> Encoder {
        self.version = version;
        self
    }

    /// Changes the type of the next frames (e.g. from 2 to 254 after the meta header).
    pub fn set_type(&mut self, d4_type: u8) {
        self.d4_type = d4_type;
    }

    pub fn d4_type(&self) -> u8 {
        self.d4_type
    }

    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The signed header for `payload`, for writers that send header and payload
    /// separately (vectored writes) without copying the payload.
    pub fn header(&self, timestamp: u64, payload: &[u8]) -> Result<[u8; HEADER_LEN], EncodeError> {
        let size = u32::try_from(payload.len())
            .map_err(|_| EncodeError::PayloadTooLarge(payload.len()))?;
        let mut raw = Header {
            version: self.version,
            d4_type: self.d4_type,
            uuid: self.uuid,
            timestamp,
            hmac: [0; HMAC_LEN],
            size,
        }
        .to_bytes();
        let tag = self.key.sign_raw(&raw, payload);
        raw[HMAC_OFFSET..HMAC_OFFSET + HMAC_LEN].copy_from_slice(&tag);
        Ok(raw)
    }

    /// Appends the signed frame for `payload` to `out`.
    pub fn encode_into(
        &self,
        timestamp: u64,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let header = self.header(timestamp, payload)?;
        out.reserve(HEADER_LEN + payload.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
        Ok(())
    }

    /// The signed frame for `payload`.
    pub fn encode(&self, timestamp: u64, payload: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        self.encode_into(timestamp, payload, &mut out)?;
        Ok(out)
    }
}
