use uuid::Uuid;

/// Length of a D4 v1 header in bytes.
pub const HEADER_LEN: usize = 62;
/// The only header version defined.
pub const PROTOCOL_VERSION: u8 = 1;
/// Offset of the type byte.
pub const TYPE_OFFSET: usize = 1;
/// Offset of the 16 raw UUID bytes.
pub const UUID_OFFSET: usize = 2;
/// Offset of the little-endian u64 timestamp.
pub const TIMESTAMP_OFFSET: usize = 18;
/// Offset of the 32-byte HMAC field.
pub const HMAC_OFFSET: usize = 26;
/// Length of the HMAC field.
pub const HMAC_LEN: usize = 32;
/// Offset of the little-endian u32 payload size.
pub const SIZE_OFFSET: usize = 58;

/// A D4 v1 frame header. Every bit pattern of 62 bytes is a `Header`: parsing cannot
/// fail, and [`Header::to_bytes`] gives back exactly the bytes that were parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Header version (1).
    pub version: u8,
    /// Payload type, see [`crate::types`].
    pub d4_type: u8,
    /// The sensor's UUID.
    pub uuid: Uuid,
    /// Unix time in seconds when the sensor framed the data.
    pub timestamp: u64,
    /// HMAC-SHA256 of the frame with this field zeroed.
    pub hmac: [u8; HMAC_LEN],
    /// Payload length in bytes.
    pub size: u32,
}

impl Header {
    /// Parses the 62 header bytes.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[UUID_OFFSET..UUID_OFFSET + 16]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[TIMESTAMP_OFFSET..TIMESTAMP_OFFSET + 8]);
        let mut hmac = [0u8; HMAC_LEN];
        hmac.copy_from_slice(&b[HMAC_OFFSET..HMAC_OFFSET + HMAC_LEN]);
        let mut size = [0u8; 4];
        size.copy_from_slice(&b[SIZE_OFFSET..SIZE_OFFSET + 4]);
        Header {
            version: b[0],
            d4_type: b[TYPE_OFFSET],
            uuid: Uuid::from_bytes(uuid),
            timestamp: u64::from_le_bytes(ts),
            hmac,
            size: u32::from_le_bytes(size),
        }
    }

    /// Parses a header from the start of `b`, or `None` when fewer than 62 bytes are given.
    pub fn from_prefix(b: &[u8]) -> Option<Header> {
        let arr: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header::parse(arr))
    }

    /// Writes the 62 header bytes.
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = self.version;
        out[TYPE_OFFSET] = self.d4_type;
        out[UUID_OFFSET..UUID_OFFSET + 16].copy_from_slice(self.uuid.as_bytes());
        out[TIMESTAMP_OFFSET..TIMESTAMP_OFFSET + 8].copy_from_slice(&self.timestamp.to_le_bytes());
        out[HMAC_OFFSET..HMAC_OFFSET + HMAC_LEN].copy_from_slice(&self.hmac);
        out[SIZE_OFFSET..SIZE_OFFSET + 4].copy_from_slice(&self.size.to_le_bytes());
    }

    /// The 62 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        self.write(&mut out);
        out
    }

    /// The sensor id as d4-core writes it (32 lowercase hex digits).
    pub fn sensor_id(&self) -> String {
        crate::sensor_id(&self.uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_little_endian_at_documented_offsets() {
        let h = Header {
            version: 1,
            d4_type: 8,
            uuid: Uuid::from_bytes([0xAA; 16]),
            timestamp: 0x0102_0304_0506_0708,
            hmac: [0x55; 32],
            size: 0x0A0B_0C0D,
        };
        let b = h.to_bytes();
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 8);
        assert_eq!(&b[2..18], &[0xAA; 16]);
        assert_eq!(&b[18..26], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[26..58], &[0x55; 32]);
        assert_eq!(&b[58..62], &[0x0D, 0x0C, 0x0B, 0x0A]);
        assert_eq!(Header::parse(&b), h);
        assert_eq!(Header::from_prefix(&b[..61]), None);
    }
}
