//! An external sort of rows by key: rows are gathered up to a memory budget, sorted, and spilled to
//! anonymous temporary files ("runs"); the runs are then merged with a heap. Memory is the budget plus
//! one buffered reader per run, whatever the input's size.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

use super::rows::Row;

/// Rows held in memory before a run is spilled.
pub const DEFAULT_BUDGET: usize = 64 << 20;

/// Rows pushed into any sorter of this process: what reading an input has got to, for the progress
/// lines while it loads (a process reads one input).
pub static ROWS_READ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub struct Sorter {
    budget: usize,
    buffer: Vec<Row>,
    used: usize,
    runs: Vec<File>,
    rows: u64,
}

impl Sorter {
    pub fn new(budget: usize) -> Sorter {
        Sorter {
            budget,
            buffer: Vec::new(),
            used: 0,
            runs: Vec::new(),
            rows: 0,
        }
    }

    pub fn push(&mut self, row: Row) -> io::Result<()> {
        self.used += row.footprint();
        self.rows += 1;
        ROWS_READ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.buffer.push(row);
        if self.used >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Runs written to disk so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> io::Result<()> {
        sort_by_key_name(&mut self.buffer);
        let mut writer = BufWriter::with_capacity(1 << 20, tempfile::tempfile()?);
        for row in self.buffer.drain(..) {
            write_row(&mut writer, &row)?;
        }
        let mut file = writer
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.rewind()?;
        self.runs.push(file);
        self.used = 0;
        // Give the buffer's memory back: the merge needs it less than the next phase does.
        self.buffer = Vec::new();
        Ok(())
    }

    /// All rows, in key order.
    pub fn finish(mut self) -> io::Result<Sorted> {
        if self.runs.is_empty() {
            sort_by_key_name(&mut self.buffer);
            return Ok(Sorted(Inner::Memory(self.buffer.into_iter())));
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        let mut readers: Vec<_> = self
            .runs
            .into_iter()
            .map(|f| BufReader::with_capacity(256 << 10, f))
            .collect();
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (run, reader) in readers.iter_mut().enumerate() {
            if let Some(row) = read_row(reader)? {
                heap.push(Reverse(Head { row, run }));
            }
        }
        Ok(Sorted(Inner::Merge { readers, heap }))
    }
}

fn sort_by_key_name(rows: &mut [Row]) {
    rows.sort_unstable_by(|a, b| a.key.cmp(&b.key));
}

struct Head {
    row: Row,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.row.key, self.run).cmp(&(&other.row.key, other.run))
    }
}

/// The sorted rows.
pub struct Sorted(Inner);

enum Inner {
    Memory(std::vec::IntoIter<Row>),
    Merge {
        readers: Vec<BufReader<File>>,
        heap: BinaryHeap<Reverse<Head>>,
    },
}

impl Iterator for Sorted {
    type Item = io::Result<Row>;

    fn next(&mut self) -> Option<io::Result<Row>> {
        match &mut self.0 {
            Inner::Memory(rows) => rows.next().map(Ok),
            Inner::Merge { readers, heap } => {
                let Reverse(Head { row, run }) = heap.pop()?;
                match read_row(&mut readers[run]) {
                    Ok(Some(next)) => heap.push(Reverse(Head { row: next, run })),
                    Ok(None) => {}
                    Err(error) => return Some(Err(error)),
                }
                Some(Ok(row))
            }
        }
    }
}

// Run format: per row, the key, then each optional field as a tag byte (0 = absent) and its value.
// Strings are a u32 length and bytes; numbers little-endian.

fn write_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u32).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_opt_str(w: &mut impl Write, s: &Option<String>) -> io::Result<()> {
    match s {
        None => w.write_all(&[0]),
        Some(s) => {
            w.write_all(&[1])?;
            write_str(w, s)
        }
    }
}

fn write_opt_bool(w: &mut impl Write, b: Option<bool>) -> io::Result<()> {
    w.write_all(&[match b {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    }])
}

fn write_row(w: &mut impl Write, row: &Row) -> io::Result<()> {
    write_str(w, &row.key)?;
    write_opt_str(w, &row.version_id)?;
    write_opt_bool(w, row.is_latest)?;
    write_opt_bool(w, row.is_delete_marker)?;
    match row.size {
        None => w.write_all(&[0])?,
        Some(size) => {
            w.write_all(&[1])?;
            w.write_all(&size.to_le_bytes())?;
        }
    }
    match row.last_modified {
        None => w.write_all(&[0])?,
        Some(time) => {
            w.write_all(&[1])?;
            w.write_all(&time.to_le_bytes())?;
        }
    }
    write_opt_str(w, &row.storage_class)
}

fn read_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut byte = [0];
    r.read_exact(&mut byte)?;
    Ok(byte[0])
}

fn read_str(r: &mut impl Read) -> io::Result<String> {
    let mut len = [0; 4];
    r.read_exact(&mut len)?;
    let mut bytes = vec![0; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn read_opt_str(r: &mut impl Read) -> io::Result<Option<String>> {
    match read_u8(r)? {
        0 => Ok(None),
        _ => read_str(r).map(Some),
    }
}

fn read_opt_bool(r: &mut impl Read) -> io::Result<Option<bool>> {
    Ok(match read_u8(r)? {
        0 => None,
        1 => Some(false),
        _ => Some(true),
    })
}

fn read_opt_u64(r: &mut impl Read) -> io::Result<Option<u64>> {
    Ok(match read_u8(r)? {
        0 => None,
        _ => {
            let mut bytes = [0; 8];
            r.read_exact(&mut bytes)?;
            Some(u64::from_le_bytes(bytes))
        }
    })
}

fn read_row(r: &mut BufReader<File>) -> io::Result<Option<Row>> {
    use std::io::BufRead;
    if r.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let key = read_str(r)?;
    let version_id = read_opt_str(r)?;
    let is_latest = read_opt_bool(r)?;
    let is_delete_marker = read_opt_bool(r)?;
    let size = read_opt_u64(r)?;
    let last_modified = read_opt_u64(r)?.map(|t| t as i64);
    Ok(Some(Row {
        key,
        version_id,
        is_latest,
        is_delete_marker,
        size,
        last_modified,
        storage_class: read_opt_str(r)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(key: String, n: u64) -> Row {
        Row {
            key,
            version_id: Some(format!("v{n}")),
            is_latest: (!n.is_multiple_of(3)).then_some(n.is_multiple_of(2)),
            is_delete_marker: Some(n.is_multiple_of(5)),
            size: (!n.is_multiple_of(7)).then_some(n * 1000),
            last_modified: (!n.is_multiple_of(4)).then_some(n as i64 * 1000 - 7),
            storage_class: n.is_multiple_of(3).then(|| "GLACIER".into()),
        }
    }

    proptest! {
        // A tiny budget forces many runs: the merge must give what one in-memory sort gives, row for row.
        #[test]
        fn spilled_runs_merge_into_the_same_order_as_an_in_memory_sort(
            keys in proptest::collection::vec("[a-c]{0,3}[é/ ]?", 0..300),
            budget in 1usize..4_000,
        ) {
            let rows: Vec<Row> = keys.into_iter().enumerate().map(|(n, k)| row(k, n as u64)).collect();
            let mut sorter = Sorter::new(budget);
            for r in &rows {
                sorter.push(r.clone()).unwrap();
            }
            let sorted: Vec<Row> = sorter.finish().unwrap().map(Result::unwrap).collect();
            prop_assert_eq!(sorted.len(), rows.len());
            prop_assert!(sorted.windows(2).all(|w| w[0].key <= w[1].key));
            let mut expected = rows.clone();
            expected.sort_by(|a, b| (&a.key, &a.version_id).cmp(&(&b.key, &b.version_id)));
            let mut got = sorted;
            got.sort_by(|a, b| (&a.key, &a.version_id).cmp(&(&b.key, &b.version_id)));
            prop_assert_eq!(got, expected);
        }
    }
}
