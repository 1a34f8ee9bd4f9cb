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

use crate::repo::changes::codec::{OldKind, Value};
use crate::repo::changes::manifest::RelationDesc;
use crate::repo::manifest::TableEntry;
use std::collections::HashMap;

/// A change the delta cannot take; names what and why.
#[derive(Debug, thiserror::Error)]
#[error("{table}: {message}")]
pub struct DeltaError {
    pub table: String,
    pub message: String,
}

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
        line: Box<[u8]>,
        fill: Option<Box<[u8]>>,
    },
}

/// One table's delta.
#[derive(Debug)]
pub struct TableDelta {
    pub shape: Shape,
    /// A TRUNCATE was replayed: no base row survives.
    pub truncated: bool,
    rows: HashMap<Box<[u8]>, Entry>,
    counts: HashMap<Box<[u8]>, i64>,
    /// Changes replayed into this table.
    pub changes: u64,
}

/// The field that marks an unchanged TOAST value.
pub const UNCHANGED: &[u8] = b"\\u";

impl TableDelta {
    pub fn new(shape: Shape) -> TableDelta {
        TableDelta {
            shape,
            truncated: false,
            rows: HashMap::new(),
            counts: HashMap::new(),
            changes: 0,
        }
    }

    fn err(&self, message: impl Into<String>) -> DeltaError {
        DeltaError {
            table: self.shape.table.clone(),
            message: message.into(),
        }
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

    /// An INSERT.
    pub fn insert(&mut self, new: &[Value]) -> Result<(), DeltaError> {
        self.changes += 1;
        let fields = self.fields(new)?;
        if fields.iter().any(|f| f == UNCHANGED) {
            return Err(self.err("an inserted row has a value marked unchanged"));
        }
        let key = self.key(&fields)?;
        if self.shape.whole_row() {
            *self.counts.entry(key.into()).or_default() += 1;
        } else {
            self.rows.insert(
                key.into(),
                Entry::Row {
                    line: join(fields.iter().map(Vec::as_slice)).into(),
                    fill: None,
                },
            );
        }
        Ok(())
    }

    /// A DELETE of the row with this old key (or whole old row).
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
            *self.counts.entry(key.into()).or_default() -= 1;
        } else {
            self.rows.insert(key.into(), Entry::Gone);
        }
        Ok(())
    }

    /// An UPDATE: `old` when pgoutput sent the old key (it changed) or the
    /// old row (REPLICA IDENTITY FULL).
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
            let old_key = self.key(&old_fields)?;
            *self.counts.entry(old_key.into()).or_default() -= 1;
            let new_key = self.key(&fields)?;
            *self.counts.entry(new_key.into()).or_default() += 1;
            return Ok(());
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
            match self.rows.get(old_key.as_slice()) {
                Some(Entry::Row { line, fill: before }) => {
                    let prev: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
                    for (f, p) in fields.iter_mut().zip(prev) {
                        if f == UNCHANGED {
                            *f = p.to_vec();
                        }
                    }
                    fill = before.clone();
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
                None => fill = Some(old_key.clone().into()),
            }
            if !fields.iter().any(|f| f == UNCHANGED) {
                fill = None;
            }
        }
        if old_key != new_key {
            self.rows.insert(old_key.into(), Entry::Gone);
        }
        self.rows.insert(
            new_key.into(),
            Entry::Row {
                line: join(fields.iter().map(Vec::as_slice)).into(),
                fill,
            },
        );
        Ok(())
    }

    /// A TRUNCATE: every row so far is gone, the base's included.
    pub fn truncate(&mut self) {
        self.changes += 1;
        self.truncated = true;
        self.rows.clear();
        self.counts.clear();
    }

    /// Done replaying: the delta in the form pass B reads.
    pub fn seal(self) -> SealedDelta {
        let mut rows: Vec<(Box<[u8]>, Entry)> = self.rows.into_iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut counts: Vec<(Box<[u8]>, i64)> =
            self.counts.into_iter().filter(|(_, c)| *c != 0).collect();
        counts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut fills: HashMap<Box<[u8]>, Vec<usize>> = HashMap::new();
        for (i, (_, e)) in rows.iter().enumerate() {
            if let Entry::Row {
                fill: Some(from), ..
            } = e
            {
                fills.entry(from.clone()).or_default().push(i);
            }
        }
        SealedDelta {
            shape: self.shape,
            truncated: self.truncated,
            rows,
            counts,
            fills,
            changes: self.changes,
        }
    }
}

/// A table's delta, read-only, for any number of passes.
#[derive(Debug)]
pub struct SealedDelta {
    pub shape: Shape,
    pub truncated: bool,
    /// Key-identified rows, sorted by key.
    pub rows: Vec<(Box<[u8]>, Entry)>,
    /// Whole-row tables: net count per row, sorted, none zero.
    pub counts: Vec<(Box<[u8]>, i64)>,
    /// Base key → rows (indexes into `rows`) that take their unchanged
    /// values from that base row.
    pub fills: HashMap<Box<[u8]>, Vec<usize>>,
    pub changes: u64,
}

impl SealedDelta {
    /// The entry for a key, if the delta touched it.
    pub fn entry(&self, key: &[u8]) -> Option<&Entry> {
        self.rows
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.rows[i].1)
    }

    /// A whole-row table's net count for a row (0 if untouched), and its
    /// index into `counts`.
    pub fn count(&self, row: &[u8]) -> Option<(usize, i64)> {
        self.counts
            .binary_search_by(|(k, _)| k.as_ref().cmp(row))
            .ok()
            .map(|i| (i, self.counts[i].1))
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
