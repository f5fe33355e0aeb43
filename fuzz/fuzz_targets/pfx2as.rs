//! Fuzz what `d4 pibs serve --pfx2as` reads from a user-supplied prefix-to-AS file
//! (`d4_pibs::pfx2as::Pfx2As::parse`). Nothing may panic; every route found for an address
//! contains it, and every prefix listed for an AS is one of its routes.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use d4_pibs::pfx2as::Pfx2As;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let t = Pfx2As::parse(data);
    // addresses taken from the input's first bytes, plus fixed ones
    let mut addrs = vec![
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if let Some(b) = data.get(..4) {
        addrs.push(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])));
    }
    if let Some(b) = data.get(..16) {
        let mut o = [0u8; 16];
        o.copy_from_slice(b);
        addrs.push(IpAddr::V6(Ipv6Addr::from(o)));
    }
    for ip in addrs {
        if let Some(r) = t.lookup(ip) {
            let ip = match (ip, r.net) {
                (IpAddr::V6(v6), ipnet::IpNet::V4(_)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                _ => ip,
            };
            assert!(r.net.contains(&ip), "{} not in {}", ip, r.net);
            if let Some(asn) = r.asn() {
                assert!(t.prefixes_of(asn).any(|n| n == r.net));
            }
        }
    }
});
