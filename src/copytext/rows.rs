//! COPY text as rows and fields, for the readers that take a stream a row
//! at a time: the snapshot's writer (row counts and object cuts) and its
//! leak check, and `verify`. Rows end at a raw `\n` and fields are split
//! by raw `\t` (both are escaped inside values), so rows and fields are
//! found without decoding; a field's value is decoded by
//! [`escape::decoded`](super::escape::decoded).
//!
//! Row ends are found with one `memchr` pass over each piece (vectorised,
//! and faster here than `scan`'s masks, which also mark tabs a row-at-a-time
//! reader does not need); the fields of a row with `scan`'s separator probe,
//! which is quickest for the fields at the front. The restore filter uses
//! `scan` directly: it splits a block of rows at a time into the fields it
//! needs.

use super::scan::next_separator_near;

/// The rows that end in `data`: its raw newlines.
#[inline]
pub fn count(data: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', data).count() as u64
}

/// The position of the newline that ends the first row in `data`; `None`
/// if `data` holds no row end.
#[inline]
pub fn first_end(data: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', data)
}

/// Whether `data` ends at a row boundary (its last byte ends a row).
#[inline]
pub fn ends_row(data: &[u8]) -> bool {
    data.last() == Some(&b'\n')
}

/// One complete row of COPY text.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    /// The row with its newline (which ends every field search).
    line: &'a [u8],
}

impl<'a> Row<'a> {
    /// The row's bytes, without its newline.
    pub fn bytes(&self) -> &'a [u8] {
        &self.line[..self.line.len() - 1]
    }

    /// An empty line: one empty field, or no field in a zero-column table.
    pub fn is_empty(&self) -> bool {
        self.line.len() == 1
    }

    /// The raw fields (still escaped, `\N` for NULL), in order.
    pub fn fields(&self) -> FieldIter<'a> {
        FieldIter {
            line: self.line,
            pos: 0,
        }
    }

    /// Raw field `n` (from 0); `None` if the row has fewer fields.
    #[inline]
    pub fn field(&self, n: usize) -> Option<&'a [u8]> {
        self.fields().nth(n)
    }

    /// How many fields the row has (an empty line has one, empty): its raw
    /// tabs plus one, counted in one `memchr` pass.
    pub fn field_count(&self) -> usize {
        memchr::memchr_iter(b'\t', self.bytes()).count() + 1
    }
}

/// The raw fields of a [`Row`].
pub struct FieldIter<'a> {
    line: &'a [u8],
    /// Start of the next field; past the newline when done.
    pos: usize,
}

impl<'a> Iterator for FieldIter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.line.len() {
            return None;
        }
        // The line ends with its newline, so a separator is always found.
        let sep = next_separator_near(self.line, self.pos).unwrap_or(self.line.len() - 1);
        let field = &self.line[self.pos..sep];
        self.pos = if self.line[sep] == b'\n' {
            self.line.len()
        } else {
            sep + 1
        };
        Some(field)
    }
}

/// A COPY text stream fed in pieces of any size, cut into rows. A row that
/// spans pieces is put together once (the only copy; its buffer is reused);
/// the others are handed on where they lie. Allocates nothing per row.
#[derive(Debug, Default)]
pub struct Rows {
    /// The start of a row whose newline has not been fed yet.
    carry: Vec<u8>,
    rows: u64,
}

impl Rows {
    pub fn new() -> Rows {
        Rows::default()
    }

    /// Feeds the next piece of the stream, calling `each` with every row it
    /// completes, in order.
    pub fn feed(&mut self, data: &[u8], mut each: impl FnMut(Row<'_>)) {
        let mut ends = memchr::memchr_iter(b'\n', data);
        let mut start = 0;
        if !self.carry.is_empty() {
            let Some(nl) = ends.next() else {
                self.carry.extend_from_slice(data);
                return;
            };
            self.carry.extend_from_slice(&data[..=nl]);
            self.rows += 1;
            each(Row { line: &self.carry });
            self.carry.clear();
            start = nl + 1;
        }
        for nl in ends {
            self.rows += 1;
            each(Row {
                line: &data[start..=nl],
            });
            start = nl + 1;
        }
        self.carry.extend_from_slice(&data[start..]);
    }

    /// Rows completed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether what was fed ends at a row boundary (true before any input).
    pub fn at_row_start(&self) -> bool {
        self.carry.is_empty()
    }
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
