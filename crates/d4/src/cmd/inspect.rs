//! `d4 inspect`: decode a D4 stream from a file or stdin and print one line per frame,
//! then a summary. Exit status 1 when the stream is malformed, an HMAC is bad, or the
//! stream breaks a rule the collector enforces; 2 when the input cannot be read.

use d4_client::config::trim_value;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use d4_proto::{
    types, DecodeError, Decoder, Frame, HmacKey, MetaHeaderBuilder, DEFAULT_MAX_PAYLOAD,
};
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    d4 inspect capture.d4 --key 'private key to change'\n  \
    nc -l 4444 | d4 inspect - --json --key-file /etc/d4/key\n\n\
Exit status: 0 when every frame decodes (and verifies, when a key is given) and the stream\n\
follows the collector's rules; 1 when it is malformed, truncated, an HMAC is bad or a rule\n\
is broken; 2 when the input cannot be read or the arguments are wrong.")]
pub struct InspectArgs {
    /// The D4 stream to read; `-` or nothing for stdin.
    #[arg(value_name = "FILE|-")]
    pub input: Option<PathBuf>,

    /// The sensor's HMAC key, to verify each frame (without a key, HMACs are "unknown").
    #[arg(long, conflicts_with = "key_file")]
    pub key: Option<String>,

    /// Read the key from a file (one trailing newline removed), as the client's `key` file.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,

    /// Largest payload accepted, in bytes; a header declaring more ends the stream.
    #[arg(long, default_value_t = DEFAULT_MAX_PAYLOAD, value_name = "BYTES")]
    pub max_size: u32,
}

pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let key = match (&args.key, &args.key_file) {
        (Some(k), _) => Some(HmacKey::new(k.as_bytes())),
        (None, Some(path)) => {
            let raw = std::fs::read(path)
                .with_context(|| format!("cannot read key file {}", path.display()))?;
            Some(HmacKey::new(trim_value(&raw)))
        }
        (None, None) => None,
    };
    let mut reader: Box<dyn Read> = match &args.input {
        None => Box::new(io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(io::stdin().lock()),
        Some(p) => Box::new(File::open(p).with_context(|| format!("cannot open {}", p.display()))?),
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut inspector = Inspector::new(key, args.json, args.max_size);
    let ok = inspector.run(&mut reader, &mut out)?;
    out.flush()?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HmacStatus {
    Ok,
    Bad,
    Unknown,
}

impl HmacStatus {
    fn as_str(self) -> &'static str {
        match self {
            HmacStatus::Ok => "ok",
            HmacStatus::Bad => "bad",
            HmacStatus::Unknown => "unknown",
        }
    }
}

/// The state of one inspection: counters, the rules seen so far and the output mode.
struct Inspector {
    key: Option<HmacKey>,
    json: bool,
    decoder: Decoder,
    frames: u64,
    payload_bytes: u64,
    hmac_ok: u64,
    hmac_bad: u64,
    hmac_unknown: u64,
    violations: Vec<String>,
    error: Option<String>,
    first: Option<(uuid::Uuid, u8)>,
    last_type: Option<u8>,
    meta: Option<MetaHeaderBuilder>,
}

impl Inspector {
    fn new(key: Option<HmacKey>, json: bool, max_size: u32) -> Inspector {
        Inspector {
            key,
            json,
            decoder: Decoder::with_max_payload(max_size),
            frames: 0,
            payload_bytes: 0,
            hmac_ok: 0,
            hmac_bad: 0,
            hmac_unknown: 0,
            violations: Vec::new(),
            error: None,
            first: None,
            last_type: None,
            meta: None,
        }
    }

    /// Reads the whole input, writes the report; `Ok(true)` when the stream is clean.
    fn run(&mut self, reader: &mut dyn Read, out: &mut dyn Write) -> anyhow::Result<bool> {
        let mut buf = vec![0u8; 64 * 1024];
        'read: loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("reading the stream"),
            };
            let mut chunk = Bytes::copy_from_slice(&buf[..n]);
            loop {
                match self.decoder.decode(&mut chunk) {
                    Ok(Some(frame)) => self.frame(&frame, out)?,
                    Ok(None) => break,
                    Err(e) => {
                        self.fail(&e, out)?;
                        break 'read;
                    }
                }
            }
        }
        if self.error.is_none() {
            if let Err(e) = self.decoder.finish() {
                self.fail(&e, out)?;
            }
        }
        self.close_meta(out)?;
        self.summary(out)?;
        Ok(self.error.is_none() && self.hmac_bad == 0 && self.violations.is_empty())
    }

    fn frame(&mut self, frame: &Frame, out: &mut dyn Write) -> anyhow::Result<()> {
        self.frames += 1;
        let h = &frame.header;
        self.payload_bytes += frame.payload.len() as u64;
        let hmac = match &self.key {
            None => HmacStatus::Unknown,
            Some(k) if k.verify(frame) => HmacStatus::Ok,
            Some(_) => HmacStatus::Bad,
        };
        match hmac {
            HmacStatus::Ok => self.hmac_ok += 1,
            HmacStatus::Bad => self.hmac_bad += 1,
            HmacStatus::Unknown => self.hmac_unknown += 1,
        }
        let time = utc_time(h.timestamp);
        let type_name = types::name(h.d4_type).unwrap_or("undefined");
        if self.json {
            let sha = hex::encode(Sha256::digest(&frame.payload));
            writeln!(
                out,
                "{}",
                json!({
                    "kind": "frame",
                    "index": self.frames,
                    "uuid": h.uuid.hyphenated().to_string(),
                    "sensor_id": h.sensor_id(),
                    "version": h.version,
                    "type": h.d4_type,
                    "type_name": type_name,
                    "timestamp": h.timestamp,
                    "time": time,
                    "size": h.size,
                    "sha256": sha,
                    "hmac": hmac.as_str(),
                })
            )?;
        } else {
            writeln!(
                out,
                "#{:<5} {}  uuid={}  type={} ({})  size={}  hmac={}",
                self.frames,
                time,
                h.uuid.hyphenated(),
                h.d4_type,
                type_name,
                h.size,
                hmac.as_str()
            )?;
        }
        self.check_rules(frame, out)
    }

    /// The collector's per-connection rules (PROTOCOL.md), reported as violations.
    fn check_rules(&mut self, frame: &Frame, out: &mut dyn Write) -> anyhow::Result<()> {
        let h = &frame.header;
        let index = self.frames;
        let mut broken = Vec::new();
        if !types::is_data_type(h.d4_type) {
            broken.push(format!(
                "frame {index}: type {} is not a defined data type",
                h.d4_type
            ));
        }
        match self.first {
            None => {
                self.first = Some((h.uuid, h.d4_type));
                if h.d4_type == types::EXTENDED {
                    broken.push(format!(
                        "frame {index}: the stream starts with type 254 without a type-2 meta header"
                    ));
                }
            }
            Some((uuid, _)) if uuid != h.uuid => {
                broken.push(format!(
                    "frame {index}: uuid changes from {} to {} within the stream",
                    uuid.hyphenated(),
                    h.uuid.hyphenated()
                ));
            }
            Some(_) => {}
        }
        if let Some(last) = self.last_type {
            if last != h.d4_type && !(last == types::META_HEADER && h.d4_type == types::EXTENDED) {
                broken.push(format!(
                    "frame {index}: type changes from {last} to {} (only 2 -> 254 is allowed)",
                    h.d4_type
                ));
            }
        }
        self.last_type = Some(h.d4_type);
        if h.d4_type == types::META_HEADER {
            let builder = self.meta.get_or_insert_with(MetaHeaderBuilder::new);
            if let Err(e) = builder.push(&frame.payload) {
                broken.push(format!("frame {index}: {e}"));
            }
        } else {
            self.close_meta(out)?;
        }
        for v in broken {
            self.violation(v, out)?;
        }
        Ok(())
    }

    /// Checks and prints the meta header once the type-2 frames are over.
    fn close_meta(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        let Some(builder) = self.meta.take() else {
            return Ok(());
        };
        match builder.finish() {
            Ok(m) => {
                if self.json {
                    writeln!(
                        out,
                        "{}",
                        json!({"kind": "meta_header", "ext_type": m.ext_type(), "header": m.fields()})
                    )?;
                } else {
                    writeln!(
                        out,
                        "meta header: extended type {:?}: {}",
                        m.ext_type(),
                        m.to_json()
                    )?;
                }
                Ok(())
            }
            Err(e) => self.violation(format!("meta header refused: {e}"), out),
        }
    }

    fn violation(&mut self, text: String, out: &mut dyn Write) -> anyhow::Result<()> {
        if self.json {
            writeln!(out, "{}", json!({"kind": "violation", "message": text}))?;
        } else {
            writeln!(out, "rule broken: {text}")?;
        }
        self.violations.push(text);
        Ok(())
    }

    fn fail(&mut self, e: &DecodeError, out: &mut dyn Write) -> anyhow::Result<()> {
        let offset = self.decoder.frame_offset();
        let hint = match e {
            DecodeError::UnsupportedVersion { .. } if self.frames == 0 => {
                " (this does not look like a D4 stream)"
            }
            DecodeError::UnsupportedVersion { .. } => " (framing lost)",
            _ => "",
        };
        let text = format!(
            "at byte offset {offset}, frame {}: {e}{hint}",
            self.frames + 1
        );
        if self.json {
            let trailing = matches!(e, DecodeError::Truncated { buffered, .. } if *buffered > 0)
                .then(|| self.decoder.buffered());
            writeln!(
                out,
                "{}",
                json!({"kind": "error", "offset": offset, "message": text, "trailing_bytes": trailing})
            )?;
        } else {
            writeln!(out, "error: {text}")?;
        }
        self.error = Some(text);
        Ok(())
    }

    fn summary(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        let trailing = match self.decoder.finish() {
            Err(DecodeError::Truncated { buffered, .. }) => buffered,
            _ => 0,
        };
        let clean = self.error.is_none() && self.hmac_bad == 0 && self.violations.is_empty();
        let status = if clean { "ok" } else { "bad" };
        if self.json {
            writeln!(
                out,
                "{}",
                json!({"kind": "summary", "frames": self.frames, "payload_bytes": self.payload_bytes,
                    "hmac_ok": self.hmac_ok, "hmac_bad": self.hmac_bad, "hmac_unknown": self.hmac_unknown,
                    "trailing_bytes": trailing, "violations": self.violations.len(),
                    "error": self.error, "status": status})
            )?;
        } else {
            writeln!(
                out,
                "summary: {} frames, {} payload bytes; hmac ok {}, bad {}, unknown {}; {} trailing bytes; {} rule(s) broken; {}",
                self.frames,
                self.payload_bytes,
                self.hmac_ok,
                self.hmac_bad,
                self.hmac_unknown,
                trailing,
                self.violations.len(),
                match &self.error {
                    Some(_) => "stream malformed",
                    None if self.hmac_bad > 0 => "bad HMAC: a collector would drop the connection",
                    None if !clean => "a collector would refuse this stream",
                    None => "stream ok",
                }
            )?;
        }
        Ok(())
    }
}

/// A Unix timestamp as RFC 3339 UTC, or a note when it is out of range.
fn utc_time(ts: u64) -> String {
    i64::try_from(ts)
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("out-of-range({ts})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_one_newline_only() {
        assert_eq!(trim_value(b"key\r\n"), b"key");
        assert_eq!(trim_value(b"key\n\n"), b"key\n");
        assert_eq!(trim_value(b"key"), b"key");
    }

    #[test]
    fn formats_utc() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_time(1549494136), "2019-02-06T23:02:16Z");
        assert!(utc_time(u64::MAX).starts_with("out-of-range"));
    }
}
