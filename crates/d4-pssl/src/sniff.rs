//! What an input file holds, told from its first bytes (sans-IO): a capture (pcap or
//! pcapng), gzip (look inside again once decompressed), certificates (PEM or DER) or
//! `ja3-jl` JSON lines, for `d4 pssl ingest --format auto`.

/// An input's content, as far as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// pcap (either byte order, micro- or nanosecond) or pcapng.
    Capture,
    /// gzip: decompress and ask again.
    Gzip,
    /// PEM (`-----BEGIN `) or a DER certificate (an ASN.1 SEQUENCE with a long length).
    Certificates,
    /// Anything else: read as JSON lines (bad lines are counted, not fatal).
    JsonLines,
}

const PCAP_MAGICS: [[u8; 4]; 5] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    // pcapng section header block
    [0x0a, 0x0d, 0x0d, 0x0a],
];

/// Tells the content from the first bytes (a few KiB are plenty; fewer still work).
pub fn sniff(head: &[u8]) -> Content {
    if head.len() >= 4 && PCAP_MAGICS.iter().any(|m| head[..4] == m[..]) {
        return Content::Capture;
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Content::Gzip;
    }
    let text = head.trim_ascii_start();
    if text.starts_with(b"{") {
        return Content::JsonLines;
    }
    if memchr::memmem::find(head, b"-----BEGIN ").is_some() {
        return Content::Certificates;
    }
    // DER certificate: SEQUENCE, length in 1 or 2 more bytes, then the tbsCertificate
    // SEQUENCE (a certificate is never shorter than 128 bytes).
    if head.len() >= 5 && head[0] == 0x30 && matches!(head[1], 0x81..=0x83) {
        let inner = 2 + usize::from(head[1] - 0x80);
        if head.get(inner) == Some(&0x30) {
            return Content::Certificates;
        }
    }
    Content::JsonLines
}

/// True for a tar archive's first block (the `ustar` magic at offset 257).
pub fn is_tar(head: &[u8]) -> bool {
    head.get(257..262) == Some(b"ustar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents() {
        assert_eq!(sniff(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]), Content::Capture);
        assert_eq!(sniff(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0]), Content::Capture);
        assert_eq!(sniff(&[0xa1, 0xb2, 0x3c, 0x4d]), Content::Capture);
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Content::Gzip);
        assert_eq!(sniff(b"  {\"JA3\":\"x\"}\n"), Content::JsonLines);
        assert_eq!(
            sniff(b"Certificate:\n  Data: ...\n-----BEGIN CERTIFICATE-----\nMII"),
            Content::Certificates
        );
        // 30 82 LL LL 30 82: a DER certificate's first bytes
        assert_eq!(
            sniff(&[0x30, 0x82, 0x03, 0x10, 0x30, 0x82, 0x02, 0xf8]),
            Content::Certificates
        );
        assert_eq!(sniff(&[0x30, 0x82, 0x03, 0x10, 0x02]), Content::JsonLines);
        assert_eq!(sniff(b""), Content::JsonLines);
        assert_eq!(sniff(b"garbage"), Content::JsonLines);
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert!(is_tar(&tar));
        assert!(!is_tar(&tar[..200]));
    }
}
