//! A minimal, blocking Redis (RESP2) client: just what the `d4server` source needs
//! (`SELECT`, `LPOP`). Replies are parsed with explicit bounds; nothing panics on input.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Largest bulk string accepted (Redis' own limit is 512 MB).
const MAX_BULK: usize = 512 << 20;

/// A parsed RESP reply (only the kinds these commands return).
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads one reply.
pub fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = Vec::new();
    r.by_ref().take(64 * 1024).read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(bad("truncated or overlong reply line"));
    }
    line.truncate(line.len() - 2);
    let (kind, rest) = line.split_first().ok_or_else(|| bad("empty reply"))?;
    let text = String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Reply::Status(text)),
        b'-' => Ok(Reply::Error(text)),
        b':' => text.parse().map(Reply::Int).map_err(|_| bad("bad integer")),
        b'$' => {
            let n: i64 = text.parse().map_err(|_| bad("bad bulk length"))?;
            if n < 0 {
                return Ok(Reply::Bulk(None));
            }
            let n = usize::try_from(n).map_err(|_| bad("bad bulk length"))?;
            if n > MAX_BULK {
                return Err(bad("bulk string too large"));
            }
            let mut buf = vec![0u8; n + 2];
            r.read_exact(&mut buf)?;
            if !buf.ends_with(b"\r\n") {
                return Err(bad("bulk string not terminated"));
            }
            buf.truncate(n);
            Ok(Reply::Bulk(Some(buf)))
        }
        _ => Err(bad("unexpected reply type")),
    }
}

/// A connection reading one list.
pub struct RedisList {
    stream: BufReader<TcpStream>,
}

impl RedisList {
    pub fn connect(host_port: &str, db: u32) -> io::Result<RedisList> {
        let s = TcpStream::connect(host_port)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut l = RedisList {
            stream: BufReader::new(s),
        };
        if db != 0 {
            match l.call(&[b"SELECT", db.to_string().as_bytes()])? {
                Reply::Status(_) => {}
                other => return Err(bad(&format!("SELECT {db}: {other:?}"))),
            }
        }
        Ok(l)
    }

    fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.stream.get_mut().write_all(&encode_command(args))?;
        read_reply(&mut self.stream)
    }

    /// Puts an item back at the head of the list.
    pub fn lpush(&mut self, queue: &str, item: &[u8]) -> io::Result<()> {
        match self.call(&[b"LPUSH", queue.as_bytes(), item])? {
            Reply::Int(_) => Ok(()),
            other => Err(bad(&format!("LPUSH: unexpected {other:?}"))),
        }
    }

    /// Pops the oldest item (the reference analyzers `RPUSH`, the client `LPOP`s).
    pub fn lpop(&mut self, queue: &str) -> io::Result<Option<Vec<u8>>> {
        match self.call(&[b"LPOP", queue.as_bytes()])? {
            Reply::Bulk(b) => Ok(b),
            Reply::Error(e) => Err(bad(&format!("LPOP: {e}"))),
            other => Err(bad(&format!("LPOP: unexpected {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_roundtrip() {
        assert_eq!(
            encode_command(&[b"LPOP", b"q"]),
            b"*2\r\n$4\r\nLPOP\r\n$1\r\nq\r\n"
        );
        let mut r = &b"$3\r\na\nb\r\n$-1\r\n+OK\r\n-ERR x\r\n:5\r\n$5\r\nab"[..];
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply::Bulk(Some(b"a\nb".to_vec()))
        );
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Bulk(None));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Status("OK".into()));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Error("ERR x".into()));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Int(5));
        assert!(read_reply(&mut r).is_err());
        assert!(read_reply(&mut &b"$99999999999\r\n"[..]).is_err());
        assert!(read_reply(&mut &b"?\r\n"[..]).is_err());
    }
}
