//! Listening sockets: `[::]` is bound dual stack (IPV6_V6ONLY off) and falls back to
//! `0.0.0.0` when the machine has no IPv6.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(false)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(4096)?;
    Ok(sock.into())
}

/// Binds `spec` (`host:port`, `[::]:port`). Must run inside a tokio runtime.
pub fn bind(spec: &str) -> std::io::Result<TcpListener> {
    let addr = spec
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let std_listener = match bind_one(addr) {
        Ok(l) => l,
        Err(e) if addr.is_ipv6() && addr.ip().is_unspecified() => {
            tracing::warn!(error = %e, "IPv6 unavailable, listening on 0.0.0.0 instead");
            bind_one(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port()))?
        }
        Err(e) => return Err(e),
    };
    TcpListener::from_std(std_listener)
}

/// An IPv4-mapped IPv6 peer (dual-stack socket) as the plain IPv4 address.
pub fn canonical_ip(addr: SocketAddr) -> std::net::IpAddr {
    match addr.ip() {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.into(),
            None => v6.into(),
        },
        ip => ip,
    }
}
