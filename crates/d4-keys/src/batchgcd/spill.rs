//! Where the levels of a product tree live: in memory, or spilled to a temporary directory
//! when the estimated tree would not fit under the memory limit.
//!
//! On-disk format of a spilled level (one file per level, `level-<k>.bin`, removed with the
//! directory): for each integer in order, its byte length as a little-endian `u64`, then its
//! magnitude as that many bytes, least significant first. The integers are never negative.
//! GMP's own raw format (`mpz_out_raw`) has a 32-bit length and breaks past 2³¹ bytes, which
//! is why the length here is 64-bit. The same framing serves the stored corpus product of
//! the incremental mode (`write_integers` / `read_integers`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rug::integer::Order;
use rug::Integer;

use super::BatchGcdError;

/// Bytes an integer takes in memory: its limbs plus GMP's header.
pub(crate) fn approx_bytes(x: &Integer) -> u64 {
    x.significant_digits::<u64>() as u64 * 8 + 16
}

/// Writes integers with 64-bit length prefixes (see the module doc).
pub fn write_integers<W: Write>(mut w: W, xs: &[Integer]) -> Result<(), BatchGcdError> {
    w.write_all(&(xs.len() as u64).to_le_bytes())?;
    for x in xs {
        let bytes = x.to_digits::<u8>(Order::Lsf);
        w.write_all(&(bytes.len() as u64).to_le_bytes())?;
        w.write_all(&bytes)?;
    }
    w.flush()?;
    Ok(())
}

/// Reads integers written by [`write_integers`]. A truncated or inconsistent file is an error.
pub fn read_integers<R: Read>(mut r: R) -> Result<Vec<Integer>, BatchGcdError> {
    let count = read_u64(&mut r)?;
    let mut out = Vec::with_capacity(usize::try_from(count.min(1 << 24)).unwrap_or(0));
    let mut buf = Vec::new();
    for _ in 0..count {
        let len = usize::try_from(read_u64(&mut r)?)
            .map_err(|_| BatchGcdError::BadSpill("length does not fit in memory"))?;
        buf.clear();
        // Read through `take` so a corrupt length cannot allocate more than the file holds.
        let got = (&mut r).take(len as u64).read_to_end(&mut buf)?;
        if got != len {
            return Err(BatchGcdError::BadSpill("truncated integer"));
        }
        out.push(Integer::from_digits(&buf, Order::Lsf));
    }
    Ok(out)
}

fn read_u64<R: Read>(r: &mut R) -> Result<u64, BatchGcdError> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            BatchGcdError::BadSpill("truncated length")
        } else {
            BatchGcdError::Io(e)
        }
    })?;
    Ok(u64::from_le_bytes(b))
}

enum Level {
    Mem(Vec<Integer>),
    Disk(PathBuf),
    /// Not kept: rebuilt from the leaves on the way down (the cheap bottom levels).
    Rebuild,
    Taken,
}

/// The levels above the leaves of a product tree, each in memory or on disk.
pub(crate) struct LevelStore {
    levels: Vec<Level>,
    limit: Option<u64>,
    /// Bytes kept free for the working set of the remainder tree.
    reserve: u64,
    in_memory: u64,
    dir: Option<tempfile::TempDir>,
    spill_parent: Option<PathBuf>,
    pub(crate) spilled_levels: usize,
    pub(crate) spilled_bytes: u64,
}

impl LevelStore {
    pub(crate) fn new(limit: Option<u64>, reserve: u64, spill_parent: Option<PathBuf>) -> Self {
        LevelStore {
            levels: Vec::new(),
            limit,
            reserve,
            in_memory: 0,
            dir: None,
            spill_parent,
            spilled_levels: 0,
            spilled_bytes: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.levels.len()
    }

    /// Records a level that is not kept (the tree rebuilds it from the leaves).
    pub(crate) fn push_rebuild(&mut self) {
        self.levels.push(Level::Rebuild);
    }

    pub(crate) fn is_rebuild(&self, index: usize) -> bool {
        matches!(self.levels.get(index), Some(Level::Rebuild))
    }

    /// Keeps the level in memory if it fits under the limit (with the reserve), else writes it.
    pub(crate) fn push(&mut self, level: Vec<Integer>) -> Result<(), BatchGcdError> {
        let bytes: u64 = level.iter().map(approx_bytes).sum();
        let fits = match self.limit {
            None => true,
            Some(limit) => self.in_memory + bytes + self.reserve <= limit,
        };
        if fits {
            self.in_memory += bytes;
            self.levels.push(Level::Mem(level));
            return Ok(());
        }
        let dir = match &self.dir {
            Some(d) => d,
            None => {
                let d = match &self.spill_parent {
                    Some(p) => tempfile::Builder::new()
                        .prefix("d4-batchgcd-")
                        .tempdir_in(p)?,
                    None => tempfile::Builder::new().prefix("d4-batchgcd-").tempdir()?,
                };
                self.dir.insert(d)
            }
        };
        let path = dir
            .path()
            .join(format!("level-{}.bin", self.levels.len() + 1));
        write_level(&path, &level)?;
        self.spilled_levels += 1;
        self.spilled_bytes += bytes;
        self.levels.push(Level::Disk(path));
        Ok(())
    }

    /// Hands out a level (index 0 is the first level above the leaves) once, from memory or disk.
    pub(crate) fn take(&mut self, index: usize) -> Result<Vec<Integer>, BatchGcdError> {
        let slot = self
            .levels
            .get_mut(index)
            .ok_or(BatchGcdError::BadSpill("no such level"))?;
        match std::mem::replace(slot, Level::Taken) {
            Level::Mem(v) => Ok(v),
            Level::Disk(path) => {
                let v = read_integers(BufReader::with_capacity(1 << 20, File::open(&path)?))?;
                std::fs::remove_file(&path)?;
                Ok(v)
            }
            Level::Taken => Err(BatchGcdError::BadSpill("level read twice")),
            Level::Rebuild => Err(BatchGcdError::BadSpill("level not kept")),
        }
    }
}

fn write_level(path: &Path, level: &[Integer]) -> Result<(), BatchGcdError> {
    let f = File::create(path)?;
    write_integers(BufWriter::with_capacity(1 << 20, f), level)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn integers_round_trip_with_64_bit_lengths() {
        let xs = vec![
            Integer::from(0),
            Integer::from(1),
            Integer::from(255),
            Integer::from(256),
            Integer::from(Integer::u_pow_u(3, 1000)),
        ];
        let mut buf = Vec::new();
        write_integers(&mut buf, &xs).unwrap();
        // count, then (len, bytes) per integer: 0 has no bytes, 256 has two.
        assert_eq!(&buf[..8], &5u64.to_le_bytes());
        assert_eq!(&buf[8..16], &0u64.to_le_bytes());
        assert_eq!(&buf[16..24], &1u64.to_le_bytes());
        assert_eq!(buf[24], 1);
        assert_eq!(read_integers(&buf[..]).unwrap(), xs);
        assert!(matches!(
            read_integers(&buf[..buf.len() - 1]),
            Err(BatchGcdError::BadSpill(_))
        ));
    }

    #[test]
    fn a_zero_limit_spills_every_level_and_reads_it_back() {
        let mut s = LevelStore::new(Some(0), 0, None);
        s.push(vec![Integer::from(6), Integer::from(35)]).unwrap();
        s.push(vec![Integer::from(210)]).unwrap();
        assert_eq!(s.spilled_levels, 2);
        assert_eq!(s.take(1).unwrap(), vec![Integer::from(210)]);
        assert_eq!(
            s.take(0).unwrap(),
            vec![Integer::from(6), Integer::from(35)]
        );
        assert!(s.take(0).is_err());
    }
}
