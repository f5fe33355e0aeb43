//! # d4-proto — the D4 encapsulation protocol, version 1
//!
//! Everything needed to produce and consume D4 v1 byte streams, and nothing else:
//! the 62-byte little-endian [`Header`], the signing [`Encoder`], the streaming
//! [`Decoder`], HMAC-SHA256 signing and constant-time verification ([`HmacKey`]),
//! the table of [`types`] and the type-2 [`meta`] header.
//!
//! This crate is *sans-IO*: it takes bytes and returns values. It must never depend on
//! sockets, files, clocks, async runtimes or any other crate of d4-rs — timestamps are
//! passed in by the caller — so that it can be tested, fuzzed and reused anywhere.
//!
//! ```
//! use bytes::Bytes;
//! use d4_proto::{Decoder, Encoder, HmacKey};
//! use uuid::Uuid;
//!
//! let uuid = Uuid::new_v4();
//! let enc = Encoder::new(uuid, b"my key", d4_proto::types::GENERIC_LOG);
//! let mut wire = enc.encode(1_700_000_000, b"hello\n").unwrap();
//! wire.extend(enc.encode(1_700_000_001, b"world\n").unwrap());
//!
//! let key = HmacKey::new(b"my key");
//! let mut dec = Decoder::new();
//! let mut input = Bytes::from(wire);
//! let frames: Vec<_> = dec.frames(&mut input).collect::<Result<_, _>>().unwrap();
//! assert_eq!(frames.len(), 2);
//! assert!(key.verify(&frames[1]));
//! assert_eq!(&frames[1].payload[..], b"world\n");
//! ```

mod decoder;
mod encoder;
mod error;
mod frame;
mod header;
mod hmac;
pub mod logsafe;
pub mod meta;
pub mod types;

pub use decoder::{Decoder, Frames, DEFAULT_MAX_PAYLOAD};
pub use encoder::Encoder;
pub use error::{DecodeError, EncodeError};
pub use frame::Frame;
pub use header::{
    Header, HEADER_LEN, HMAC_LEN, HMAC_OFFSET, PROTOCOL_VERSION, SIZE_OFFSET, TIMESTAMP_OFFSET,
    TYPE_OFFSET, UUID_OFFSET,
};
pub use hmac::HmacKey;
pub use meta::{MetaError, MetaHeader, MetaHeaderBuilder, DEFAULT_MAX_META_LEN};

/// The sensor id as d4-core writes it: the UUID as 32 lowercase hex digits, no dashes.
pub fn sensor_id(uuid: &uuid::Uuid) -> String {
    uuid.simple().to_string()
}
