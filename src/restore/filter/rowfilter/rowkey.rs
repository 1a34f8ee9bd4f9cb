//! The keys a row's checks and records are computed from: a column
//! tuple's dropped-set key (plain or in its typed spelling), the scalar at a
//! declared JSON path, and recording a dropped or rewritten row's keys.

use super::RowFilter;
use crate::jsonpath::Lookup;
use crate::restore::filter::decoded;
use crate::restore::keys::{self, KeyForm};
use crate::restore::rowkeys::{key_of_formed, key_of_tuple};

impl RowFilter<'_> {
    /// The key of block row `i`'s referencing columns of check `f`; `None`
    /// if one is NULL.
    #[inline(always)]
    pub(super) fn check_key(&mut self, input: &[u8], i: usize, f: usize) -> Option<u128> {
        let fk = &self.plan.fks[f];
        if fk.path.is_some() {
            return self.json_key(input, i, f);
        }
        let base = i * self.width;
        let spans = &self.spans[base..base + self.width];
        match &self.fk_forms[f] {
            None => key_of_tuple(input, spans, &fk.columns, &mut self.dec, &mut self.keybuf),
            Some(forms) => key_of_formed(
                input,
                spans,
                &fk.columns,
                forms,
                &mut self.dec,
                &mut self.keybuf,
                &mut self.canon,
            ),
        }
    }

    /// The key of the scalar at check `f`'s JSON path in block row `i`'s
    /// document (`doc #>> path`, spelled in the check's form); `None` when
    /// the document is NULL, or the path leads to nothing, JSON null, an
    /// object or an array. A document that is not JSON is noted in
    /// `bad_json` and the restore stops.
    #[cold]
    pub(super) fn json_key(&mut self, input: &[u8], i: usize, f: usize) -> Option<u128> {
        let fk = &self.plan.fks[f];
        let (path, &c) = (fk.path.as_ref()?, fk.columns.first()?);
        let (a, b) = self.spans[i * self.width + c];
        let doc = decoded(&input[a..b], &mut self.dec)?;
        let form = self.fk_forms[f]
            .as_ref()
            .and_then(|f| f.first().copied())
            .unwrap_or(KeyForm::Plain);
        match path.scalar(doc, &mut self.jscratch) {
            Lookup::Found(v) => Some(crate::restore::filter::value_key(keys::canonical(
                form,
                v,
                &mut self.canon,
            ))),
            Lookup::Absent | Lookup::NotScalar => None,
            Lookup::Invalid => {
                // `rows_read` already counts this row.
                let row = self.stats.rows_read;
                self.bad_json.get_or_insert((f, row));
                None
            }
        }
    }

    /// The key block row `i` records in slot `slot` when dropped.
    pub(super) fn record_key(&mut self, input: &[u8], i: usize, slot: usize) -> Option<u128> {
        let plan = self.plan;
        self.record_key_of(input, i, &plan.records[slot], slot)
    }

    /// The key of columns `cols` of block row `i`, in the forms of set `slot`.
    pub(super) fn record_key_of(
        &mut self,
        input: &[u8],
        i: usize,
        cols: &[usize],
        slot: usize,
    ) -> Option<u128> {
        let base = i * self.width;
        let spans = &self.spans[base..base + self.width];
        match &self.record_forms[slot] {
            None => key_of_tuple(input, spans, cols, &mut self.dec, &mut self.keybuf),
            Some(forms) => key_of_formed(
                input,
                spans,
                cols,
                forms,
                &mut self.dec,
                &mut self.keybuf,
                &mut self.canon,
            ),
        }
    }

    /// Records the old key of each rewrite slot whose columns the pending
    /// rewrite of block row `i` changes (see `TablePlan::rewrites`).
    pub(super) fn record_rewrites(&mut self, input: &[u8], i: usize) {
        let plan = self.plan;
        for (r, cols) in plan.rewrites.iter().enumerate() {
            if cols.iter().any(|&c| self.repl[c] != 0) {
                let slot = plan.records.len() + r;
                if let Some(k) = self.record_key_of(input, i, cols, slot) {
                    self.own[slot].insert(k);
                }
            }
        }
    }

    pub(super) fn record(&mut self, input: &[u8], i: usize) {
        for slot in 0..self.plan.records.len() {
            if let Some(k) = self.record_key(input, i, slot) {
                self.own[slot].insert(k);
            }
        }
    }
}
