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

/// The merged COPY stream of one table.
pub struct MergedReader<R: Read> {
    base: Option<BufReader<R>>,
    delta: Arc<SealedDelta>,
    /// Rows the manifest says the base holds.
    expected: u64,
    table: String,
    /// Negative counts still to cancel, per index into `delta.counts`.
    cancel: Vec<i64>,
    /// Rows filled from the base so far (their indexes).
    filled: Vec<bool>,
    /// The next delta entry to emit after the base.
    next: usize,
    line: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    pub counts: MergeCounts,
    done: bool,
    on_end: Option<Box<dyn FnOnce(MergeCounts) + Send>>,
}

impl<R: Read> MergedReader<R> {
    pub fn new(base: R, delta: Arc<SealedDelta>, expected: u64, table: String) -> Self {
        let cancel = delta.counts.iter().map(|&(_, c)| c.min(0)).collect();
        let filled = vec![false; delta.rows.len()];
        MergedReader {
            base: Some(BufReader::with_capacity(1 << 16, base)),
            delta,
            expected,
            table,
            cancel,
            filled,
            next: 0,
            line: Vec::new(),
            out: Vec::new(),
            pos: 0,
            counts: MergeCounts::default(),
            done: false,
            on_end: None,
        }
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

    /// One base row (without its newline) into `out`, or not.
    fn base_row(&mut self) -> io::Result<()> {
        let line = std::mem::take(&mut self.line);
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        self.counts.base_rows += 1;
        let fields: Vec<&[u8]> = body.split(|&b| b == b'\t').collect();
        let key = self.delta.shape.key_of_line(&fields);
        if let Some(fills) = self.delta.fills.get(key.as_slice()) {
            for &i in fills {
                let Entry::Row { line: row, .. } = &self.delta.rows[i].1 else {
                    continue;
                };
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
                self.filled[i] = true;
                self.counts.delta_rows += 1;
            }
        }
        let keep = if self.delta.truncated {
            false
        } else if self.delta.shape.whole_row() {
            match self.delta.count(&key) {
                Some((i, _)) if self.cancel[i] < 0 => {
                    self.cancel[i] += 1;
                    false
                }
                _ => true,
            }
        } else {
            self.delta.entry(&key).is_none()
        };
        if keep {
            self.out.extend_from_slice(body);
            self.out.push(b'\n');
        } else {
            self.counts.base_replaced += 1;
        }
        self.line = line;
        Ok(())
    }

    /// The next delta row(s) into `out`; false when there are none left.
    fn delta_row(&mut self) -> io::Result<bool> {
        let d = self.delta.clone();
        if d.shape.whole_row() {
            let Some((row, count)) = d.counts.get(self.next) else {
                return Ok(false);
            };
            if self.cancel[self.next] < 0 {
                return Err(self.invalid(format!(
                    "the change stream deletes a row the base does not hold ({row:?} in COPY text); the stream or the base is damaged",
                    row = String::from_utf8_lossy(row)
                )));
            }
            for _ in 0..(*count).max(0) {
                self.out.extend_from_slice(row);
                // Whole-row keys hold the columns pgoutput sends; the
                // generated tail (never filled by changes) is NULL.
                for _ in d.shape.map.len()..d.shape.ncols {
                    self.out.extend_from_slice(b"\t\\N");
                }
                self.out.push(b'\n');
                self.counts.delta_rows += 1;
            }
        } else {
            let Some((key, entry)) = d.rows.get(self.next) else {
                return Ok(false);
            };
            match entry {
                Entry::Gone => {}
                Entry::Row { line, fill: None } => {
                    self.out.extend_from_slice(line);
                    self.out.push(b'\n');
                    self.counts.delta_rows += 1;
                }
                Entry::Row {
                    fill: Some(from), ..
                } => {
                    if !self.filled[self.next] {
                        return Err(self.invalid(format!(
                            "the row with key {} kept values from the base row with key {}, which the base does not hold; the stream or the base is damaged",
                            String::from_utf8_lossy(key),
                            String::from_utf8_lossy(from)
                        )));
                    }
                }
            }
        }
        self.next += 1;
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
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
