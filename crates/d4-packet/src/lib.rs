//! `d4-packet`: the sans-IO packet layer shared by the capture analyzers: the link-layer
//! and IPv4/IPv6 TCP/UDP/ICMP classifier that `d4-pibs` uses, the transport decoder and
//! the bounded TCP reassembly (IPv4 and IPv6) that `d4-tls` uses. It must never do I/O (bytes in, values out: no files, sockets, clocks or
//! threads) and never depend on another d4 crate (at most `d4-proto`, ideally none), so
//! every analyzer can use it and it can be fuzzed on its own.
//!
//! Modules: [`classify`](fn@classify) (the backscatter view of a frame), [`decode`](fn@decode)
//! (the TCP segment or UDP datagram with its payload, for stream analyzers) and
//! [`reassembly`] (bounded TCP stream reassembly). Every read is bounds-checked, so a
//! truncated or hostile frame is skipped with a reason, never a panic.

mod classify;
pub mod decode;
mod ip;
pub mod reassembly;

pub use classify::{classify, IcmpError, Packet, Quoted, Tcp};
pub use decode::{decode, Datagram, Segment, Transport};
pub use reassembly::{
    Config, EndReason, Endpoint, FlowId, FlowKey, Reassembler, Side, Sink, Stats,
};

/// TCP flag bits (the 8 bits of byte 13 of the TCP header, as the reference prints them).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    /// `SYN,ACK`-style names of the bits set in `f` (empty string for no flag).
    pub fn names(f: u8) -> String {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut out = String::new();
        for (i, n) in NAMES.iter().enumerate() {
            if f & (1 << i) != 0 {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(n);
            }
        }
        if out.is_empty() {
            out.push_str("NONE");
        }
        out
    }
}

/// IP protocol numbers we look at.
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_SCTP: u8 = 132;
pub const PROTO_ICMPV6: u8 = 58;

/// The link layer of a capture, from the pcap/pcapng link-type number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// 1: Ethernet II, with any number (up to 8) of 802.1Q / 802.1ad (QinQ) tags.
    Ethernet,
    /// 101 (and the DLT values 12/14 some systems write): raw IPv4 or IPv6.
    Raw,
    /// 228: raw IPv4 only.
    Ipv4,
    /// 229: raw IPv6 only.
    Ipv6,
    /// 113: Linux cooked capture v1 (16-byte header).
    LinuxSll,
    /// 276: Linux cooked capture v2 (20-byte header).
    LinuxSll2,
    /// 0: BSD loopback, 4-byte address family in the writer's byte order.
    Null,
    /// 108: OpenBSD loopback, 4-byte address family in network byte order.
    Loop,
    /// Anything else: every frame is skipped.
    Unsupported(u32),
}

impl LinkType {
    pub fn from_pcap(n: u32) -> LinkType {
        match n {
            1 => LinkType::Ethernet,
            101 | 12 | 14 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            other => LinkType::Unsupported(other),
        }
    }
}

/// Why a frame was not classified as TCP or an ICMP error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The link type is not supported.
    Link,
    /// Not IPv4/IPv6 (ARP, LLDP...).
    NotIp,
    /// The frame ends before the headers we need (snaplen or a broken capture).
    Truncated,
    /// A header is inconsistent (bad version, IHL < 5, too many extension headers...).
    Malformed,
    /// A non-first IP fragment: no transport header to look at.
    Fragment,
    /// The first fragment of a fragmented datagram (more fragments follow): IP fragments
    /// are not reassembled, so [`decode`](fn@decode) skips it. [`classify`](fn@classify)
    /// never returns it (the first fragment holds the headers it needs).
    Fragmented,
    /// UDP: not backscatter, but its flow is remembered (an ICMP error quoting it is a reply).
    Udp,
    /// Another protocol or ICMP message type.
    Other,
}
