//! Schema changes the stream does not show. pgoutput carries a table's
//! columns (a Relation message, judged by the writer) but not its foreign
//! keys, indexes, partitions or anything else DDL changes; a restore in the
//! base's shape past such a change would miss a key the erasure filter
//! must follow. So at every flush (and every idle head) the writer reads
//! the source's schema digest (`pg::digest`) and compares it with the one
//! its newest base was taken in:
//!
//! - equal: the head's `schema_checked_at` moves to the time the read
//!   holds for (`pg::digest`), and the restorable window may reach it;
//! - different: a [`SchemaChange`] from the last time it was equal, which
//!   makes a gap and a base; `schema_checked_at` stays where it was until
//!   that base is stored (its digest becomes the reference).
//!
//! A change undone between two reads (a key added and dropped within one
//! flush) is not seen: only captured DDL would see it.
//!
//! Columns appended by a captured `ALTER TABLE` (`add_columns`, replayed
//! by a point restore) change the digest too. The digest is a sum of its
//! lines' hashes (mod 2^64), and their message carries what their lines
//! add: a read that finds exactly the reference plus that becomes the
//! reference without a change. Anything else changed since the reference
//! (a foreign key added a moment before, say) makes the read differ.

use super::writer::SchemaChange;
use crate::repo::changes::Lsn;
use crate::repo::changes::manifest::Head;
use chrono::{DateTime, Utc};

/// The digest the source's is compared with, and whether a change waits
/// for its base.
#[derive(Debug, Clone, Default)]
pub struct SchemaWatch {
    /// The newest base's digest; `None` for a base lethe took before
    /// digests were recorded (the first read becomes the reference).
    digest: Option<String>,
    /// A change was seen: the check time stays put until a base.
    waiting: bool,
    /// Captured DDL no restore can replay, seen while a change waited (from
    /// another transaction than the one that made it wait): it may have
    /// committed after the waiting base's snapshot, so that base is
    /// followed by one more (captured DDL leaves the digest unchanged, so
    /// no read would see it).
    again: Option<String>,
    /// The commit bound of the captured DDL that made the change wait.
    waiting_for: Option<DateTime<Utc>>,
    /// The reference plus what captured `add_columns` commands added to
    /// it since; `None` when none came, or the reference is not a sum.
    expect: Option<String>,
    /// How far the writer has read the stream (commits and heartbeats).
    reached: Lsn,
    /// A read that differs from what is expected, taken before the stream
    /// reached the WAL position of the read: a column's message may still
    /// be on its way, so it is judged once the stream gets there.
    pending: Option<(String, DateTime<Utc>, Lsn)>,
}

impl SchemaWatch {
    /// Watches against `digest`, the newest base's (if it recorded one).
    pub fn new(digest: Option<String>) -> SchemaWatch {
        SchemaWatch {
            digest,
            waiting: false,
            again: None,
            waiting_for: None,
            expect: None,
            reached: Lsn(0),
            pending: None,
        }
    }

    /// Captured columns appended (replayed by a restore), whose lines add
    /// `delta` to the digest.
    pub fn columns_added(&mut self, delta: u64) {
        let from = self.expect.as_deref().or(self.digest.as_deref());
        self.expect = from
            .and_then(|d| d.parse::<u64>().ok())
            .map(|d| d.wrapping_add(delta).to_string());
    }

    /// Whether a base digest is known.
    pub fn has_reference(&self) -> bool {
        self.digest.is_some()
    }

    /// Judges a read of the source's digest that holds up to `at`, taken
    /// with the WAL at `lsn`; moves `head.schema_checked_at` or returns the
    /// change. A failed read moves nothing (logged by the caller). A read
    /// that differs from what is expected while the stream has not reached
    /// `lsn` waits for it ([`SchemaWatch::stream_reached`]), and reads in
    /// between are skipped.
    pub fn read(
        &mut self,
        head: &mut Head,
        digest: &str,
        at: DateTime<Utc>,
        lsn: Option<Lsn>,
    ) -> Option<SchemaChange> {
        if self.pending.is_some() {
            return None;
        }
        let differs = self.digest.as_deref().is_some_and(|r| r != digest)
            && self.expect.as_deref() != Some(digest);
        if let Some(l) = lsn
            && differs
            && !self.waiting
            && self.reached < l
        {
            self.pending = Some((digest.to_string(), at, l));
            return None;
        }
        self.judge(head, digest, at)
    }

    /// The writer has read the stream up to `lsn`: a read waiting for it is
    /// judged now.
    pub fn stream_reached(&mut self, head: &mut Head, lsn: Lsn) -> Option<SchemaChange> {
        self.reached = self.reached.max(lsn);
        match &self.pending {
            Some((_, _, l)) if *l <= self.reached => {
                let (digest, at, _) = self.pending.take()?;
                self.judge(head, &digest, at)
            }
            _ => None,
        }
    }

    fn judge(&mut self, head: &mut Head, digest: &str, at: DateTime<Utc>) -> Option<SchemaChange> {
        let explained = !self.waiting && self.expect.as_deref() == Some(digest);
        match &self.digest {
            Some(r) if r != digest && explained => {
                self.digest = Some(digest.to_string());
                head.schema_digest = Some(digest.to_string());
                self.expect = None;
                head.schema_checked_at = Some(head.schema_checked_at.map_or(at, |c| c.max(at)));
                None
            }
            Some(r) if r != digest => {
                self.expect = None;
                let change = (!self.waiting).then(|| SchemaChange {
                    since: head.schema_checked_at,
                    what: "the schema changed (a table, column, key, index, trigger, view, type or function)"
                        .to_string(),
                });
                self.digest = Some(digest.to_string());
                self.waiting = true;
                change
            }
            _ => {
                self.digest = Some(digest.to_string());
                if !self.waiting {
                    head.schema_checked_at = Some(head.schema_checked_at.map_or(at, |c| c.max(at)));
                }
                None
            }
        }
    }

    /// A change seen in the stream itself (a table's Relation message with
    /// another shape, or captured DDL no restore can replay): one change
    /// from the last check, as a read would make, and none again from the
    /// reads that follow. `before`: a time the change is known to come
    /// after (its transaction's commit, less a microsecond), which bounds
    /// it when a check read after that commit moved the check time past it
    /// (captured DDL leaves the digest unchanged).
    pub fn seen(
        &mut self,
        head: &Head,
        what: String,
        before: Option<DateTime<Utc>>,
    ) -> Option<SchemaChange> {
        if self.waiting {
            if before.is_some() && before != self.waiting_for {
                self.again.get_or_insert(what);
            }
            return None;
        }
        self.waiting = true;
        self.waiting_for = before;
        // Before the schema is read once (a base of older lethe), the last
        // commit stored in the old shape bounds it.
        let since = match (head.schema_checked_at.or(head.last_commit_at), before) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(SchemaChange { since, what })
    }

    /// A base taken in `digest` is stored: it becomes the reference. A
    /// base in another schema than the one last read, with no change
    /// waiting, means the schema changed between that read and the base: a
    /// change (and one more base). The check time does not move here: the
    /// base's snapshot is older than its id's time, so the next read moves
    /// it.
    ///
    /// Captured DDL no restore can replay, seen while another change
    /// waited for this base, is a change too, from the same check time.
    pub fn base_stored(&mut self, head: &Head, digest: Option<&str>) -> Option<SchemaChange> {
        self.waiting_for = None;
        let again = self.again.take().map(|what| SchemaChange {
            since: head.schema_checked_at.or(head.last_commit_at),
            what: format!("{what} (seen while a base was being taken)"),
        });
        let Some(digest) = digest else {
            self.waiting = again.is_some();
            return again;
        };
        let change = again.or_else(|| {
            (!self.waiting && self.digest.as_deref().is_some_and(|r| r != digest)).then(|| {
                SchemaChange {
                    since: head.schema_checked_at,
                    what: "the schema changed between the last check and a base".to_string(),
                }
            })
        });
        self.digest = Some(digest.to_string());
        self.waiting = change.is_some();
        change
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
