//! Reassembly of one direction's Initial CRYPTO stream: frames arrive out of order, duplicated
//! or overlapping, across packets and datagrams. The first copy of every byte wins; later
//! copies never change what was received. The buffer is bounded by a byte limit (offsets
//! beyond it are refused) and by a number of holes.

use super::QuicError;

/// The default byte limit of a CRYPTO stream: a ClientHello is far smaller (about 2 KiB even
/// with post-quantum key shares).
pub const DEFAULT_CRYPTO_LIMIT: usize = 64 * 1024;

/// How many disjoint received ranges a stream tracks before refusing more fragmentation.
pub const MAX_RANGES: usize = 64;

/// TLS handshake message type of a ClientHello.
pub const CLIENT_HELLO: u8 = 1;
/// TLS handshake message type of a ServerHello.
pub const SERVER_HELLO: u8 = 2;

/// One direction's Initial CRYPTO stream.
#[derive(Debug, Clone)]
pub struct CryptoStream {
    limit: usize,
    /// Received bytes at their stream offsets (holes are zero).
    data: Vec<u8>,
    /// Received ranges `[start, end)`: sorted, disjoint and not adjacent.
    ranges: Vec<(usize, usize)>,
}

impl Default for CryptoStream {
    fn default() -> Self {
        Self::new(DEFAULT_CRYPTO_LIMIT)
    }
}

impl CryptoStream {
    /// An empty stream that holds at most `limit` bytes (offsets `0..limit`).
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            data: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// Adds the bytes of one CRYPTO frame. Bytes already received are kept (first copy wins).
    /// Bytes at or beyond the limit are dropped and reported as [`QuicError::CryptoLimit`]
    /// (the part below the limit is kept); a frame that would leave more than [`MAX_RANGES`]
    /// holes is refused whole with [`QuicError::CryptoFragmented`].
    pub fn insert(&mut self, offset: u64, bytes: &[u8]) -> Result<(), QuicError> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let full_end = start.saturating_add(bytes.len());
        let end = full_end.min(self.limit);
        let over = full_end > self.limit;
        if start >= end {
            return if over {
                Err(QuicError::CryptoLimit)
            } else {
                Ok(())
            };
        }
        let merged = merge(&self.ranges, (start, end));
        if merged.len() > MAX_RANGES {
            return Err(QuicError::CryptoFragmented);
        }
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        let mut cursor = start;
        for &(s, e) in &self.ranges {
            if e <= cursor {
                continue;
            }
            if s >= end {
                break;
            }
            if s > cursor {
                self.data[cursor..s].copy_from_slice(&bytes[cursor - start..s - start]);
            }
            cursor = e;
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            self.data[cursor..end].copy_from_slice(&bytes[cursor - start..end - start]);
        }
        self.ranges = merged;
        if over {
            Err(QuicError::CryptoLimit)
        } else {
            Ok(())
        }
    }

    /// The bytes received without a hole from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        match self.ranges.first() {
            Some(&(0, end)) => &self.data[..end],
            _ => &[],
        }
    }

    /// Bytes of memory the stream holds (its highest received offset).
    pub fn buffered(&self) -> usize {
        self.data.len()
    }

    /// The byte limit given at creation.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The first handshake message's type and total length (4-byte header included), as soon
    /// as its header has arrived.
    pub fn first_message_header(&self) -> Option<(u8, usize)> {
        match self.contiguous() {
            [ty, a, b, c, ..] => Some((*ty, 4 + u32::from_be_bytes([0, *a, *b, *c]) as usize)),
            _ => None,
        }
    }

    /// The first handshake message of the stream, complete: `(type, message)` where `message`
    /// includes its 4-byte header (type, u24 length).
    pub fn first_message(&self) -> Option<(u8, &[u8])> {
        let (ty, len) = self.first_message_header()?;
        self.contiguous().get(..len).map(|m| (ty, m))
    }

    /// True when the first message can never complete within the limit.
    pub fn first_message_too_large(&self) -> bool {
        self.first_message_header()
            .is_some_and(|(_, len)| len > self.limit)
    }

    /// The complete ClientHello handshake message, **including** its 4-byte header
    /// (`01`, u24 length), when the stream starts with one and all of it has arrived.
    pub fn client_hello(&self) -> Option<&[u8]> {
        self.first_message()
            .filter(|(ty, _)| *ty == CLIENT_HELLO)
            .map(|(_, m)| m)
    }

    /// The complete ServerHello handshake message, including its 4-byte header.
    pub fn server_hello(&self) -> Option<&[u8]> {
        self.first_message()
            .filter(|(ty, _)| *ty == SERVER_HELLO)
            .map(|(_, m)| m)
    }
}

/// `ranges` with `new` added, merged with every range it overlaps or touches.
fn merge(ranges: &[(usize, usize)], new: (usize, usize)) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    let (mut s, mut e) = new;
    let mut placed = false;
    for &(rs, re) in ranges {
        if re < s {
            out.push((rs, re));
        } else if rs > e {
            if !placed {
                out.push((s, e));
                placed = true;
            }
            out.push((rs, re));
        } else {
            s = s.min(rs);
            e = e.max(re);
        }
    }
    if !placed {
        out.push((s, e));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_duplicates_and_first_copy_wins() {
        let mut s = CryptoStream::new(32);
        assert_eq!(s.insert(4, b"efgh"), Ok(()));
        assert_eq!(s.contiguous(), b"");
        assert_eq!(s.insert(2, b"XXYY"), Ok(())); // overlaps 4..6: first copy ("ef") wins
        assert_eq!(s.insert(0, b"ab"), Ok(()));
        assert_eq!(s.contiguous(), b"abXXefgh");
        assert_eq!(s.insert(0, b"ZZZZZZZZZZ"), Ok(()));
        assert_eq!(s.contiguous(), b"abXXefghZZ");
        assert_eq!(s.insert(30, b"1234"), Err(QuicError::CryptoLimit));
        assert_eq!(s.buffered(), 32);
        assert_eq!(s.insert(40, b"1"), Err(QuicError::CryptoLimit));
        assert_eq!(s.insert(u64::MAX, b"1"), Err(QuicError::CryptoLimit));
        assert_eq!(s.contiguous(), b"abXXefghZZ");
    }

    #[test]
    fn first_message_boundaries() {
        let mut s = CryptoStream::new(64);
        let msg = [1u8, 0, 0, 3, 7, 8, 9];
        assert_eq!(s.insert(4, &msg[4..]), Ok(()));
        assert_eq!(s.client_hello(), None);
        assert_eq!(s.insert(0, &msg[..3]), Ok(()));
        assert_eq!(s.first_message_header(), None);
        assert_eq!(s.insert(3, &msg[3..4]), Ok(()));
        assert_eq!(s.client_hello(), Some(&msg[..]));
        assert_eq!(s.server_hello(), None);
        let mut big = CryptoStream::new(64);
        assert_eq!(big.insert(0, &[1, 0, 1, 0]), Ok(()));
        assert!(big.first_message_too_large());
    }

    #[test]
    fn fragmentation_is_bounded() {
        let mut s = CryptoStream::new(1024);
        for i in 0..MAX_RANGES as u64 {
            assert_eq!(s.insert(i * 4 + 1, b"x"), Ok(()));
        }
        assert_eq!(s.insert(1000, b"x"), Err(QuicError::CryptoFragmented));
        // Filling a hole still works.
        assert_eq!(s.insert(0, b"yyyyy"), Ok(()));
        assert_eq!(s.contiguous(), b"yxyyyx");
    }
}
