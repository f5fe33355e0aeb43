//! How a batch of whole frames is cut into writes, so that what a collector reads ends on
//! frame boundaries it can parse.
//!
//! Every batch the sender writes holds whole frames only, so a batch ends on a frame
//! boundary. Over TLS, each write of at most [`TLS_RECORD_MAX`] bytes becomes exactly one
//! TLS record (the connection's send buffer is unbounded, see
//! [`crate::dest::Connector::connect`]), and a TLS server reads one record at a time. Left
//! to rustls, a batch is cut into 16,384-byte records with a short last one: a 32,798-byte
//! batch went out as 16,384 + 16,384 + 30. d4-core's server (`server.py`) only buffers a
//! read shorter than the 62-byte header while a frame is pending, and parses that buffer at
//! the next longer read, which never comes at the end of a stream: the last frame was lost.
//! [`cuts`] therefore never makes a piece shorter than the header: when the last piece
//! would be, the one before it gives up the difference (16,384 + 16,352 + 62).

use std::ops::Range;

use d4_proto::HEADER_LEN;

/// Largest TLS plaintext record (RFC 8446 §5.1), rustls's default fragment size.
pub const TLS_RECORD_MAX: usize = 16_384;

/// Cuts `len` bytes into consecutive pieces of at most `max` bytes (`max` is raised to
/// twice the header length if smaller). No piece is shorter than the 62-byte header unless
/// `len` itself is.
pub fn cuts(len: usize, max: usize) -> Vec<Range<usize>> {
    let max = max.max(2 * HEADER_LEN);
    let mut out = Vec::with_capacity(len.div_ceil(max));
    let mut pos = 0;
    while pos < len {
        let rest = len - pos;
        let n = if rest > max && rest - max < HEADER_LEN {
            // the next piece would leave a runt: leave exactly one header's worth
            rest - HEADER_LEN
        } else {
            rest.min(max)
        };
        out.push(pos..pos + n);
        pos += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_32302_byte_file() {
        // 8 frames of a 32,302-byte file with snaplen 4096: 32,798 bytes on the wire
        assert_eq!(
            cuts(32_798, TLS_RECORD_MAX),
            vec![0..16_384, 16_384..32_736, 32_736..32_798]
        );
        assert_eq!(
            cuts(16_412, TLS_RECORD_MAX),
            vec![0..16_350, 16_350..16_412]
        );
        assert_eq!(cuts(16_384, TLS_RECORD_MAX), vec![0..16_384]);
        assert_eq!(
            cuts(16_446, TLS_RECORD_MAX),
            vec![0..16_384, 16_384..16_446]
        );
        assert_eq!(cuts(62, TLS_RECORD_MAX), vec![0..62]);
        assert!(cuts(0, TLS_RECORD_MAX).is_empty());
    }

    proptest! {
        #[test]
        fn pieces_cover_the_batch_and_none_is_short(len in 0usize..200_000, max in 0usize..40_000) {
            let c = cuts(len, max);
            let max = max.max(2 * HEADER_LEN);
            let mut pos = 0;
            for r in &c {
                prop_assert_eq!(r.start, pos);
                prop_assert!(r.end > r.start);
                prop_assert!(r.len() <= max);
                prop_assert!(r.len() >= HEADER_LEN.min(len));
                pos = r.end;
            }
            prop_assert_eq!(pos, len);
            prop_assert_eq!(c.len(), len.div_ceil(max));
        }
    }
}
