//! The durable erasure list: a RocksDB database at `erasure.path`.
//!
//! Every write is one `WriteBatch` written with `sync = true` before the caller
//! is told it succeeded (promise 5). Layout, all in the default column family:
//!
//! | key                         | value                                              |
//! |-----------------------------|----------------------------------------------------|
//! | `m:version`                 | `2`, or `3` once a removal was recorded (version 1 |
//! |                             | is migrated on open; others refused)               |
//! | `m:subject_type`            | `bigint` / `uuid` / `text` (fixed at creation)     |
//! | `m:state`                   | count (u64 BE) · digest (32 B) · pending (u64 BE)  |
//! | `m:next_batch`              | next batch sequence number (u64 BE)                |
//! | `m:last_sync`               | RFC 3339 time of the last complete `sync`          |
//! | `e:<canonical id>`          | batch sequence (u64 BE) that added it              |
//! | `b:<seq u64 BE>`            | JSON [`BatchRecord`]: added_at, reference, origin  |
//! | `p:<seq u64 BE>`            | the batch's new ids, `\n`-separated: acknowledged,  |
//! |                             | not yet journaled to storage                       |
//! | `j:<journal object name>`   | JSON: a journal object already merged or written   |
//! | `r:<canonical id>`          | JSON [`RemovalRecord`]: the id's latest removal    |
//! | `q:<seq u64 BE>`            | JSON: a removal not yet journaled to storage       |
//!
//! An entry's added_at/reference/origin are shared by every id added in the
//! same write, so they are stored once per batch; entries stay 8 bytes, which
//! keeps the store small and the restore-time scan fast.
//!
//! **Digest.** The list state is `count` plus the XOR of BLAKE3(canonical id)
//! over every entry, as 64 hex digits (all zeros for the empty list). XOR is
//! order independent and its own inverse (a removal XORs the term out again),
//! and each listed id is counted once, so two stores hold the same digest
//! exactly when they hold the same ids (up to a hash collision). It is a
//! fingerprint, not a security feature. Removals: see `remove.rs`.

use crate::erasure::config::SubjectType;
use crate::erasure::subject::normalize;
use crate::repo::manifest::ListState;
use chrono::{DateTime, Utc};
use rocksdb::{
    BlockBasedOptions, DB, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The newest store format this build reads. New stores are created as
/// version 2 and raised to 3 by their first removal (`remove.rs`), so an older
/// lethe keeps opening a list that never had one.
pub const STORE_VERSION: &str = "3";
/// The version a new store is created with.
pub(crate) const STORE_VERSION_NEW: &str = "2";

const K_VERSION: &[u8] = b"m:version";
const K_TYPE: &[u8] = b"m:subject_type";
const K_STATE: &[u8] = b"m:state";
const K_NEXT_BATCH: &[u8] = b"m:next_batch";
const K_LAST_SYNC: &[u8] = b"m:last_sync";
pub(crate) const P_ENTRY: &[u8] = b"e:";
const P_BATCH: &[u8] = b"b:";
const P_PENDING: &[u8] = b"p:";
const P_JOURNAL: &[u8] = b"j:";

/// Longest reference text accepted (a ticket id or a short note).
pub const MAX_REFERENCE: usize = 512;

#[derive(Debug, Clone, Copy)]
struct State {
    count: u64,
    digest: [u8; 32],
    pending: u64,
    next_batch: u64,
}

impl State {
    fn encode(&self) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[..8].copy_from_slice(&self.count.to_be_bytes());
        b[8..40].copy_from_slice(&self.digest);
        b[40..].copy_from_slice(&self.pending.to_be_bytes());
        b
    }

    fn list_state(&self) -> ListState {
        ListState {
            count: self.count,
            digest: hex::encode(self.digest),
        }
    }
}

/// The XOR term one id contributes to the digest.
pub fn digest_term(canonical: &str) -> [u8; 32] {
    *blake3::hash(canonical.as_bytes()).as_bytes()
}

fn xor_into(acc: &mut [u8; 32], t: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(t) {
        *a ^= b;
    }
}

/// The erasure list on disk. One process opens it for writing; writes inside
/// the process are serialised by a mutex so the count and digest stay exact.
pub struct ErasureStore {
    db: DB,
    path: PathBuf,
    subject_type: SubjectType,
    origin: String,
    read_only: bool,
    state: Mutex<State>,
    /// Serialises writers so count and digest stay exact.
    write_lock: Mutex<()>,
    /// Woken after every add that leaves entries pending (the journal worker waits on it).
    pub(crate) pending_notify: tokio::sync::Notify,
    /// Held by whoever uploads pending entries or merges the journal.
    pub(crate) journal_lock: tokio::sync::Mutex<()>,
    /// Removed on drop: the secondary instance's scratch directory.
    scratch: Option<PathBuf>,
    /// Table options for the SST files of bulk writes (as the store's).
    bulk_opts: Options,
}

impl std::fmt::Debug for ErasureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErasureStore")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl Drop for ErasureStore {
    fn drop(&mut self) {
        if let Some(dir) = self.scratch.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn type_name(t: SubjectType) -> &'static str {
    match t {
        SubjectType::Bigint => "bigint",
        SubjectType::Uuid => "uuid",
        SubjectType::Text => "text",
    }
}

/// The batch sequence key prefix: `b:<seq>`.
fn batch_key(seq: u64) -> Vec<u8> {
    let mut k = P_BATCH.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn entry_key(c: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + c.len());
    k.extend_from_slice(P_ENTRY);
    k.extend_from_slice(c.as_bytes());
    k
}

fn pending_key(seq: u64) -> Vec<u8> {
    let mut k = P_PENDING.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The first key after every key starting with `prefix` (prefixes end in ':').
fn upper_bound(prefix: &[u8]) -> Vec<u8> {
    let mut u = prefix.to_vec();
    if let Some(last) = u.last_mut() {
        *last += 1;
    }
    u
}

use crate::repo::holder::host_name;

impl ErasureStore {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn subject_type(&self) -> SubjectType {
        self.subject_type
    }

    /// True when opened as a read-only secondary (another process writes).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated:
        // it is only assigned after a successful write.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn io(&self, op: &'static str, e: rocksdb::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            op,
            message: e.to_string(),
        }
    }

    fn corrupt(&self, message: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn refuse_read_only(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::Locked {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Count and digest now.
    pub fn state(&self) -> ListState {
        self.lock_state().list_state()
    }

    /// Validates every id (all or nothing) and returns the canonical forms.
    ///
    /// # Errors
    /// `Invalid` listing each id that is not valid for the list's type.
    pub fn normalize_all<S: AsRef<str>>(&self, raw: &[S]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::with_capacity(raw.len());
        let mut errs = Vec::new();
        for r in raw {
            match normalize(self.subject_type, r.as_ref()) {
                Ok(c) => out.push(c),
                Err(e) => errs.push(e),
            }
        }
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(StoreError::Invalid(errs))
        }
    }

    /// Adds ids in one synced write; returns only once they are durable.
    /// Invalid ids refuse the whole call. Ids already listed are counted, not
    /// rewritten.
    ///
    /// # Errors
    /// Invalid ids or reference, a read-only store, a failed write.
    pub fn add<S: AsRef<str>>(
        &self,
        raw: &[S],
        reference: Option<&str>,
    ) -> Result<AddOutcome, StoreError> {
        self.refuse_read_only()?;
        if let Some(r) = reference
            && (r.len() > MAX_REFERENCE || r.contains(['\n', '\r']))
        {
            return Err(StoreError::BadReference(r.len()));
        }
        let canon = self.normalize_all(raw)?;
        let record = BatchRecord {
            added_at: Utc::now(),
            reference: reference.filter(|r| !r.is_empty()).map(str::to_string),
            origin: self.origin.clone(),
        };
        let outcome = self.insert(&[(record, canon)], true, None)?;
        if outcome.added > 0 {
            self.pending_notify.notify_one();
        }
        Ok(outcome)
    }

    /// Merges ids read from journal object `object` (already in storage, so
    /// not pending), and remembers the object as merged, in one atomic write.
    /// Returns how many ids were new here. The write is not synced on its own
    /// (a sync of many objects would wait for one fdatasync each): `sync`
    /// ends with a synced write that makes it durable, and merges lost to an
    /// OS crash before that are lost together with their object's marker, so
    /// the object counts as not merged (restores refuse) until merged again.
    ///
    /// # Errors
    /// Invalid ids, a failed write.
    pub fn merge_journal(
        &self,
        object: &str,
        groups: Vec<(BatchRecord, Vec<String>)>,
    ) -> Result<u64, StoreError> {
        Ok(self.merge_journal_with(object, groups, Vec::new())?.added)
    }

    /// [`Self::merge_journal`] for an object that also carries removals:
    /// for each id, the later of its add and its removal wins (`remove.rs`).
    ///
    /// # Errors
    /// Invalid ids, a failed write.
    pub fn merge_journal_with(
        &self,
        object: &str,
        groups: Vec<(BatchRecord, Vec<String>)>,
        removals: Vec<(RemovalRecord, Vec<String>)>,
    ) -> Result<MergeOutcome, StoreError> {
        self.refuse_read_only()?;
        let mut canon = Vec::with_capacity(groups.len());
        for (record, raw) in groups {
            canon.push((record, self.normalize_all(&raw)?));
        }
        let mut gone = Vec::with_capacity(removals.len());
        for (record, raw) in removals {
            gone.push((record, self.normalize_all(&raw)?));
        }
        // Removals first, then the adds no removal overrides, the second
        // write with the object's merged marker: a crash in between merges
        // the object again, and both steps are idempotent.
        let removed = self.merge_removals(&gone)?;
        let canon = self.drop_removed(canon)?;
        let added = self.insert(&canon, false, Some(object))?.added;
        Ok(MergeOutcome { added, removed })
    }

    fn write_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds groups of canonical ids, each group under its own batch record,
    /// as one atomic, durable write: a synced `WriteBatch` for small writes,
    /// one ingested SST file for bulk ones (see `bulk.rs`). Ids repeated in
    /// the input count once (the first group that names them wins); ids
    /// already listed are counted, not rewritten.
    fn insert(
        &self,
        groups: &[(BatchRecord, Vec<String>)],
        pending: bool,
        journal: Option<&str>,
    ) -> Result<AddOutcome, StoreError> {
        let _guard = self.write_guard();
        let mut st = *self.lock_state();
        let total: usize = groups.iter().map(|g| g.1.len()).sum();
        // Every id with its group, in key order; duplicates keep the lowest group.
        let mut all: Vec<(&str, u32)> = Vec::with_capacity(total);
        for (gi, (_, canon)) in groups.iter().enumerate() {
            let gi = u32::try_from(gi).map_err(|_| self.corrupt("too many groups in one write"))?;
            all.extend(canon.iter().map(|c| (c.as_str(), gi)));
        }
        all.sort_unstable();
        all.dedup_by(|later, kept| later.0 == kept.0);
        let listed = self.listed(&all, st.count)?;
        let mut fresh: Vec<(&str, u32)> = Vec::with_capacity(all.len());
        fresh.extend(
            all.iter()
                .zip(&listed)
                .filter(|(_, l)| !**l)
                .map(|(e, _)| *e),
        );
        drop(all);
        // One batch sequence number per group that adds something.
        let mut per_group = vec![0usize; groups.len()];
        for (c, gi) in &fresh {
            per_group[*gi as usize] += 1;
            xor_into(&mut st.digest, &digest_term(c));
        }
        let mut seqs = vec![0u64; groups.len()];
        for (gi, n) in per_group.iter().enumerate() {
            if *n > 0 {
                seqs[gi] = st.next_batch;
                st.next_batch += 1;
            }
        }
        let added = fresh.len() as u64;
        st.count += added;
        if pending {
            st.pending += added;
        }
        if added > 0 || journal.is_some() {
            let mut sink = if bulk::use_sst(fresh.len(), st.count) {
                bulk::Sink::sst(self)?
            } else {
                bulk::Sink::batch()
            };
            // Keys in byte order (an SST file requires it; the memtable
            // insert hint profits): b: < e: < j: < m:next_batch < m:state < p:.
            for (gi, (record, _)) in groups.iter().enumerate() {
                if per_group[gi] > 0 {
                    let json =
                        serde_json::to_vec(record).map_err(|e| self.corrupt(e.to_string()))?;
                    sink.put(self, &batch_key(seqs[gi]), &json)?;
                }
            }
            let mut key = Vec::with_capacity(64);
            for (c, gi) in &fresh {
                key.clear();
                key.extend_from_slice(P_ENTRY);
                key.extend_from_slice(c.as_bytes());
                sink.put(self, &key, &seqs[*gi as usize].to_be_bytes())?;
            }
            if let Some(name) = journal {
                let mut jkey = P_JOURNAL.to_vec();
                jkey.extend_from_slice(name.as_bytes());
                let v = format!(
                    "{{\"merged_at\":\"{}\",\"new_entries\":{added}}}",
                    Utc::now().to_rfc3339()
                );
                sink.put(self, &jkey, v.as_bytes())?;
            }
            sink.put(self, K_NEXT_BATCH, &st.next_batch.to_be_bytes())?;
            sink.put(self, K_STATE, &st.encode())?;
            if pending {
                // One pending record per batch (canonical ids never hold a
                // line break), its ids in key order.
                let mut text: Vec<Vec<u8>> = vec![Vec::new(); groups.len()];
                for (c, gi) in &fresh {
                    let t = &mut text[*gi as usize];
                    if !t.is_empty() {
                        t.push(b'\n');
                    }
                    t.extend_from_slice(c.as_bytes());
                }
                for (gi, t) in text.iter().enumerate() {
                    if per_group[gi] > 0 {
                        sink.put(self, &pending_key(seqs[gi]), t)?;
                    }
                }
            }
            sink.commit(self, pending)?;
            *self.lock_state() = st;
        }
        Ok(AddOutcome {
            added,
            already_listed: total as u64 - added,
            count: st.count,
            digest: hex::encode(st.digest),
            pending: st.pending,
        })
    }

    /// Writes the batch with the new state, synced, then publishes the state.
    fn commit(&self, mut batch: WriteBatch, st: State) -> Result<(), StoreError> {
        batch.put(K_STATE, st.encode());
        batch.put(K_NEXT_BATCH, st.next_batch.to_be_bytes());
        self.db
            .write_opt(batch, &synced())
            .map_err(|e| self.io("synced write", e))?;
        *self.lock_state() = st;
        Ok(())
    }

    /// Records that `chunk` is stored in journal object `object`: its ids are
    /// no longer pending, and the object need not be merged again.
    ///
    /// # Errors
    /// A failed write.
    pub fn mark_journaled(&self, object: &str, chunk: &PendingChunk) -> Result<(), StoreError> {
        self.refuse_read_only()?;
        let _guard = self.write_guard();
        let mut st = *self.lock_state();
        let mut batch = WriteBatch::default();
        let present = self.db.multi_get(&chunk.keys);
        for (k, got) in chunk.keys.iter().zip(present) {
            if let Some(ids) = got.map_err(|e| self.io("read", e))? {
                batch.delete(k);
                let n = ids.split(|&b| b == b'\n').count() as u64;
                st.pending = st.pending.saturating_sub(n);
            }
        }
        let mut jkey = P_JOURNAL.to_vec();
        jkey.extend_from_slice(object.as_bytes());
        batch.put(
            jkey,
            format!(
                "{{\"written_at\":\"{}\",\"entries\":{}}}",
                Utc::now().to_rfc3339(),
                chunk.len()
            ),
        );
        self.commit(batch, st)
    }

    /// Records the time of a complete sync, in a synced write: it also makes
    /// the sync's merges durable (they share the write-ahead log).
    ///
    /// # Errors
    /// A failed write.
    pub fn set_last_sync(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.refuse_read_only()?;
        let mut batch = WriteBatch::default();
        batch.put(K_LAST_SYNC, at.to_rfc3339());
        self.db
            .write_opt(batch, &synced())
            .map_err(|e| self.io("synced write", e))
    }
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    // Batches are staged in key order: each insert starts where the last one ended.
    w.set_memtable_insert_hint_per_batch(true);
    w
}

mod bulk;
mod open;
mod read;
mod remove;
mod types;

pub use remove::{PendingRemovals, RemovalInfo, RemovalRecord, RemoveOutcome};
pub use types::{
    AddOutcome, BatchRecord, EntryInfo, MergeOutcome, PendingChunk, StoreError, StoreStatus,
};

#[cfg(test)]
mod tests;
