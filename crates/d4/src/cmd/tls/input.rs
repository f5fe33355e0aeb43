//! `d4 tls` inputs: capture files (pcap/pcapng, plain or gzip, `-` for stdin) read with
//! `d4_pibs::capture`, or a live interface through libpcap (feature `live-capture`), an
//! optional BPF filter, and the loop that feeds the sans-IO sensor and logs its counters.

use std::fs::File;
use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;
use d4_packet::LinkType;
use d4_pibs::{for_each_record, CaptureError};
use d4_tls::sensor::{Sensor, SensorConfig};
use d4_tls::session::{Record, Session};

use super::output::Outputs;
use super::TlsArgs;

/// The BPF filter of the trailing arguments, compiled by libpcap per link type.
pub struct Filter {
    // without libpcap a filter is refused in `compile`: nothing reads it then
    #[cfg_attr(not(feature = "live-capture"), allow(dead_code))]
    expr: Option<String>,
    #[cfg(feature = "live-capture")]
    programs: Vec<(u32, pcap::BpfProgram)>,
}

impl Filter {
    pub fn compile(words: &[String]) -> anyhow::Result<Filter> {
        let expr = (!words.is_empty()).then(|| words.join(" "));
        #[cfg(not(feature = "live-capture"))]
        if let Some(e) = &expr {
            anyhow::bail!(
                "a BPF filter ({e:?}) needs libpcap: this d4 was built without the `live-capture` \
                 feature (install libpcap-dev, then `cargo build --release --features live-capture`)"
            );
        }
        #[allow(unused_mut)]
        let mut f = Filter {
            expr,
            #[cfg(feature = "live-capture")]
            programs: Vec::new(),
        };
        // a syntax error is reported now, not at the first packet
        #[cfg(feature = "live-capture")]
        if f.expr.is_some() {
            f.program(1)?;
        }
        Ok(f)
    }

    #[cfg_attr(not(feature = "live-capture"), allow(dead_code))]
    pub fn expr(&self) -> Option<&str> {
        self.expr.as_deref()
    }

    #[cfg(feature = "live-capture")]
    fn program(&mut self, linktype: u32) -> anyhow::Result<Option<&pcap::BpfProgram>> {
        let Some(expr) = &self.expr else {
            return Ok(None);
        };
        if let Some(i) = self.programs.iter().position(|(l, _)| *l == linktype) {
            return Ok(Some(&self.programs[i].1));
        }
        let lt = pcap::Linktype(i32::try_from(linktype).unwrap_or(1));
        let dead = pcap::Capture::dead(lt).context("libpcap")?;
        let prog = dead
            .compile(expr, true)
            .with_context(|| format!("bad BPF filter {expr:?}"))?;
        self.programs.push((linktype, prog));
        Ok(self.programs.last().map(|(_, p)| p))
    }

    /// True when the packet passes (always, without a filter).
    pub fn matches(&mut self, linktype: u32, data: &[u8]) -> anyhow::Result<bool> {
        #[cfg(feature = "live-capture")]
        if let Some(p) = self.program(linktype)? {
            return Ok(p.filter(data));
        }
        let _ = (linktype, data);
        Ok(true)
    }
}

/// `-i` needs libpcap: a clear error when this build has none.
pub fn check_live_supported() -> anyhow::Result<()> {
    #[cfg(not(feature = "live-capture"))]
    anyhow::bail!(
        "live capture (-i) needs libpcap: this d4 was built without the `live-capture` feature \
         (install libpcap-dev, then `cargo build --release --features live-capture`); \
         `tcpdump -w - | d4 tls -r -` works with any build"
    );
    #[cfg(feature = "live-capture")]
    Ok(())
}

fn sensor_config(args: &TlsArgs) -> SensorConfig {
    let l = &args.limits;
    let mut cfg = SensorConfig::default();
    cfg.reassembly.max_flows = l.max_flows;
    cfg.reassembly.max_flow_buffer = l.max_flow_buffer;
    cfg.reassembly.max_total_buffer = l.max_buffer;
    cfg.reassembly.idle_timeout_us = l.idle_timeout.saturating_mul(1_000_000);
    cfg.quic = !args.no_quic;
    cfg.max_quic_connections = l.max_quic;
    cfg.max_tls_buffer = l.max_tls_buffer;
    cfg
}

/// Feeds packets to the sensor and sessions to the outputs; logs the counters.
pub struct Pipeline<'a> {
    sensor: Sensor,
    sessions: Vec<Session>,
    outputs: &'a mut Outputs,
    stats_every: Option<Duration>,
    last_stats: Instant,
    pub packets: u64,
    /// Live capture: libpcap's counters (received, dropped by the kernel, by the interface).
    pub libpcap: Option<(u32, u32, u32)>,
    /// Set by SIGINT/SIGTERM (also seen by a read waiting on a quiet stdin).
    pub stop_flag: Arc<AtomicBool>,
}

/// Stdin read on its own thread, so that a signal ends a capture that waits on a quiet
/// pipe: a read waits at most 100 ms at a time, then looks at the stop flag (set: the
/// input ends there, and the sessions found so far are flushed).
struct StdinChunks {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    stop: Arc<AtomicBool>,
    eof: bool,
}

impl StdinChunks {
    fn start(stop: Arc<AtomicBool>) -> StdinChunks {
        let (tx, rx) = mpsc::sync_channel(4);
        let _ = std::thread::Builder::new()
            .name("d4-tls-stdin".into())
            .spawn(move || {
                let mut stdin = io::stdin().lock();
                loop {
                    let mut buf = vec![0u8; 1 << 16];
                    let r = loop {
                        match io::Read::read(&mut stdin, &mut buf) {
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            other => break other,
                        }
                    };
                    let end = matches!(r, Ok(0) | Err(_));
                    let msg = r.map(|n| {
                        buf.truncate(n);
                        buf
                    });
                    if tx.send(msg).is_err() || end {
                        return;
                    }
                }
            });
        StdinChunks {
            rx,
            chunk: Vec::new(),
            pos: 0,
            stop,
            eof: false,
        }
    }
}

impl io::Read for StdinChunks {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.chunk.len() {
                let n = out.len().min(self.chunk.len() - self.pos);
                out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.eof {
                return Ok(0);
            }
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(chunk)) if chunk.is_empty() => self.eof = true,
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.stop.load(Ordering::Relaxed) {
                        self.eof = true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => self.eof = true,
            }
        }
    }
}

impl Pipeline<'_> {
    /// One captured frame; `ts_ns` is its capture time in nanoseconds since the epoch.
    pub fn packet(&mut self, ts_ns: u64, linktype: u32, data: &[u8]) -> anyhow::Result<()> {
        self.packets += 1;
        self.sensor.packet(
            ts_ns,
            LinkType::from_pcap(linktype),
            data,
            &mut self.sessions,
        );
        self.flush_sessions()?;
        if self.packets & 0x3FFF == 0 {
            self.tick();
        }
        Ok(())
    }

    fn flush_sessions(&mut self) -> anyhow::Result<()> {
        for s in self.sessions.drain(..) {
            self.outputs.emit(&Record::new(&s))?;
        }
        Ok(())
    }

    /// Periodic work: pending live records to the client, the counters (`--stats-secs`).
    pub fn tick(&mut self) {
        self.outputs.drain_pending(false);
        if let Some(every) = self.stats_every {
            if self.last_stats.elapsed() >= every {
                self.last_stats = Instant::now();
                self.log_stats("d4 tls counters");
            }
        }
    }

    pub fn log_stats(&self, what: &str) {
        let s = self.sensor.stats();
        let o = self.outputs.stats;
        let mut json = serde_json::json!({ "sensor": s, "outputs": o });
        if let Some((received, dropped, if_dropped)) = self.libpcap {
            json["libpcap"] = serde_json::json!({
                "received": received,
                "dropped_by_kernel": dropped,
                "dropped_by_interface": if_dropped,
            });
        }
        tracing::info!(packets = self.packets, stats = %json, "{what}");
        if o.records_dropped > 0 {
            tracing::warn!(
                dropped = o.records_dropped,
                "live records dropped: the collector was away or slower than the capture and every buffer was full"
            );
        }
    }

    /// Capture time moved on without a packet (live capture on a quiet link).
    #[cfg_attr(not(feature = "live-capture"), allow(dead_code))]
    pub fn advance(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.sensor.advance(now_ns, &mut self.sessions);
        self.flush_sessions()
    }

    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.sensor.finish(&mut self.sessions);
        self.flush_sessions()
    }
}

/// Runs the whole capture (every `-r` file in order, or the live interface). `Ok(false)`
/// when a file was malformed part-way (what came before was analysed).
pub fn run_capture(
    args: &TlsArgs,
    mut filter: Filter,
    outputs: &mut Outputs,
    stop_flag: Arc<AtomicBool>,
) -> anyhow::Result<bool> {
    let flag = stop_flag.clone();
    let stop = &move || flag.load(Ordering::Relaxed);
    let mut p = Pipeline {
        sensor: Sensor::new(sensor_config(args)),
        sessions: Vec::new(),
        outputs,
        stats_every: (args.stats_secs > 0).then(|| Duration::from_secs(args.stats_secs)),
        last_stats: Instant::now(),
        packets: 0,
        libpcap: None,
        stop_flag,
    };
    let started = Instant::now();
    let mut ok = true;
    let mut res = Ok(());
    if let Some(iface) = &args.interface {
        res = live(iface, args.buffer_size, &mut filter, &mut p, stop);
    } else {
        for path in &args.read {
            match read_file(path, &mut filter, &mut p, stop) {
                Ok(file_ok) => ok &= file_ok,
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
            if stop() || p.outputs.should_stop() {
                break;
            }
        }
    }
    // the open sessions are written even after an error or a signal
    let fin = p.finish();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    tracing::info!(
        packets_per_sec = (p.packets as f64 / secs) as u64,
        "capture done"
    );
    p.log_stats("d4 tls done");
    res?;
    fin?;
    Ok(ok)
}

fn read_file(
    path: &Path,
    filter: &mut Filter,
    p: &mut Pipeline<'_>,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<bool> {
    let stdin = path.as_os_str() == "-";
    let reader: Box<dyn io::Read + Send> = if stdin {
        Box::new(StdinChunks::start(p.stop_flag.clone()))
    } else {
        Box::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
    };
    if !stdin && io::stderr().is_terminal() {
        tracing::info!(file = %path.display(), "reading");
    }
    let stopped = io::Error::new(io::ErrorKind::Interrupted, "stopped");
    let mut failure: Option<anyhow::Error> = None;
    let result = for_each_record(reader, |rec| {
        if stop() || p.outputs.should_stop() {
            return Err(io::Error::new(stopped.kind(), "stopped"));
        }
        let pass = filter.matches(rec.linktype, rec.data);
        let res = match pass {
            Ok(true) => {
                let ts = rec
                    .ts_sec
                    .saturating_mul(1_000_000_000)
                    .saturating_add(u64::from(rec.ts_nsec));
                p.packet(ts, rec.linktype, rec.data)
            }
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        res.map_err(|e| {
            failure = Some(e);
            io::Error::other("output failed")
        })
    });
    if let Some(e) = failure {
        return Err(e);
    }
    match result {
        Ok(sum) => {
            if sum.truncated_tail {
                tracing::warn!(file = %path.display(), "capture ends inside a record (cut short); the records before were analysed");
            }
            Ok(true)
        }
        Err(CaptureError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
        Err(CaptureError::Io(e)) => {
            Err(anyhow::Error::new(e).context(format!("while reading {}", path.display())))
        }
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "malformed capture; the records before the error were analysed");
            Ok(false)
        }
    }
}

#[cfg(not(feature = "live-capture"))]
fn live(
    _iface: &str,
    _buffer_size: usize,
    _filter: &mut Filter,
    _p: &mut Pipeline<'_>,
    _stop: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    check_live_supported()
}

/// Live capture: promiscuous, snaplen 65535, a kernel ring of `--buffer-size` bytes
/// (packets are delivered in blocks within 100 ms). The handle is non-blocking (on Linux a
/// blocking read can hold a signal until the next packet): when nothing is waiting, the
/// loop sleeps 5 ms, so signals, idle expiry and the periodic counters are seen at once.
/// libpcap's own counters (packets the kernel dropped because the ring was full) are in the
/// periodic and final counters, with a warning when there were drops.
#[cfg(feature = "live-capture")]
fn live(
    iface: &str,
    buffer_size: usize,
    filter: &mut Filter,
    p: &mut Pipeline<'_>,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    let mut cap = pcap::Capture::from_device(iface)
        .with_context(|| format!("interface {iface}"))?
        .promisc(true)
        .snaplen(65535)
        .buffer_size(i32::try_from(buffer_size).unwrap_or(i32::MAX))
        .timeout(100)
        .open()
        .with_context(|| format!("cannot capture on {iface} (needs CAP_NET_RAW or root)"))?
        .setnonblock()
        .with_context(|| format!("cannot make the capture on {iface} non-blocking"))?;
    if let Some(expr) = filter.expr() {
        cap.filter(expr, true)
            .with_context(|| format!("bad BPF filter {expr:?}"))?;
    }
    let linktype = u32::try_from(cap.get_datalink().0).unwrap_or(u32::MAX);
    tracing::info!(
        interface = iface,
        linktype,
        filter = filter.expr().unwrap_or(""),
        "capturing"
    );
    while !stop() && !p.outputs.should_stop() {
        match cap.next_packet() {
            Ok(pkt) => {
                let tv = pkt.header.ts;
                let ts = u64::try_from(tv.tv_sec)
                    .unwrap_or(0)
                    .saturating_mul(1_000_000_000)
                    + u64::try_from(tv.tv_usec).unwrap_or(0) * 1000;
                let data = pkt.data;
                p.packet(ts, linktype, data)?;
            }
            Err(pcap::Error::TimeoutExpired) => {
                // nothing waiting: idle flows still end on time
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                    .unwrap_or(0);
                p.advance(now)?;
                if let Ok(s) = cap.stats() {
                    p.libpcap = Some((s.received, s.dropped, s.if_dropped));
                }
                p.tick();
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("capture on {iface}"))),
        }
    }
    if let Ok(s) = cap.stats() {
        p.libpcap = Some((s.received, s.dropped, s.if_dropped));
        tracing::info!(
            received = s.received,
            dropped_by_kernel = s.dropped,
            dropped_by_interface = s.if_dropped,
            "libpcap counters"
        );
        if s.dropped > 0 || s.if_dropped > 0 {
            tracing::warn!(
                dropped_by_kernel = s.dropped,
                dropped_by_interface = s.if_dropped,
                "packets were lost before d4 tls saw them: raise --buffer-size, narrow the BPF filter, or give the sensor a core of its own"
            );
        }
    }
    Ok(())
}
