use thiserror::Error;

/// Why a D4 byte stream could not be decoded. Every variant is fatal for the stream:
/// framing is lost, so the decoder refuses further input once one is returned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The header declares a protocol version this implementation does not speak.
    #[error("unsupported header version {found} (expected {expected})")]
    UnsupportedVersion { found: u8, expected: u8 },
    /// The header declares a payload larger than the configured maximum; no payload byte
    /// was buffered.
    #[error("declared payload size {declared} is over the limit of {max} bytes")]
    SizeOverLimit { declared: u32, max: u32 },
    /// The stream ended inside a frame.
    #[error("stream ends inside a frame: {buffered} of {expected} bytes received")]
    Truncated { buffered: usize, expected: usize },
    /// The decoder already returned an error and refuses further input.
    #[error("decoder already failed: {0}")]
    Failed(Box<DecodeError>),
}

/// Why a payload could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The payload does not fit the 32-bit size field.
    #[error("payload of {0} bytes does not fit a D4 frame (maximum 4294967295)")]
    PayloadTooLarge(usize),
}
