//! `d4 tls` inputs: capture files (pcap/pcapng, plain or gzip, `-` for stdin) read with
//! `d4_pibs::capture`, or a live interface through libpcap (feature `live-capture`), an
//! optional BPF filter, and the loop that feeds the sans-IO sensor and logs its counters.

use std::fs::File;
use std::io::{self, IsTerminal};
use std::path::Path;
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

    /// Periodic counters (`--stats-secs`).
    pub fn tick(&mut self) {
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
        let json = serde_json::json!({ "sensor": s, "outputs": o });
        tracing::info!(packets = self.packets, stats = %json, "{what}");
        if o.records_dropped_spool_full > 0 {
            tracing::warn!(
                dropped = o.records_dropped_spool_full,
                "records dropped because the spool was full (live capture)"
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
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<bool> {
    let mut p = Pipeline {
        sensor: Sensor::new(sensor_config(args)),
        sessions: Vec::new(),
        outputs,
        stats_every: (args.stats_secs > 0).then(|| Duration::from_secs(args.stats_secs)),
        last_stats: Instant::now(),
        packets: 0,
    };
    let started = Instant::now();
    let mut ok = true;
    let mut res = Ok(());
    if let Some(iface) = &args.interface {
        res = live(iface, &mut filter, &mut p, stop);
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
        Box::new(io::stdin())
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
                let ts = rec.ts_sec.saturating_mul(1_000_000_000) + u64::from(rec.ts_nsec);
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
    _filter: &mut Filter,
    _p: &mut Pipeline<'_>,
    _stop: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    check_live_supported()
}

/// Live capture: promiscuous, snaplen 65535, immediate delivery. The handle is non-blocking
/// (on Linux a blocking read ignores its timeout on a quiet link and would hold a signal
/// until the next packet): when nothing is waiting, the loop sleeps 5 ms, so signals, idle
/// expiry and the periodic counters are seen at once. libpcap's own drop counters are
/// logged at the end.
#[cfg(feature = "live-capture")]
fn live(
    iface: &str,
    filter: &mut Filter,
    p: &mut Pipeline<'_>,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    let mut cap = pcap::Capture::from_device(iface)
        .with_context(|| format!("interface {iface}"))?
        .promisc(true)
        .snaplen(65535)
        .immediate_mode(true)
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
                p.tick();
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("capture on {iface}"))),
        }
    }
    if let Ok(s) = cap.stats() {
        tracing::info!(
            received = s.received,
            dropped_by_kernel = s.dropped,
            dropped_by_interface = s.if_dropped,
            "libpcap counters"
        );
    }
    Ok(())
}
