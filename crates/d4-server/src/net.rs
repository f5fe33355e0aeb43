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
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(in_use(addr, e)),
        Err(e) if addr.is_ipv6() && addr.ip().is_unspecified() => {
            tracing::warn!(error = %e, "IPv6 unavailable, listening on 0.0.0.0 instead");
            let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
            bind_one(v4).map_err(|e| match e.kind() {
                std::io::ErrorKind::AddrInUse => in_use(v4, e),
                _ => e,
            })?
        }
        Err(e) => return Err(e),
    };
    TcpListener::from_std(std_listener)
}

/// The error of a port some other program (or another `d4 server`) already listens on.
fn in_use(addr: SocketAddr, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!(
            "port {} is already in use ({e}): is another d4 server or program listening on it? \
             Stop it or choose another address",
            addr.port()
        ),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_reported_as_in_use_not_as_missing_ipv6() {
        let first = bind("[::]:0").unwrap();
        let port = first.local_addr().unwrap().port();
        for spec in [format!("[::]:{port}"), format!("0.0.0.0:{port}")] {
            let e = bind(&spec).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{spec}");
            assert!(
                e.to_string()
                    .contains(&format!("port {port} is already in use")),
                "{e}"
            );
        }
    }
}
