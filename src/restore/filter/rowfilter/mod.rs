//! The row-at-a-time core of the COPY filter, run a block of rows at a
//! time: split, look up the erasure list in one batch, decide and emit.
//! The keys of checks and records are computed in `rowkey`; rows with
//! replaced fields are written by `rewrite`.

use super::{Action, Effect, FilterError, KeySet, Probe, TablePlan, TableStats, decoded};
use crate::copytext::scan::{Fields, Scanner, fields_near, prefetch_ahead};
use crate::erasure::config::SubjectType;
use crate::erasure::pseudonym::PseudonymKey;
use crate::erasure::{ErasureSet, SubjectKey, key_of};
use crate::restore::keys::{self, KeyForm};
use crate::restore::rowkeys::default_key;

mod rewrite;
mod rowkey;

use rewrite::Repl;

/// Rows split and looked up together: enough erasure-list lookups to overlap
/// their cache misses, few enough that the block's spans stay in L1. Plans
/// without list lookups use blocks too, which spreads the per-block
/// bookkeeping over many rows.
const BLOCK_ROWS: usize = 64;
/// Rows needing at least this many fields are split with the tab and
/// newline masks of `scan` (a pass over every byte, then bit arithmetic per
/// field); narrower ones by probing for each separator from the last (16
/// bytes at a time inline, then `memchr`), which is cheaper when most of a
/// long row is never looked at.
const MASKS_FROM_WIDTH: usize = 4;
/// No key for this lookup (NULL, or not a valid id of the subject type).
const NO_KEY: u32 = u32::MAX;

/// Filters one table's COPY stream. Create one per pass; keys of dropped
/// rows accumulate in `own` (one set per record slot).
///
/// Rows are handled a block at a time: split every row of the block (one
/// SIMD pass over the bytes, see `scan`), look up all the block's erasure
/// list keys in one batch (`ErasureSet::contains_batch`, so the cache misses
/// of a large list overlap), then decide and emit the rows in order. Checks
/// against dropped-key sets run in the last step, row by row, so a row sees
/// the keys recorded by the rows before it exactly as in a row-at-a-time
/// pass.
pub struct RowFilter<'a> {
    pub(super) plan: &'a TablePlan,
    erasure: &'a dyn ErasureSet,
    subject_type: SubjectType,
    probes: Vec<Probe<'a>>,
    own: Vec<KeySet>,
    /// Fields `0..width` of each row of the block, as absolute positions in
    /// the input: row `i`'s are `spans[i * width..][..width]`.
    spans: Vec<(usize, usize)>,
    width: usize,
    /// Each row of the block: its start and the position of its newline.
    rows: Vec<(usize, usize)>,
    /// Columns looked up in the erasure list: the roots, then the first
    /// column of each `Probe::Root` check.
    lookups: Vec<usize>,
    /// How each lookup's value is spelled before it is keyed.
    lookup_forms: Vec<KeyForm>,
    /// Per lookup: a reusable root, keyed with `keys::reuse_key`.
    lookup_reuse: Vec<bool>,
    /// Per lookup: the named subject of its root.
    lookup_subject: Vec<Option<String>>,
    /// Every lookup is plain, unnamed and not reusable: keyed by `key_of` alone.
    lookups_plain: bool,
    /// Some check refuses (ON UPDATE RESTRICT/NO ACTION under a rewrite).
    has_refuse: bool,
    /// Per check and per record slot: the forms of its columns, `None`
    /// when every value is keyed as it is (the fast path).
    fk_forms: Vec<Option<Vec<KeyForm>>>,
    record_forms: Vec<Option<Vec<KeyForm>>>,
    canon: Vec<u8>,
    /// Per check: its index in `lookups` if it probes the list.
    root_lookup: Vec<usize>,
    /// The block's lookup keys, and per (row, lookup) the index of its key
    /// in `keys` (or `NO_KEY`).
    keys: Vec<SubjectKey>,
    slots: Vec<u32>,
    hits: Vec<bool>,
    dec: Vec<u8>,
    keybuf: Vec<u8>,
    /// Per column: 0 = keep, k = `repl_vals[k - 1]`.
    repl: Vec<u32>,
    repl_vals: Vec<Repl>,
    /// The key `Replacement::Pseudonym` hashes with.
    pseudonym_key: Option<&'a PseudonymKey>,
    /// A JSON document a declared reference's path could not be read in:
    /// `(check, row)`, reported once the block is decided.
    bad_json: Option<(usize, u64)>,
    jscratch: Vec<u8>,
    /// Set for a collecting pass (see [`Collected`]).
    collect: Option<Collected>,
    /// Per check: the key its SET DEFAULT gives the referencing columns,
    /// when every one of them gets a constant default (see `decide`).
    default_keys: Vec<Option<(u128, Option<u128>)>>,
    /// A point restore's merged stream: rows after this many came from
    /// the changes (`pitr::merge`); `u64::MAX` until the base has ended.
    changes_after: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    pub(super) stats: TableStats,
}

/// What a collecting pass over a table of a self-referencing component
/// gathers instead of deciding: per row, whether it is dropped by itself
/// (a listed root, or a drop-check against a set outside the component),
/// the keys it would record if dropped, and the keys of its drop-checks
/// against sets inside the component. The runner settles the component
/// from these in memory (`runner::settle`), whatever the depth of its
/// chains, instead of re-reading it until no set grows.
#[derive(Debug, Default)]
pub struct Collected {
    /// Per check: whether it is a drop-check inside the component.
    internal: Vec<bool>,
    /// Rows dropped by themselves.
    pub direct: Vec<u32>,
    /// `(row, record slot, key)`.
    pub records: Vec<(u32, u32, u128)>,
    /// `(row, check, key)` of internal drop-checks.
    pub refs: Vec<(u32, u32, u128)>,
}

impl<'a> RowFilter<'a> {
    /// `probes[i]` is where `plan.fks[i]` looks up; `own` are this table's
    /// record sets so far (empty on a first pass).
    ///
    /// # Panics
    /// If `probes` or `own` do not match the plan (a caller bug).
    pub fn new(
        plan: &'a TablePlan,
        erasure: &'a dyn ErasureSet,
        subject_type: SubjectType,
        probes: Vec<Probe<'a>>,
        own: Vec<KeySet>,
    ) -> RowFilter<'a> {
        assert_eq!(
            probes.len(),
            plan.fks.len(),
            "one probe per foreign-key check"
        );
        assert_eq!(
            own.len(),
            plan.sets(),
            "one set per record and rewrite slot"
        );
        let width = plan.max_col().map_or(0, |m| m + 1);
        let mut lookups = plan.roots.clone();
        let mut lookup_forms: Vec<KeyForm> =
            (0..plan.roots.len()).map(|i| plan.forms.root(i)).collect();
        let mut lookup_reuse: Vec<bool> = (0..plan.roots.len())
            .map(|i| plan.forms.reusable(i))
            .collect();
        let mut lookup_subject: Vec<Option<String>> = (0..plan.roots.len())
            .map(|i| plan.forms.subject(i).map(str::to_string))
            .collect();
        let mut root_lookup = vec![usize::MAX; plan.fks.len()];
        for (i, (fk, probe)) in plan.fks.iter().zip(&probes).enumerate() {
            if let (Probe::Root, Some(&c)) = (probe, fk.columns.first()) {
                root_lookup[i] = lookups.len();
                lookups.push(c);
                lookup_forms.push(KeyForm::Plain);
                lookup_reuse.push(false);
                lookup_subject.push(None);
            }
        }
        let fk_forms = (0..plan.fks.len()).map(|i| plan.forms.fk(i)).collect();
        let record_forms = (0..plan.records.len())
            .map(|i| plan.forms.record(i))
            .chain((0..plan.rewrites.len()).map(|i| plan.forms.rewrite(i)))
            .collect();
        let lookups_plain = lookup_forms.iter().all(|&f| f == KeyForm::Plain)
            && !lookup_reuse.iter().any(|&r| r)
            && lookup_subject.iter().all(Option::is_none);
        let has_refuse = plan
            .fks
            .iter()
            .any(|fk| matches!(fk.effect, Effect::Refuse));
        RowFilter {
            lookups_plain,
            has_refuse,
            plan,
            erasure,
            subject_type,
            probes,
            own,
            spans: vec![(0, 0); width * BLOCK_ROWS],
            width,
            rows: Vec::with_capacity(BLOCK_ROWS),
            keys: Vec::with_capacity(lookups.len() * BLOCK_ROWS),
            slots: Vec::with_capacity(lookups.len() * BLOCK_ROWS),
            hits: vec![false; lookups.len() * BLOCK_ROWS],
            lookups,
            lookup_forms,
            lookup_reuse,
            lookup_subject,
            fk_forms,
            record_forms,
            canon: Vec::with_capacity(256),
            collect: None,
            default_keys: plan
                .fks
                .iter()
                .enumerate()
                .map(|(i, fk)| default_key(fk, plan.forms.fk(i).as_deref(), subject_type))
                .collect(),
            root_lookup,
            dec: Vec::with_capacity(256),
            keybuf: Vec::with_capacity(256),
            repl: vec![0; width],
            repl_vals: Vec::new(),
            pseudonym_key: None,
            bad_json: None,
            jscratch: Vec::new(),
            changes_after: None,
            stats: TableStats::default(),
        }
    }

    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// The key `pseudonym` redactions hash with; without it, writing such
    /// a row fails (planning refuses such a config first).
    pub fn with_pseudonym_key(mut self, key: Option<&'a PseudonymKey>) -> Self {
        self.pseudonym_key = key;
        self
    }

    /// Counts apart the rows after the `boundary`-th, which a point
    /// restore's changes put in the stream (`pitr::merge::MergedReader`).
    pub fn with_changes_after(
        mut self,
        boundary: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        self.changes_after = Some(boundary);
        self
    }

    /// Whether the row being decided (the `rows_read`-th) came from the
    /// changes.
    fn row_from_changes(&self) -> bool {
        self.changes_after
            .as_ref()
            .is_some_and(|b| self.stats.rows_read > b.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Makes this a collecting pass: `internal[i]` says whether check `i`
    /// is a drop-check against a set inside the component. Nothing is
    /// written or recorded; [`RowFilter::take_collected`] gives the result.
    pub fn collecting(mut self, internal: Vec<bool>) -> Self {
        assert_eq!(internal.len(), self.plan.fks.len(), "one flag per check");
        self.collect = Some(Collected {
            internal,
            ..Collected::default()
        });
        self
    }

    pub fn take_collected(&mut self) -> Option<Collected> {
        self.collect.take()
    }

    /// Ends the pass: this table's record sets and its counts.
    pub fn finish(self) -> (Vec<KeySet>, TableStats) {
        (self.own, self.stats)
    }

    /// Filters the complete rows at the start of `input`, appending what is
    /// kept to `out` (`None`: only decide and record, as in a pre-pass or a
    /// dry run). Returns the bytes consumed: up to and including the last
    /// newline.
    ///
    /// # Errors
    /// A row with fewer fields than a check needs; a rewrite with an
    /// unevaluated default while writing.
    pub fn filter_rows(
        &mut self,
        input: &[u8],
        mut out: Option<&mut Vec<u8>>,
    ) -> Result<usize, FilterError> {
        if self.plan.is_passthrough() {
            let end = memchr::memrchr(b'\n', input).map_or(0, |p| p + 1);
            self.stats.rows_read += memchr::memchr_iter(b'\n', &input[..end]).count() as u64;
            self.stats.bytes_read += end as u64;
            if let Some(o) = out {
                o.extend_from_slice(&input[..end]);
            }
            return Ok(end);
        }
        let mut cursor = if self.width >= MASKS_FROM_WIDTH {
            Cursor::Masks(Scanner::new(input))
        } else {
            Cursor::Near
        };
        let mut start = 0;
        // Start of the run of kept rows not yet copied to `out`.
        let mut pending = 0;
        // Input up to here has been prefetched.
        let mut ahead = 0;
        loop {
            self.rows.clear();
            let mut failed = None;
            while self.rows.len() < BLOCK_ROWS {
                match self.split(input, &mut cursor, start) {
                    Ok(Some(end)) => {
                        self.rows.push((start, end));
                        start = end + 1;
                        ahead = prefetch_ahead(input, start, ahead);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let more = self.rows.len() == BLOCK_ROWS;
            self.look_up(input);
            for i in 0..self.rows.len() {
                let (row_start, nl) = self.rows[i];
                self.stats.rows_read += 1;
                let verdict = self.decide(input, i);
                // A document a path could not be read in: nothing is known
                // about whom the row references, so the pass stops here.
                if let Some((f, row)) = self.bad_json {
                    return Err(FilterError::BadJson {
                        table: self.plan.table.clone(),
                        row,
                        check: self.plan.fks[f].name.clone(),
                    });
                }
                match verdict {
                    Verdict::Keep => {}
                    Verdict::Drop => {
                        self.stats.rows_dropped += 1;
                        if self.row_from_changes() {
                            self.stats.changes_dropped += 1;
                        }
                        if let Some(o) = out.as_deref_mut() {
                            o.extend_from_slice(&input[pending..row_start]);
                        }
                        pending = nl + 1;
                    }
                    Verdict::Refused(f) => {
                        return Err(FilterError::UpdateRefused {
                            table: self.plan.table.clone(),
                            fk: self.plan.fks[f].name.clone(),
                        });
                    }
                    Verdict::DefaultDropped(f) => {
                        let fk = &self.plan.fks[f];
                        return Err(FilterError::DefaultDropped {
                            table: self.plan.table.clone(),
                            fk: fk.name.clone(),
                        });
                    }
                    Verdict::Rewrite => {
                        if let Some(o) = out.as_deref_mut() {
                            o.extend_from_slice(&input[pending..row_start]);
                            self.write_rewritten(input, i, o)?;
                        }
                        self.clear_rewrite();
                        pending = nl + 1;
                    }
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
            if !more {
                break;
            }
        }
        if let Some(o) = out {
            o.extend_from_slice(&input[pending..start]);
        }
        self.stats.bytes_read += start as u64;
        Ok(start)
    }

    /// Splits the row starting at `start` into the next block slot's field
    /// spans (columns `0..width`). Returns the position of its newline, or
    /// `None` if the input ends inside the row.
    #[inline]
    fn split(
        &mut self,
        input: &[u8],
        cursor: &mut Cursor<'_>,
        start: usize,
    ) -> Result<Option<usize>, FilterError> {
        let base = self.rows.len() * self.width;
        let spans = &mut self.spans[base..base + self.width];
        let fields = match cursor {
            Cursor::Masks(scanner) => scanner.fields(start, spans),
            Cursor::Near => fields_near(input, start, spans),
        };
        match fields {
            Fields::Row(newline) => Ok(Some(newline)),
            Fields::Incomplete => Ok(None),
            Fields::Short(found) => Err(FilterError::ShortRow {
                table: self.plan.table.clone(),
                row: self.stats.rows_read + self.rows.len() as u64 + 1,
                found,
                needed: self.width,
            }),
        }
    }

    /// Looks up the block's erasure-list keys in one batch.
    fn look_up(&mut self, input: &[u8]) {
        if self.lookups.is_empty() {
            return;
        }
        self.keys.clear();
        self.slots.clear();
        if self.lookups_plain {
            let st = self.subject_type;
            for i in 0..self.rows.len() {
                let base = i * self.width;
                for &c in &self.lookups {
                    let (a, b) = self.spans[base + c];
                    let k = decoded(&input[a..b], &mut self.dec).and_then(|v| key_of(st, v));
                    push_key(&mut self.slots, &mut self.keys, k);
                }
            }
        } else {
            self.look_up_formed(input);
        }
        self.erasure
            .contains_batch(&self.keys, &mut self.hits[..self.keys.len()]);
    }

    /// The block's keys where some root is folded, named or reusable: each
    /// value in its root's form, under its subject's and reuse keys.
    fn look_up_formed(&mut self, input: &[u8]) {
        for i in 0..self.rows.len() {
            let base = i * self.width;
            for (j, (&c, &form)) in self.lookups.iter().zip(&self.lookup_forms).enumerate() {
                let (a, b) = self.spans[base + c];
                let canon = &mut self.canon;
                let st = self.subject_type;
                let reuse = self.lookup_reuse[j];
                let subject = self.lookup_subject[j].as_deref();
                let k = decoded(&input[a..b], &mut self.dec)
                    .and_then(|v| {
                        if form == KeyForm::Plain {
                            key_of(st, v)
                        } else {
                            keys::root_key(st, form, v, canon)
                        }
                    })
                    .map(|k| match subject {
                        Some(name) => crate::erasure::subject::subject_key(name, k),
                        None => k,
                    })
                    .map(|k| if reuse { keys::reuse_key(k) } else { k });
                push_key(&mut self.slots, &mut self.keys, k);
            }
        }
    }

    /// Whether lookup `j` of block row `i` is on the erasure list.
    #[inline]
    fn listed(&self, i: usize, j: usize) -> bool {
        let s = self.slots[i * self.lookups.len() + j];
        s != NO_KEY && self.hits[s as usize]
    }

    /// Gathers block row `i` into the collecting pass (see [`Collected`]).
    #[cold]
    fn collect_row(&mut self, input: &[u8], i: usize) {
        let Some(mut c) = self.collect.take() else {
            return;
        };
        let row = u32::try_from(self.stats.rows_read - 1).unwrap_or(u32::MAX);
        let plan = self.plan;
        let mut direct = (0..plan.roots.len()).any(|j| self.listed(i, j));
        for (f, fk) in plan.fks.iter().enumerate() {
            if !matches!(fk.effect, Effect::Hit) {
                continue;
            }
            if c.internal[f] {
                if let Some(k) = self.check_key(input, i, f) {
                    c.refs.push((row, f as u32, k));
                }
            } else if !direct && self.references_dropped(input, i, f) {
                direct = true;
            }
        }
        if direct {
            c.direct.push(row);
        }
        for slot in 0..plan.records.len() {
            if let Some(k) = self.record_key(input, i, slot) {
                c.records.push((row, slot as u32, k));
            }
        }
        self.collect = Some(c);
    }

    #[inline(always)]
    fn decide(&mut self, input: &[u8], i: usize) -> Verdict {
        if self.collect.is_some() {
            self.collect_row(input, i);
            return Verdict::Keep;
        }
        let plan = self.plan;
        let mut hit = (0..plan.roots.len()).any(|j| self.listed(i, j));
        if !hit {
            for (f, fk) in plan.fks.iter().enumerate() {
                if matches!(fk.effect, Effect::Hit) && self.references_dropped(input, i, f) {
                    hit = true;
                    break;
                }
            }
        }
        let mut redact = false;
        if hit {
            self.record(input, i);
            match &plan.action {
                Action::Drop => return Verdict::Drop,
                Action::Keep => self.stats.rows_kept += 1,
                Action::Redact(entries) => {
                    for (j, (c, _)) in entries.iter().enumerate() {
                        self.repl_vals.push(Repl::Policy(j));
                        self.repl[*c] = self.repl_vals.len() as u32;
                    }
                    redact = true;
                }
            }
        }
        if self.has_refuse {
            for (f, fk) in plan.fks.iter().enumerate() {
                if matches!(fk.effect, Effect::Refuse) && self.references_dropped(input, i, f) {
                    self.clear_rewrite();
                    return Verdict::Refused(f);
                }
            }
        }
        let mut rewrite = false;
        for (f, fk) in plan.fks.iter().enumerate() {
            if let Effect::Rewrite(cols) = &fk.effect
                && self.references_dropped(input, i, f)
            {
                if self.default_dropped(f) {
                    self.clear_rewrite();
                    return Verdict::DefaultDropped(f);
                }
                for (j, (c, _)) in cols.iter().enumerate() {
                    self.repl_vals.push(Repl::Fk(f, j));
                    self.repl[*c] = self.repl_vals.len() as u32;
                }
                redact |= fk.redacts && !hit;
                rewrite = true;
            }
        }
        if redact {
            self.stats.rows_redacted += 1;
        } else if rewrite && !hit {
            self.stats.rows_nulled += 1;
            if self.row_from_changes() {
                self.stats.changes_nulled += 1;
            }
        }
        if redact || rewrite {
            self.record_rewrites(input, i);
            Verdict::Rewrite
        } else {
            Verdict::Keep
        }
    }

    /// True when block row `i`'s referencing columns of `plan.fks[f]` are
    /// all non-NULL (MATCH SIMPLE) and their key is in the parent's dropped
    /// set (for a check against the list itself: their key is listed).
    #[inline(always)]
    fn references_dropped(&mut self, input: &[u8], i: usize, f: usize) -> bool {
        if let Probe::Root = self.probes[f] {
            return self.listed(i, self.root_lookup[f]);
        }
        let Some(k) = self.check_key(input, i, f) else {
            return false;
        };
        match self.probes[f] {
            Probe::Parent(set) => set.contains(k),
            Probe::Own(slot) => self.own[slot].contains(k),
            Probe::OwnOr(slot, others) => self.own[slot].contains(k) || others.contains(k),
            Probe::Root => false,
        }
    }

    /// Whether check `f`'s SET DEFAULT points at a parent row that is
    /// dropped too: PostgreSQL would refuse the delete, so the restore stops.
    fn default_dropped(&self, f: usize) -> bool {
        let Some((tuple, listed)) = self.default_keys[f] else {
            return false;
        };
        match self.probes[f] {
            Probe::Root => listed.is_some_and(|k| self.erasure.contains(k)),
            Probe::Parent(set) => set.contains(tuple),
            Probe::Own(slot) => self.own[slot].contains(tuple),
            Probe::OwnOr(slot, others) => self.own[slot].contains(tuple) || others.contains(tuple),
        }
    }
}

/// Adds one lookup's key (or `NO_KEY`) to the block's batch.
#[inline(always)]
fn push_key(slots: &mut Vec<u32>, keys: &mut Vec<SubjectKey>, k: Option<SubjectKey>) {
    match k {
        Some(k) => {
            slots.push(keys.len() as u32);
            keys.push(k);
        }
        None => slots.push(NO_KEY),
    }
}

/// How `split` finds rows and fields in the input (see `MASKS_FROM_WIDTH`).
/// One lives on the stack per `filter_rows` call: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Cursor<'i> {
    Masks(Scanner<'i>),
    /// Each separator probed for from where the last one was.
    Near,
}

enum Verdict {
    Keep,
    Drop,
    Rewrite,
    /// Check `f`'s SET DEFAULT would point the row at a dropped parent row.
    DefaultDropped(usize),
    /// Check `f` (ON UPDATE RESTRICT / NO ACTION) references a rewritten key.
    Refused(usize),
}
