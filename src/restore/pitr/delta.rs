//! The delta of a point-in-time restore (pass A): for every table the
//! replayed transactions touched, each touched row's version at the point,
//! keyed by its replica identity. Pass B (`merge`) streams the base through
//! it: a base row whose key the delta holds is replaced (or gone), the
//! delta's other rows are added. So the rows the filter sees are exactly the
//! table at the point, and a restore to a point is filter(state at the
//! point) — the same as a snapshot taken then (design §2.7).
//!
//! Rows are kept as COPY text lines in the base's column order (fields
//! escaped as COPY writes them), so a delta row and a base row of the same
//! row are the same bytes, and the filter reads both the same way.
//!
//! Tables with `REPLICA IDENTITY FULL` (or no key) have no key that tells
//! two equal rows apart: their delta is a multiset of whole rows with a
//! count each (+1 insert, −1 delete, an update both).
//!
//! The delta lives in the restore's sealed temporary store
//! ([`super::store`]), so memory does not grow with the window.

use super::store::{DeltaDb, KEY_LEN, Key, StoreError};
use crate::repo::changes::codec::{OldKind, Value};
use crate::repo::changes::manifest::RelationDesc;
use crate::repo::manifest::TableEntry;
use std::collections::HashSet;
use std::sync::Arc;

/// A change the delta cannot take; names what and why.
#[derive(Debug, thiserror::Error)]
#[error("{table}: {message}")]
pub struct DeltaError {
    pub table: String,
    pub message: String,
}

/// Kinds of stored keys: a key-identified row, a whole row's count, an
/// entry of the index from a base key to the rows that take unchanged
/// values from that base row.
const ROW: u8 = b'r';
const COUNT: u8 = b'c';
const FILL: u8 = b'f';

/// Entries read at once when a table's delta is walked.
const SCAN: usize = 1024;

/// How a relation's changes map onto its base table's COPY columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// `schema.table`, for messages.
    pub table: String,
    /// Columns in the base's COPY stream (a generated tail included).
    pub ncols: usize,
    /// For each column pgoutput sends, its index in the COPY stream.
    pub map: Vec<usize>,
    /// Replica identity columns, as indexes into the COPY stream; empty
    /// for a table keyed by its whole row.
    pub key: Vec<usize>,
}

impl Shape {
    /// Matches a relation as pgoutput described it to the base table.
    ///
    /// # Errors
    /// A column of the relation the base does not have, or a different
    /// number of columns: the table changed shape between the base and the
    /// point, which capture records as a gap (so this is a damaged or
    /// foreign stream).
    pub fn of(rel: &RelationDesc, entry: &TableEntry) -> Result<Shape, DeltaError> {
        let table = entry.qualified();
        let generated = entry.generated_tail();
        let plain = entry.columns.len() - generated;
        let err = |message: String| DeltaError {
            table: table.clone(),
            message,
        };
        if rel.columns.len() != plain {
            return Err(err(format!(
                "the change stream has {} columns ({}) where the base has {plain} ({}): the table changed shape without a recorded gap",
                rel.columns.len(),
                rel.columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                entry.columns[..plain]
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )));
        }
        let mut map = Vec::with_capacity(rel.columns.len());
        for c in &rel.columns {
            let i = entry.columns[..plain]
                .iter()
                .position(|b| b.name == c.name)
                .ok_or_else(|| {
                    err(format!(
                        "column {} of the change stream is not in the base: the table changed shape without a recorded gap",
                        c.name
                    ))
                })?;
            map.push(i);
        }
        let full = rel.replident == "f";
        let key = if full {
            Vec::new()
        } else {
            rel.columns
                .iter()
                .zip(&map)
                .filter(|(c, _)| c.key)
                .map(|(_, &i)| i)
                .collect()
        };
        Ok(Shape {
            table,
            ncols: entry.columns.len(),
            map,
            key,
        })
    }

    /// `next` is this shape with columns appended (captured `ADD COLUMN`):
    /// same key, the same columns first.
    pub fn extended_by(&self, next: &Shape) -> bool {
        !self.whole_row()
            && next.key == self.key
            && next.ncols > self.ncols
            && next.map.len() > self.map.len()
            && next.map.starts_with(&self.map)
    }

    /// Keyed by its whole row (REPLICA IDENTITY FULL, or no key at all).
    pub fn whole_row(&self) -> bool {
        self.key.is_empty()
    }

    /// The key of a COPY line of the base, as the delta keys it.
    pub fn key_of_line(&self, fields: &[&[u8]]) -> Vec<u8> {
        let cols: &[usize] = if self.whole_row() {
            &self.map
        } else {
            &self.key
        };
        join(
            cols.iter()
                .map(|&i| fields.get(i).copied().unwrap_or(b"\\N")),
        )
    }
}

fn join<'a>(fields: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        out.extend_from_slice(f);
    }
    out
}

/// A row's version at the point (key-identified tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Deleted (or its key changed away).
    Gone,
    /// Its COPY line. With `fill`, some fields are `\u` (an unchanged
    /// TOAST value pgoutput did not send) and come from the base row with
    /// that key.
    Row {
        line: Vec<u8>,
        fill: Option<Vec<u8>>,
    },
}

/// An entry as stored: the row's key (for messages) and its version.
fn encode(key: &[u8], e: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + key.len());
    let put = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    match e {
        Entry::Gone => {
            out.push(0);
            put(&mut out, key);
        }
        Entry::Row { line, fill } => {
            out.push(1);
            put(&mut out, key);
            match fill {
                None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
                Some(f) => put(&mut out, f),
            }
            out.extend_from_slice(line);
        }
    }
    out
}

/// The row's key and version; `None` for bytes this module did not write.
pub(super) fn decode(v: &[u8]) -> Option<(Vec<u8>, Entry)> {
    fn take(v: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
        let (n, rest) = v.split_at_checked(4)?;
        let n = u32::from_le_bytes(n.try_into().ok()?);
        if n == u32::MAX {
            return Some((None, rest));
        }
        let (b, rest) = rest.split_at_checked(n as usize)?;
        Some((Some(b), rest))
    }
    let (&tag, rest) = v.split_first()?;
    let (key, rest) = take(rest)?;
    let key = key?.to_vec();
    match tag {
        0 => Some((key, Entry::Gone)),
        1 => {
            let (fill, line) = take(rest)?;
            Some((
                key,
                Entry::Row {
                    line: line.to_vec(),
                    fill: fill.map(<[u8]>::to_vec),
                },
            ))
        }
        _ => None,
    }
}

fn count_of(v: &[u8]) -> Option<(i64, &[u8])> {
    let (c, row) = v.split_at_checked(8)?;
    Some((i64::from_le_bytes(c.try_into().ok()?), row))
}

fn damaged(table: &str) -> DeltaError {
    DeltaError {
        table: table.to_string(),
        message: "the replay's temporary store returned a value it did not write".into(),
    }
}

/// One table's delta.
#[derive(Debug)]
pub struct TableDelta {
    pub shape: Shape,
    /// A TRUNCATE was replayed: no base row survives.
    pub truncated: bool,
    /// Changes replayed into this table.
    pub changes: u64,
    db: Arc<DeltaDb>,
    table: u32,
    /// Base keys (their stored hashes) some row takes unchanged values from.
    fill_bases: HashSet<Key>,
}

/// The field that marks an unchanged TOAST value.
pub const UNCHANGED: &[u8] = b"\\u";

impl TableDelta {
    /// The delta of table `table` (its manifest index), kept in `db`.
    pub fn new(shape: Shape, db: Arc<DeltaDb>, table: u32) -> TableDelta {
        TableDelta {
            shape,
            truncated: false,
            changes: 0,
            db,
            table,
            fill_bases: HashSet::new(),
        }
    }

    fn err(&self, message: impl Into<String>) -> DeltaError {
        DeltaError {
            table: self.shape.table.clone(),
            message: message.into(),
        }
    }

    fn store(&self) -> impl Fn(StoreError) -> DeltaError + '_ {
        |e| self.err(e.to_string())
    }

    /// The COPY fields of a change's columns, in base order (`\N` for the
    /// generated tail, which pgoutput does not send).
    fn fields(&self, values: &[Value]) -> Result<Vec<Vec<u8>>, DeltaError> {
        if values.len() != self.shape.map.len() {
            return Err(self.err(format!(
                "a change has {} columns where the relation has {}",
                values.len(),
                self.shape.map.len()
            )));
        }
        let mut out = vec![b"\\N".to_vec(); self.shape.ncols];
        for (v, &i) in values.iter().zip(&self.shape.map) {
            out[i] = match v {
                Value::Null => b"\\N".to_vec(),
                Value::Unchanged => UNCHANGED.to_vec(),
                Value::Text(t) => crate::copytext::escape::encode_copy_text(t),
            };
        }
        Ok(out)
    }

    fn key(&self, fields: &[Vec<u8>]) -> Result<Vec<u8>, DeltaError> {
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        let key = self.shape.key_of_line(&refs);
        let cols: &[usize] = if self.shape.whole_row() {
            &self.shape.map
        } else {
            &self.shape.key
        };
        if cols.iter().any(|&i| fields[i] == UNCHANGED) {
            return Err(self.err(
                "a key column's value was not sent (an unchanged TOAST value in the replica identity)",
            ));
        }
        Ok(key)
    }

    fn get_row(&self, key: &[u8]) -> Result<Option<Entry>, DeltaError> {
        let stored = self
            .db
            .get(&self.db.key(self.table, ROW, key))
            .map_err(self.store())?;
        stored
            .map(|v| {
                decode(&v)
                    .map(|(_, e)| e)
                    .ok_or_else(|| damaged(&self.shape.table))
            })
            .transpose()
    }

    fn put_row(&mut self, key: &[u8], e: &Entry) -> Result<(), DeltaError> {
        let row_key = self.db.key(self.table, ROW, key);
        if let Entry::Row {
            fill: Some(from), ..
        } = e
        {
            let base = self.db.key(self.table, FILL, from);
            let mut index = base.to_vec();
            index.extend_from_slice(&row_key);
            self.db.put(&index, &[]).map_err(self.store())?;
            self.fill_bases.insert(base);
        }
        self.db.put(&row_key, &encode(key, e)).map_err(self.store())
    }

    fn add_count(&self, row: &[u8], by: i64) -> Result<(), DeltaError> {
        let k = self.db.key(self.table, COUNT, row);
        let now = match self.db.get(&k).map_err(self.store())? {
            None => 0,
            Some(v) => count_of(&v).ok_or_else(|| damaged(&self.shape.table))?.0,
        };
        let mut v = (now + by).to_le_bytes().to_vec();
        v.extend_from_slice(row);
        self.db.put(&k, &v).map_err(self.store())
    }

    /// An INSERT.
    ///
    /// # Errors
    /// A change the table's shape cannot take; the store failed.
    pub fn insert(&mut self, new: &[Value]) -> Result<(), DeltaError> {
        self.changes += 1;
        let fields = self.fields(new)?;
        if fields.iter().any(|f| f == UNCHANGED) {
            return Err(self.err("an inserted row has a value marked unchanged"));
        }
        let key = self.key(&fields)?;
        if self.shape.whole_row() {
            self.add_count(&key, 1)
        } else {
            let line = join(fields.iter().map(Vec::as_slice));
            self.put_row(&key, &Entry::Row { line, fill: None })
        }
    }

    /// A DELETE of the row with this old key (or whole old row).
    ///
    /// # Errors
    /// As [`TableDelta::insert`].
    pub fn delete(&mut self, kind: OldKind, old: &[Value]) -> Result<(), DeltaError> {
        self.changes += 1;
        let fields = self.fields(old)?;
        let key = self.key(&fields)?;
        if self.shape.whole_row() {
            if kind != OldKind::Full {
                return Err(
                    self.err("a DELETE without the old row, on a table keyed by its whole row")
                );
            }
            self.add_count(&key, -1)
        } else {
            self.put_row(&key, &Entry::Gone)
        }
    }

    /// An UPDATE: `old` when pgoutput sent the old key (it changed) or the
    /// old row (REPLICA IDENTITY FULL).
    ///
    /// # Errors
    /// As [`TableDelta::insert`].
    pub fn update(
        &mut self,
        old: Option<(OldKind, &[Value])>,
        new: &[Value],
    ) -> Result<(), DeltaError> {
        self.changes += 1;
        let mut fields = self.fields(new)?;
        if self.shape.whole_row() {
            let Some((OldKind::Full, old)) = old else {
                return Err(
                    self.err("an UPDATE without the old row, on a table keyed by its whole row")
                );
            };
            let old_fields = self.fields(old)?;
            // FULL sends the old row whole (detoasted): unchanged values
            // come from it.
            for (f, o) in fields.iter_mut().zip(&old_fields) {
                if f == UNCHANGED {
                    f.clone_from(o);
                }
            }
            self.add_count(&self.key(&old_fields)?, -1)?;
            return self.add_count(&self.key(&fields)?, 1);
        }
        let new_key = self.key(&fields)?;
        let old_key = match old {
            Some((_, old)) => {
                let old_fields = self.fields(old)?;
                self.key(&old_fields)?
            }
            None => new_key.clone(),
        };
        let mut fill = None;
        if fields.iter().any(|f| f == UNCHANGED) {
            match self.get_row(&old_key)? {
                Some(Entry::Row { line, fill: before }) => {
                    for (f, p) in fields.iter_mut().zip(line.split(|&b| b == b'\t')) {
                        if f == UNCHANGED {
                            *f = p.to_vec();
                        }
                    }
                    fill = before;
                }
                Some(Entry::Gone) => {
                    return Err(self.err(
                        "an UPDATE of a deleted row keeps values that were not sent (unchanged TOAST)",
                    ));
                }
                None if self.truncated => {
                    return Err(self.err(
                        "an UPDATE after a TRUNCATE keeps values that were not sent (unchanged TOAST)",
                    ));
                }
                None => fill = Some(old_key.clone()),
            }
            if !fields.iter().any(|f| f == UNCHANGED) {
                fill = None;
            }
        }
        if old_key != new_key {
            self.put_row(&old_key, &Entry::Gone)?;
        }
        let line = join(fields.iter().map(Vec::as_slice));
        self.put_row(&new_key, &Entry::Row { line, fill })
    }

    /// A TRUNCATE: every row so far is gone, the base's included.
    ///
    /// # Errors
    /// The store failed.
    pub fn truncate(&mut self) -> Result<(), DeltaError> {
        self.changes += 1;
        self.truncated = true;
        self.fill_bases.clear();
        for kind in [ROW, COUNT, FILL] {
            self.db.delete_all(self.table, kind).map_err(self.store())?;
        }
        Ok(())
    }

    /// Done replaying: the delta in the form pass B reads.
    pub fn seal(self) -> SealedDelta {
        SealedDelta {
            shape: self.shape,
            truncated: self.truncated,
            changes: self.changes,
            db: self.db,
            table: self.table,
            fill_bases: self.fill_bases,
        }
    }
}

/// A table's delta, read-only, for any number of passes.
#[derive(Debug)]
pub struct SealedDelta {
    pub shape: Shape,
    pub truncated: bool,
    pub changes: u64,
    db: Arc<DeltaDb>,
    table: u32,
    fill_bases: HashSet<Key>,
}

/// A key-identified row of the delta, as walked: its stored key, its key
/// and its version.
pub type Walked = (Vec<u8>, Vec<u8>, Entry);

/// A counted row of the delta, as walked: its stored key, its count and
/// the row.
pub type Counted = (Vec<u8>, i64, Vec<u8>);

impl SealedDelta {
    fn store(&self) -> impl Fn(StoreError) -> std::io::Error + '_ {
        |e| std::io::Error::other(format!("{}: {e}", self.shape.table))
    }

    fn damaged(&self) -> std::io::Error {
        std::io::Error::other(damaged(&self.shape.table).to_string())
    }

    /// The stored key of a row's key (key-identified tables).
    pub fn row_key(&self, key: &[u8]) -> Key {
        self.db.key(self.table, ROW, key)
    }

    /// Whether the delta holds a version of the row with this key.
    ///
    /// # Errors
    /// The store failed.
    pub fn holds(&self, key: &[u8]) -> std::io::Result<bool> {
        // Not opened: pass B asks this of every base row.
        self.db.contains(&self.row_key(key)).map_err(self.store())
    }

    /// A whole-row table's net count for a row, with its stored key.
    ///
    /// # Errors
    /// The store failed.
    pub fn count(&self, row: &[u8]) -> std::io::Result<(Key, i64)> {
        let k = self.db.key(self.table, COUNT, row);
        let c = match self.db.get(&k).map_err(self.store())? {
            None => 0,
            Some(v) => count_of(&v).ok_or_else(|| self.damaged())?.0,
        };
        Ok((k, c))
    }

    /// The rows that take their unchanged values from the base row with
    /// `base_key`: each one's stored key and line (with `\u` fields).
    ///
    /// # Errors
    /// The store failed.
    pub fn fills(&self, base_key: &[u8]) -> std::io::Result<Vec<(Key, Vec<u8>)>> {
        let base = self.db.key(self.table, FILL, base_key);
        if !self.fill_bases.contains(&base) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (k, _) in self
            .db
            .scan_prefix(&base, None, usize::MAX)
            .map_err(self.store())?
        {
            let Some(row_key) = k.get(KEY_LEN..).and_then(|r| Key::try_from(r).ok()) else {
                return Err(self.damaged());
            };
            let Some(v) = self.db.get(&row_key).map_err(self.store())? else {
                continue;
            };
            // The index is never pruned: a row later deleted or updated
            // with all its values no longer takes them from this base row.
            if let Some((
                _,
                Entry::Row {
                    line,
                    fill: Some(f),
                },
            )) = decode(&v)
                && f == base_key
            {
                out.push((row_key, line));
            }
        }
        Ok(out)
    }

    /// Up to [`SCAN`] rows of the delta after the stored key `after`.
    ///
    /// # Errors
    /// The store failed.
    pub fn rows_after(&self, after: Option<&[u8]>) -> std::io::Result<Vec<Walked>> {
        self.db
            .scan(self.table, ROW, after, SCAN)
            .map_err(self.store())?
            .into_iter()
            .map(|(k, v)| {
                let (key, e) = decode(&v).ok_or_else(|| self.damaged())?;
                Ok((k, key, e))
            })
            .collect()
    }

    /// Up to [`SCAN`] counted rows after the stored key `after`: stored
    /// key, count, row.
    ///
    /// # Errors
    /// The store failed.
    pub fn counts_after(&self, after: Option<&[u8]>) -> std::io::Result<Vec<Counted>> {
        self.db
            .scan(self.table, COUNT, after, SCAN)
            .map_err(self.store())?
            .into_iter()
            .map(|(k, v)| {
                let (c, row) = count_of(&v).ok_or_else(|| self.damaged())?;
                Ok((k, c, row.to_vec()))
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
