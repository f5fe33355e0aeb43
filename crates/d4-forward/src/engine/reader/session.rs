//! Reading one journal session for a rule: its frames checked, the session taken or not
//! (the filter), its frames handed to the transform and the output spooled.

use super::*;

impl Reader {
    pub(super) fn read_session(
        &mut self,
        s: &TrackedSession,
        budget: &mut usize,
        now: u64,
    ) -> Status {
        let first_seg = s.segs.keys().next().copied().unwrap_or(0);
        let saved = self.state.cursors.get(&s.id).copied();
        let mut r = self.reads.remove(&s.id).unwrap_or_else(|| SessionRead {
            cur: saved.unwrap_or(Cursor {
                seg: first_seg,
                ..Cursor::default()
            }),
            file: None,
            meta: Vec::new(),
            decision: None,
            held: VecDeque::new(),
            key: None,
        });
        let st = self.read_into(&mut r, s, budget, now);
        if !matches!(st, Status::Failed) {
            self.reads.insert(s.id, r);
        }
        st
    }

    fn read_into(
        &mut self,
        r: &mut SessionRead,
        s: &TrackedSession,
        budget: &mut usize,
        now: u64,
    ) -> Status {
        let verify = s.from_previous_run();
        let mut min_want = 0u64;
        loop {
            // the segment to read: the cursor's, or the next linked one
            let Some((&seg, &end)) = s.segs.range(r.cur.seg..).next() else {
                return if s.closed {
                    Status::Done
                } else {
                    Status::Waiting
                };
            };
            if seg != r.cur.seg {
                r.cur.seg = seg;
                r.cur.off = 0;
                r.cur.skip = 0;
                r.file = None;
            }
            let has_next = s.segs.range(seg + 1..).next().is_some();
            let at_end = |r: &mut SessionRead| {
                if has_next {
                    r.cur.seg += 1;
                    r.cur.off = 0;
                    r.cur.skip = 0;
                    None
                } else if s.closed {
                    Some(Status::Done)
                } else {
                    Some(Status::Waiting)
                }
            };
            if r.file.as_ref().is_none_or(|(fs, _)| *fs != seg) {
                match File::open(seg_name(self.ctx.journals.dir(), &s.id, seg)) {
                    Ok(f) => r.file = Some((seg, f)),
                    Err(e) => {
                        tracing::warn!(session = %s.id, seg, error = %e, "forwarding: a linked segment is missing");
                        match at_end(r) {
                            None => continue,
                            Some(_) => return Status::Done,
                        }
                    }
                }
            }
            let Some((_, file)) = r.file.as_mut() else {
                return Status::Done;
            };
            let limit = match end {
                Some(e) => e,
                None => file.metadata().map(|m| m.len()).unwrap_or(0),
            };
            if r.cur.off >= limit {
                match at_end(r) {
                    None => continue,
                    Some(st) => return st,
                }
            }
            if *budget == 0 {
                return Status::More;
            }
            let want = (limit - r.cur.off).min((1u64 << 20).max(min_want));
            let mut buf = vec![0u8; want as usize];
            let read = file
                .seek(SeekFrom::Start(r.cur.off))
                .and_then(|_| file.read_exact(&mut buf));
            if let Err(e) = read {
                tracing::warn!(session = %s.id, seg, error = %e, "forwarding: reading a segment failed");
                return Status::Waiting;
            }
            // whole frames in the buffer (checked against their HMAC for a previous run)
            let mut frames: Vec<(Header, usize, usize)> = Vec::new();
            let mut pos = 0usize;
            let mut stop: Option<&str> = None;
            while let Some(h) = Header::from_prefix(&buf[pos..]) {
                if h.version != 1 || h.size > MAX_FRAME {
                    stop = Some("bytes that do not decode");
                    break;
                }
                let len = HEADER_LEN + h.size as usize;
                if pos + len > buf.len() {
                    break;
                }
                if verify {
                    let key = r.key.get_or_insert_with(|| {
                        match self.sensor_info(&h.uuid).and_then(|i| i.hmac_key) {
                            Some(k) => HmacKey::new(&k),
                            None => HmacKey::new(&self.ctx.default_key),
                        }
                    });
                    let mut head = [0u8; HEADER_LEN];
                    head.copy_from_slice(&buf[pos..pos + HEADER_LEN]);
                    if !key.verify_raw(&head, &buf[pos + HEADER_LEN..pos + len]) {
                        stop = Some("a frame that fails its HMAC check");
                        break;
                    }
                }
                frames.push((h, pos, len));
                pos += len;
            }
            if frames.is_empty() && stop.is_none() {
                if let Some(h) = Header::from_prefix(&buf) {
                    let len = (HEADER_LEN + h.size as usize) as u64;
                    if len <= limit - r.cur.off && len > want {
                        min_want = len; // one frame longer than a read: read it whole
                        continue;
                    }
                }
            }
            let base = r.cur.off;
            for (h, at, len) in frames {
                let cursor = Cursor {
                    off: base + at as u64,
                    ..r.cur
                };
                let payload = &buf[at + HEADER_LEN..at + len];
                if self.handle_frame(r, s, &h, payload, cursor, now).is_err() {
                    return Status::Failed;
                }
                r.cur.skip = 0;
                r.cur.seq += 1;
                r.cur.off = base + (at + len) as u64;
                self.last_ts = self.last_ts.max(h.timestamp);
            }
            *budget = budget.saturating_sub(pos.max(1));
            self.changed |= pos > 0;
            if let Some(why) = stop {
                let zeros = buf[pos..].iter().all(|b| *b == 0);
                if verify && zeros {
                    // the zero padding that ends a segment written with O_DIRECT: go on with
                    // the session's next segment, if any
                    match at_end(r) {
                        None => continue,
                        Some(_) => return Status::Done,
                    }
                }
                tracing::warn!(rule = %self.ctx.rule.name, session = %s.id, seg, off = r.cur.off, "forwarding: the journal holds {why}: the rest of this session is not forwarded");
                return Status::Done;
            }
            if pos == 0 {
                if verify {
                    // a torn frame at the end of a previous run's segment
                    match at_end(r) {
                        None => continue,
                        Some(_) => return Status::Done,
                    }
                }
                return Status::Waiting;
            }
        }
    }

    fn handle_frame(
        &mut self,
        r: &mut SessionRead,
        s: &TrackedSession,
        h: &Header,
        payload: &[u8],
        at: Cursor,
        now: u64,
    ) -> Result<(), SpoolFailed> {
        if h.d4_type == types::META_HEADER {
            // the server refuses a longer meta header; a journal is read with the same bound
            let room = d4_proto::DEFAULT_MAX_META_LEN.saturating_sub(r.meta.len());
            r.meta
                .extend_from_slice(&payload[..payload.len().min(room)]);
            return Ok(());
        }
        if r.decision.is_none() {
            let mut d = self.decide(r, s, h)?;
            if let (Some(t), Some(hd)) = (d.as_mut(), r.cur.pcap.as_ref()) {
                // resuming a pcap stream mid-way: its records follow the saved header
                if let Err(e) = t.transform.resume_pcap(hd) {
                    tracing::warn!(rule = %self.ctx.rule.name, error = %e, "forwarding: the saved pcap header is refused");
                }
            }
            r.decision = Some(d);
        }
        let Some(Some(t)) = r.decision.as_mut() else {
            self.state.filtered += 1;
            self.ctx.counters.filtered.fetch_add(1, Relaxed);
            return Ok(());
        };
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        // the first frame after a resume: from the first byte not in the output yet
        let skip = at.skip.min(payload.len());
        match t
            .transform
            .push_at(at.seq, skip, &payload[skip..], now, &mut out)
        {
            Ok(p) => {
                self.state.dropped += p.dropped;
                self.ctx.counters.dropped.fetch_add(p.dropped, Relaxed);
            }
            Err(e) => {
                self.state.dropped += 1;
                self.ctx.counters.dropped.fetch_add(1, Relaxed);
                tracing::debug!(error = %e, "forwarding: a transform refused a frame");
            }
        }
        if t.stream.d4_type == types::PCAP {
            if let Some(hd) = t.transform.pcap_header() {
                t.stream.set_pcap_header(hd);
            }
            if r.cur.pcap.is_none() {
                r.cur.pcap = t.transform.pcap_input_header();
            }
        }
        let stream = t.stream.clone();
        let held = t.transform.held_from();
        r.held.push_back((at.seq, at));
        while r.held.front().is_some_and(|f| held.is_none_or(|h| f.0 < h)) {
            r.held.pop_front();
        }
        let res = self.emit(&stream, &out);
        self.out = out;
        res
    }

    /// Whether the rule takes a session, at its first data frame. A stream whose spool
    /// cannot be opened fails the pass (read again later), rather than skip the session.
    fn decide(
        &mut self,
        r: &SessionRead,
        s: &TrackedSession,
        h: &Header,
    ) -> Result<Option<Taken>, SpoolFailed> {
        let t = h.d4_type;
        let ext = if t == types::EXTENDED {
            let mut meta = r.meta.clone();
            if meta.is_empty() && s.meta {
                meta = read_meta_file(&meta_name(self.ctx.journals.dir(), &s.id));
            }
            serde_json::from_slice::<serde_json::Value>(&meta)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        } else {
            None
        };
        let info = self.sensor_info(&h.uuid).unwrap_or_default();
        let (tags, groups) = (info.tags.as_slice(), info.groups.as_slice());
        let f = &self.ctx.rule.filter;
        if !forwardable(t)
            || !f.selects_type(t, ext.as_deref())
            || !f.selects_sensor(h.uuid, tags, groups)
        {
            return Ok(None);
        }
        let transform = match StreamTransform::new(&self.ctx.rule.privacy, t, ext.as_deref()) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(rule = %self.ctx.rule.name, error = %e, "forwarding: the rule's transform cannot take this stream");
                return Ok(None);
            }
        };
        match self.stream(t, ext.as_deref()) {
            Ok(stream) => Ok(Some(Taken { stream, transform })),
            Err(e) => Err(self.spool_failed("cannot open the stream's spool", &e)),
        }
    }
}

/// The payloads of the type-2 frames in a `.meta` file, concatenated, bounded like the
/// server's meta headers ([`d4_proto::DEFAULT_MAX_META_LEN`]: payload bytes past it are
/// not read).
fn read_meta_file(path: &std::path::Path) -> Vec<u8> {
    let max = d4_proto::DEFAULT_MAX_META_LEN;
    let mut out = Vec::new();
    let Ok(f) = File::open(path) else {
        return out;
    };
    let mut f = std::io::BufReader::new(f);
    let mut h = [0u8; HEADER_LEN];
    while out.len() < max && f.read_exact(&mut h).is_ok() {
        let size = Header::parse(&h).size as usize;
        let take = size.min(max - out.len());
        let at = out.len();
        out.resize(at + take, 0);
        if f.read_exact(&mut out[at..]).is_err() {
            // a torn last frame: what was whole before it
            out.truncate(at);
            break;
        }
        if size > take {
            break;
        }
    }
    out
}
