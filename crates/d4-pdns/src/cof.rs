//! COF output (draft-dulaunoy-dnsop-passive-dns-cof): one JSON object per line.

use serde_json::{Map, Value};

use crate::rrtype;
use crate::store::Record;

/// Media type of a COF answer.
pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// Output options.
#[derive(Debug, Clone, Default)]
pub struct CofOptions {
    /// `rdata` as an array of strings (COF's recommendation) instead of a string.
    pub rdata_array: bool,
    /// An `origin` field on every record, when set.
    pub origin: Option<String>,
}

/// One record as a COF JSON object. An rrtype without a mnemonic is a JSON number.
pub fn to_cof(r: &Record, opts: &CofOptions) -> Value {
    let mut m = Map::new();
    m.insert("rrname".into(), Value::from(r.rrname.as_str()));
    m.insert(
        "rrtype".into(),
        match rrtype::name(r.rrtype) {
            Some(n) => Value::from(n),
            None => Value::from(r.rrtype),
        },
    );
    m.insert(
        "rdata".into(),
        if opts.rdata_array {
            Value::Array(vec![Value::from(r.rdata.as_str())])
        } else {
            Value::from(r.rdata.as_str())
        },
    );
    m.insert("time_first".into(), Value::from(r.time_first_ms / 1000));
    m.insert("time_last".into(), Value::from(r.time_last_ms / 1000));
    m.insert("time_first_ms".into(), Value::from(r.time_first_ms));
    m.insert("time_last_ms".into(), Value::from(r.time_last_ms));
    m.insert("count".into(), Value::from(r.count));
    if !r.sensors.is_empty() {
        m.insert("sensor_id".into(), Value::from(r.sensors.join(",")));
    }
    if let Some(o) = &opts.origin {
        m.insert("origin".into(), Value::from(o.as_str()));
    }
    Value::Object(m)
}

/// Records as COF JSON lines (each line ends with `\n`).
pub fn write_lines(records: &[Record], opts: &CofOptions) -> String {
    let mut out = String::with_capacity(records.len() * 160);
    for r in records {
        out.push_str(&to_cof(r, opts).to_string());
        out.push('\n');
    }
    out
}
