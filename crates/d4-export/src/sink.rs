//! The blocking connections of a sink: connect, write one formatted entry, flush, and tell
//! whether the receiver is still there.
//!
//! Stream sinks (TCP, TLS, Unix stream, stdout) write through a buffer flushed at the end
//! of each batch (and before a rate-limit wait). Datagram sinks (UDP, Unix datagram,
//! syslog over UDP) send one datagram per entry; a datagram refused as too large
//! (`EMSGSIZE`) is reported as [`Sent::Oversize`], never retried.
//!
//! Stream sockets have no application-level acknowledgement, so [`Conn::check_alive`]
//! looks for what the kernel knows: the receiver closed (EOF, `close_notify`), reset, or
//! an ICMP error queued on a connected UDP socket. The exporter calls it before and after
//! each batch; a failure makes it reconnect and send the whole unacknowledged batch again.

use std::io::{self, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::spec::{HostPort, SinkSpec, SyslogProto, UnixKind};

/// How long a connect, a TLS handshake or a blocked write may take before the receiver
/// counts as gone.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Yes,
    /// Larger than the socket takes: counted, not sent.
    Oversize,
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// One open connection to the sink.
pub enum Conn {
    Stdout(BufWriter<io::Stdout>),
    Tcp(BufWriter<TcpStream>),
    Tls(Box<BufWriter<TlsStream>>),
    UnixStream(BufWriter<UnixStream>),
    Udp(UdpSocket),
    UnixDatagram(UnixDatagram),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Stdout(_) => "Conn::Stdout",
            Conn::Tcp(_) => "Conn::Tcp",
            Conn::Tls(_) => "Conn::Tls",
            Conn::UnixStream(_) => "Conn::UnixStream",
            Conn::Udp(_) => "Conn::Udp",
            Conn::UnixDatagram(_) => "Conn::UnixDatagram",
        })
    }
}

fn resolve(hp: &HostPort) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (hp.host.as_str(), hp.port).to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} resolves to no address", hp.host),
        ));
    }
    Ok(addrs)
}

fn tcp(hp: &HostPort) -> io::Result<TcpStream> {
    let mut last = None;
    for a in resolve(hp)? {
        match TcpStream::connect_timeout(&a, IO_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                let ka = socket2::TcpKeepalive::new()
                    .with_time(Duration::from_secs(15))
                    .with_interval(Duration::from_secs(15));
                socket2::SockRef::from(&s).set_tcp_keepalive(&ka)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no address")))
}

fn udp(hp: &HostPort) -> io::Result<UdpSocket> {
    let mut last = None;
    for a in resolve(hp)? {
        let local: SocketAddr = if a.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = UdpSocket::bind(local)?;
        match s.connect(a) {
            Ok(()) => {
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no address")))
}

fn tls(hp: &HostPort, config: &Arc<ClientConfig>) -> io::Result<TlsStream> {
    let name = ServerName::try_from(hp.host.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    let sock = tcp(hp)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut s = StreamOwned::new(conn, sock);
    // the handshake now, so that a certificate the CA does not vouch for fails the connect
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

fn unix_dgram(path: &std::path::Path) -> io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect(path)?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

impl Conn {
    /// Opens the sink (`tls` is required for `tls://`).
    pub fn connect(spec: &SinkSpec, tls_config: Option<&Arc<ClientConfig>>) -> io::Result<Conn> {
        Ok(match spec {
            SinkSpec::Stdout => Conn::Stdout(BufWriter::with_capacity(64 * 1024, io::stdout())),
            SinkSpec::Tcp(hp)
            | SinkSpec::Syslog {
                addr: hp,
                proto: SyslogProto::Tcp,
            } => Conn::Tcp(BufWriter::with_capacity(64 * 1024, tcp(hp)?)),
            SinkSpec::Tls(hp) => {
                let config = tls_config.ok_or_else(|| io::Error::other("no TLS settings"))?;
                Conn::Tls(Box::new(BufWriter::with_capacity(
                    64 * 1024,
                    tls(hp, config)?,
                )))
            }
            SinkSpec::Udp(hp)
            | SinkSpec::Syslog {
                addr: hp,
                proto: SyslogProto::Udp,
            } => Conn::Udp(udp(hp)?),
            SinkSpec::Unix { path, kind } => match kind {
                UnixKind::Datagram => Conn::UnixDatagram(unix_dgram(path)?),
                UnixKind::Stream | UnixKind::Detect => match UnixStream::connect(path) {
                    Ok(s) => {
                        s.set_write_timeout(Some(IO_TIMEOUT))?;
                        Conn::UnixStream(BufWriter::with_capacity(64 * 1024, s))
                    }
                    // a datagram socket refuses a stream connection with EPROTOTYPE
                    Err(e)
                        if *kind == UnixKind::Detect
                            && e.raw_os_error() == Some(libc::EPROTOTYPE) =>
                    {
                        Conn::UnixDatagram(unix_dgram(path)?)
                    }
                    Err(e) => return Err(e),
                },
            },
        })
    }

    /// Whether entries go out as datagrams (one per entry, no line end added).
    pub fn is_datagram(&self) -> bool {
        matches!(self, Conn::Udp(_) | Conn::UnixDatagram(_))
    }

    /// Short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Conn::Stdout(_) => "stdout",
            Conn::Tcp(_) => "tcp",
            Conn::Tls(_) => "tls",
            Conn::UnixStream(_) => "unix stream",
            Conn::Udp(_) => "udp",
            Conn::UnixDatagram(_) => "unix datagram",
        }
    }

    /// Writes one formatted entry (a line or octet-counted message into the stream's
    /// buffer, or one datagram).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<Sent> {
        let dgram = match self {
            Conn::Stdout(w) => return w.write_all(bytes).map(|()| Sent::Yes),
            Conn::Tcp(w) => return w.write_all(bytes).map(|()| Sent::Yes),
            Conn::Tls(w) => return w.write_all(bytes).map(|()| Sent::Yes),
            Conn::UnixStream(w) => return w.write_all(bytes).map(|()| Sent::Yes),
            Conn::Udp(s) => s.send(bytes),
            Conn::UnixDatagram(s) => s.send(bytes),
        };
        match dgram {
            Ok(n) if n == bytes.len() => {}
            Ok(n) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("datagram cut: {n} of {} bytes sent", bytes.len()),
                ))
            }
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => return Ok(Sent::Oversize),
            Err(e) => return Err(e),
        }
        // an ICMP error the last datagrams caused (port unreachable: receiver gone)
        self.pending_error()?;
        Ok(Sent::Yes)
    }

    /// Pushes buffered bytes to the receiver.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Stdout(w) => w.flush(),
            Conn::Tcp(w) => w.flush(),
            Conn::Tls(w) => {
                w.flush()?;
                // rustls buffers the records: write them to the socket now
                let s = w.get_mut();
                while s.conn.wants_write() {
                    s.conn.write_tls(&mut s.sock)?;
                }
                Ok(())
            }
            Conn::UnixStream(w) => w.flush(),
            Conn::Udp(_) | Conn::UnixDatagram(_) => Ok(()),
        }
    }

    fn pending_error(&self) -> io::Result<()> {
        let e = match self {
            Conn::Udp(s) => s.take_error()?,
            Conn::UnixDatagram(s) => s.take_error()?,
            Conn::Tcp(w) => w.get_ref().take_error()?,
            Conn::UnixStream(w) => w.get_ref().take_error()?,
            Conn::Tls(w) => w.get_ref().sock.take_error()?,
            Conn::Stdout(_) => None,
        };
        match e {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `Err` when the receiver is known to be gone: it closed the connection, reset it, or
    /// an error is queued on the socket. Data it sends us is read and ignored.
    pub fn check_alive(&mut self) -> io::Result<()> {
        self.pending_error()?;
        match self {
            Conn::Tcp(w) => drain_stream(w.get_mut()),
            Conn::UnixStream(w) => drain_stream(w.get_mut()),
            Conn::Tls(w) => drain_tls(w.get_mut()),
            Conn::Stdout(_) | Conn::Udp(_) | Conn::UnixDatagram(_) => Ok(()),
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the receiver closed the connection",
    )
}

/// A socket we can switch to non-blocking for a look at what it has to read.
trait Nonblocking: Read {
    fn nonblocking(&self, on: bool) -> io::Result<()>;
}
impl Nonblocking for TcpStream {
    fn nonblocking(&self, on: bool) -> io::Result<()> {
        self.set_nonblocking(on)
    }
}
impl Nonblocking for UnixStream {
    fn nonblocking(&self, on: bool) -> io::Result<()> {
        self.set_nonblocking(on)
    }
}

fn drain_stream<S: Nonblocking>(s: &mut S) -> io::Result<()> {
    s.nonblocking(true)?;
    let mut scratch = [0u8; 4096];
    let r = loop {
        match s.read(&mut scratch) {
            Ok(0) => break Err(closed()),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    s.nonblocking(false)?;
    r
}

fn drain_tls(s: &mut TlsStream) -> io::Result<()> {
    s.sock.set_nonblocking(true)?;
    let r = loop {
        match s.conn.read_tls(&mut s.sock) {
            Ok(0) => break Err(closed()),
            Ok(_) => match s.conn.process_new_packets() {
                Ok(state) if state.peer_has_closed() => break Err(closed()),
                Ok(state) => {
                    // whatever the receiver wrote: read and dropped
                    let mut left = state.plaintext_bytes_to_read();
                    let mut scratch = [0u8; 4096];
                    while left > 0 {
                        match s.conn.reader().read(&mut scratch) {
                            Ok(0) => break,
                            Ok(n) => left = left.saturating_sub(n),
                            Err(_) => break,
                        }
                    }
                }
                Err(e) => break Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    s.sock.set_nonblocking(false)?;
    r
}
