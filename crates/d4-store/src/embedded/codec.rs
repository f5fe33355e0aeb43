//! Encodings of the embedded tables: JSON records, sensor keys and the binary queue entry
//! (flag byte, optional 16-byte sensor uuid, data).

use redb::ReadableTable;
use serde::Serialize;
use uuid::Uuid;

use crate::model::*;
use crate::{Result, StoreError};

pub(super) fn be(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(super) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| StoreError::Backend(format!("corrupt record: {e}")))
}

pub(super) fn key_of(uuid: Uuid) -> String {
    uuid.simple().to_string()
}

pub(super) fn encode_entry(e: &QueueEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + e.data.len());
    match e.sensor {
        Some(u) => {
            out.push(1);
            out.extend_from_slice(u.as_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&e.data);
    out
}

pub(super) fn decode_entry(b: &[u8]) -> Result<QueueEntry> {
    match b.split_first() {
        Some((0, data)) => Ok(QueueEntry {
            sensor: None,
            data: data.to_vec(),
        }),
        Some((1, rest)) if rest.len() >= 16 => {
            let (u, data) = rest.split_at(16);
            let uuid = Uuid::from_slice(u).map_err(be)?;
            Ok(QueueEntry {
                sensor: Some(uuid),
                data: data.to_vec(),
            })
        }
        _ => Err(StoreError::Backend("corrupt queue entry".into())),
    }
}

pub(super) fn get_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>> {
    match table.get(key).map_err(be)? {
        Some(g) => Ok(Some(from_json(g.value())?)),
        None => Ok(None),
    }
}

pub(super) fn all_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for item in table.iter().map_err(be)? {
        let (_, v) = item.map_err(be)?;
        out.push(from_json(v.value())?);
    }
    Ok(out)
}

pub(super) fn to_json_string<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}
