//! Re-framing of a side's first flight: the same handshake messages cut into other TLS
//! records (all in one record, or each record at most N bytes, so messages span records).
//! Real stacks differ here (rustls 1.2 puts its whole server flight in one record, OpenSSL
//! one message per record); this gives a parser every layout from one handshake.

use super::Transcript;

/// `t` with the plaintext handshake records of `from_client`'s first run of writes
/// re-framed into records of at most `max_record` payload bytes (≤ 16384), the run's
/// writes joined into one. The bytes after those records (ChangeCipherSpec, encrypted
/// records) are unchanged. When the client side is re-framed, `client_hello_record` holds
/// the new records that carry the ClientHello.
pub fn reframe_first_flight(t: &Transcript, from_client: bool, max_record: usize) -> Transcript {
    let max_record = max_record.clamp(1, 16384);
    let start = t
        .writes
        .iter()
        .position(|(c, _)| *c == from_client)
        .unwrap_or(t.writes.len());
    let end = t.writes[start..]
        .iter()
        .position(|(c, _)| *c != from_client)
        .map_or(t.writes.len(), |n| start + n);
    let run: Vec<u8> = t.writes[start..end]
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    // the leading plaintext handshake records
    let (mut i, mut payload, mut version) = (0, Vec::new(), [3, 1]);
    while i + 5 <= run.len() && run[i] == 22 {
        let n = usize::from(u16::from_be_bytes([run[i + 3], run[i + 4]]));
        if i + 5 + n > run.len() {
            break;
        }
        version = [run[i + 1], run[i + 2]];
        payload.extend_from_slice(&run[i + 5..i + 5 + n]);
        i += 5 + n;
    }
    let mut records = Vec::new();
    for chunk in payload.chunks(max_record) {
        records.extend_from_slice(&[22, version[0], version[1]]);
        records.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        records.extend_from_slice(chunk);
    }
    let mut joined = records.clone();
    joined.extend_from_slice(&run[i..]);
    let mut out = t.clone();
    if start < end {
        out.writes.splice(start..end, [(from_client, joined)]);
    }
    if from_client {
        out.client_hello_record = records;
    }
    out
}
