//! Pass B's table source: the base table's COPY stream merged with the
//! delta, as one COPY stream of the table at the point. The filter reads it
//! exactly as it reads a snapshot's table.
//!
//! Base rows come first, in their order: one whose key the delta holds is
//! left out (the delta has its version at the point, or it is gone), every
//! row of a truncated table is left out, and a delta row that keeps
//! unchanged TOAST values from a base row is completed from it and emitted
//! there. Then the delta's remaining rows. The base rows are counted
//! against the manifest, as a snapshot restore counts them.

use super::delta::{Entry, SealedDelta, UNCHANGED};
use super::store::Key;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

/// Bytes gathered per read of the merged stream.
const CHUNK: usize = 1 << 16;

/// What a merged stream held, once read to the end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MergeCounts {
    /// Base rows read.
    pub base_rows: u64,
    /// Base rows left out (replaced, deleted or truncated).
    pub base_replaced: u64,
    /// Rows emitted from the delta.
    pub delta_rows: u64,
}

/// Delta entries read from the store and not yet emitted.
enum Pending {
    Rows(std::vec::IntoIter<super::delta::Walked>),
    Counts(std::vec::IntoIter<super::delta::Counted>),
}

/// The merged COPY stream of one table.
pub struct MergedReader<R: Read> {
    base: Option<BufReader<R>>,
    delta: Arc<SealedDelta>,
    /// Rows the manifest says the base holds.
    expected: u64,
    table: String,
    /// Whole-row tables: negative counts still to cancel, per stored key.
    cancel: HashMap<Key, i64>,
    /// Rows completed from their base row in this pass (stored keys).
    filled: HashSet<Key>,
    /// The walk of the delta after the base: the last stored key read.
    after: Option<Vec<u8>>,
    pending: Option<Pending>,
    line: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    pub counts: MergeCounts,
    /// Rows emitted so far, and how many came before the first row of the
    /// delta walk (`u64::MAX` until the base ends): the filter counts
    /// apart what it drops after it.
    emitted: u64,
    boundary: Arc<std::sync::atomic::AtomicU64>,
    done: bool,
    on_end: Option<Box<dyn FnOnce(MergeCounts) + Send>>,
}

impl<R: Read> MergedReader<R> {
    pub fn new(base: R, delta: Arc<SealedDelta>, expected: u64, table: String) -> Self {
        MergedReader {
            base: Some(BufReader::with_capacity(1 << 16, base)),
            delta,
            expected,
            table,
            cancel: HashMap::new(),
            filled: HashSet::new(),
            after: None,
            pending: None,
            line: Vec::new(),
            out: Vec::new(),
            pos: 0,
            counts: MergeCounts::default(),
            emitted: 0,
            boundary: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
            done: false,
            on_end: None,
        }
    }

    /// How many rows come before the first the changes alone put there
    /// (set when the base ends). Rows completed from their base row (an
    /// update that kept unchanged TOAST values) are emitted among the base
    /// rows and counted with them.
    pub fn boundary(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.boundary.clone()
    }

    /// Called once with the counts when the stream has been read whole.
    pub fn on_end(mut self, f: impl FnOnce(MergeCounts) + Send + 'static) -> Self {
        self.on_end = Some(Box::new(f));
        self
    }

    fn invalid(&self, message: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {message}", self.table),
        )
    }

    /// One base row (in `self.line`) into `out`, or not.
    fn base_row(&mut self) -> io::Result<()> {
        let line = std::mem::take(&mut self.line);
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        self.counts.base_rows += 1;
        let fields: Vec<&[u8]> = body.split(|&b| b == b'\t').collect();
        let key = self.delta.shape.key_of_line(&fields);
        let keep = if self.delta.shape.whole_row() {
            if self.delta.truncated {
                false
            } else {
                let (k, c) = self.delta.count(&key)?;
                let left = self.cancel.entry(k).or_insert(c.min(0));
                if *left < 0 {
                    *left += 1;
                    false
                } else {
                    true
                }
            }
        } else {
            for (row_key, row) in self.delta.fills(&key)? {
                for (n, f) in row.split(|&b| b == b'\t').enumerate() {
                    if n > 0 {
                        self.out.push(b'\t');
                    }
                    if f == UNCHANGED {
                        self.out
                            .extend_from_slice(fields.get(n).copied().unwrap_or(b"\\N"));
                    } else {
                        self.out.extend_from_slice(f);
                    }
                }
                self.out.push(b'\n');
                self.filled.insert(row_key);
                self.counts.delta_rows += 1;
                self.emitted += 1;
            }
            !self.delta.truncated && !self.delta.holds(&key)?
        };
        if keep {
            self.out.extend_from_slice(body);
            self.out.push(b'\n');
            self.emitted += 1;
        } else {
            self.counts.base_replaced += 1;
        }
        self.line = line;
        Ok(())
    }

    /// The next delta entry into `out`; false when there are none left.
    fn delta_row(&mut self) -> io::Result<bool> {
        if self.pending.as_ref().is_none_or(|p| match p {
            Pending::Rows(i) => i.len() == 0,
            Pending::Counts(i) => i.len() == 0,
        }) {
            let after = self.after.as_deref();
            let next = if self.delta.shape.whole_row() {
                Pending::Counts(self.delta.counts_after(after)?.into_iter())
            } else {
                Pending::Rows(self.delta.rows_after(after)?.into_iter())
            };
            self.pending = Some(next);
        }
        let ncols = self.delta.shape.ncols;
        let sent = self.delta.shape.map.len();
        match self.pending.as_mut() {
            Some(Pending::Counts(i)) => {
                let Some((k, count, row)) = i.next() else {
                    return Ok(false);
                };
                if count < 0 {
                    let left = Key::try_from(k.as_slice())
                        .ok()
                        .and_then(|k| self.cancel.get(&k).copied())
                        .unwrap_or(count);
                    if left < 0 {
                        return Err(self.invalid(format!(
                            "the change stream deletes a row the base does not hold ({}, in COPY text); the stream or the base is damaged",
                            String::from_utf8_lossy(&row)
                        )));
                    }
                }
                for _ in 0..count.max(0) {
                    self.out.extend_from_slice(&row);
                    // Whole-row keys hold the columns pgoutput sends; the
                    // generated tail (never filled by changes) is NULL.
                    for _ in sent..ncols {
                        self.out.extend_from_slice(b"\t\\N");
                    }
                    self.out.push(b'\n');
                    self.counts.delta_rows += 1;
                }
                self.after = Some(k);
            }
            Some(Pending::Rows(i)) => {
                let Some((k, key, entry)) = i.next() else {
                    return Ok(false);
                };
                match entry {
                    Entry::Gone => {}
                    Entry::Row { line, fill: None } => {
                        self.out.extend_from_slice(&line);
                        self.out.push(b'\n');
                        self.counts.delta_rows += 1;
                    }
                    Entry::Row {
                        fill: Some(from), ..
                    } => {
                        let filled =
                            Key::try_from(k.as_slice()).is_ok_and(|k| self.filled.contains(&k));
                        if !filled {
                            return Err(self.invalid(format!(
                                "the row with key {} kept values from the base row with key {}, which the base does not hold; the stream or the base is damaged",
                                String::from_utf8_lossy(&key),
                                String::from_utf8_lossy(&from)
                            )));
                        }
                    }
                }
                self.after = Some(k);
            }
            None => return Ok(false),
        }
        Ok(true)
    }

    fn refill(&mut self) -> io::Result<bool> {
        self.out.clear();
        self.pos = 0;
        while self.out.len() < CHUNK && !self.done {
            if let Some(base) = self.base.as_mut() {
                self.line.clear();
                let n = base.read_until(b'\n', &mut self.line)?;
                if n > 0 {
                    if self.line.last() != Some(&b'\n') {
                        return Err(self.invalid("the base's COPY stream ends inside a row".into()));
                    }
                    self.base_row()?;
                    continue;
                }
                self.base = None;
                self.boundary
                    .store(self.emitted, std::sync::atomic::Ordering::Release);
                if self.counts.base_rows != self.expected {
                    return Err(self.invalid(format!(
                        "the base manifest says {} rows but its objects hold {}",
                        self.expected, self.counts.base_rows
                    )));
                }
            }
            if !self.delta_row()? {
                self.done = true;
                if let Some(f) = self.on_end.take() {
                    f(self.counts);
                }
            }
        }
        Ok(!self.out.is_empty())
    }
}

impl<R: Read> Read for MergedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.out.len() && !self.refill()? {
            return Ok(0);
        }
        Ok(serve(&self.out, &mut self.pos, buf))
    }
}

/// Copies what `buf` takes of `out` from `pos` on, and moves `pos`.
fn serve(out: &[u8], pos: &mut usize, buf: &mut [u8]) -> usize {
    let n = buf.len().min(out.len() - *pos);
    buf[..n].copy_from_slice(&out[*pos..*pos + n]);
    *pos += n;
    n
}

/// A table's COPY stream with the columns captured DDL appended (`ALTER
/// TABLE … ADD COLUMN`, replayed at the point): a row stored before they
/// were added has fewer fields and takes the rest from `fills`, the value
/// PostgreSQL itself gives such rows (the column's `attmissingval`, or
/// NULL). A row with more fields than the table has is an error.
pub struct Padded<R: Read> {
    inner: BufReader<R>,
    /// The fields of the appended columns, in order.
    fills: Vec<Vec<u8>>,
    /// Columns as of the point.
    ncols: usize,
    line: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
}

impl<R: Read> Padded<R> {
    pub fn new(inner: R, fills: Vec<Vec<u8>>, ncols: usize) -> Self {
        Padded {
            inner: BufReader::with_capacity(CHUNK, inner),
            fills,
            ncols,
            line: Vec::new(),
            out: Vec::new(),
            pos: 0,
        }
    }

    fn refill(&mut self) -> io::Result<bool> {
        self.out.clear();
        self.pos = 0;
        while self.out.len() < CHUNK {
            self.line.clear();
            if self.inner.read_until(b'\n', &mut self.line)? == 0 {
                break;
            }
            let body = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let have = 1 + memchr::memchr_iter(b'\t', body).count();
            let first = self.ncols.saturating_sub(self.fills.len());
            if have > self.ncols || have < first {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a row has {have} fields where the table has {} columns ({first} before the columns added after the base)",
                        self.ncols
                    ),
                ));
            }
            self.out.extend_from_slice(body);
            for f in &self.fills[have - first..] {
                self.out.push(b'\t');
                self.out.extend_from_slice(f);
            }
            self.out.push(b'\n');
        }
        Ok(!self.out.is_empty())
    }
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.out.len() && !self.refill()? {
            return Ok(0);
        }
        Ok(serve(&self.out, &mut self.pos, buf))
    }
}
