//! Removals: the undo of a mistyped add (`lethe erase remove`).
//!
//! A removal deletes the ids' entries (count and digest follow: the XOR term
//! of each id is taken out again) and leaves a *tombstone* `r:<id>` with its
//! [`RemovalRecord`], so that every host agrees which of an add and a removal
//! of the same id came last: the one with the later time wins, an add on a
//! tie (fail closed). Merging an add older than an id's tombstone does not
//! list it again; an add after the removal does. A local removal also leaves
//! a pending record `q:<seq>` until the journal carries it.
//!
//! Times are the acknowledging hosts' clocks. One case is not exact: an
//! entry keeps only the first add that listed it here, so if two hosts add
//! the same id independently and one of them removes it in between, a third
//! host that merged the older add before the newer one may remove it while
//! the first two keep it (the newer add is not remembered there). The lists'
//! digests then differ, which `erase sync` output and manifests show; adding
//! the id again settles it everywhere.
//!
//! The first removal raises the store version to 3, so an older lethe, which
//! would not know tombstones, refuses the list instead of misreading it.

use super::*;
use serde::{Deserialize, Serialize};

pub(crate) const P_REMOVED: &[u8] = b"r:";
pub(crate) const P_PENDING_REMOVAL: &[u8] = b"q:";
/// The store version once a removal was recorded (see the module doc).
pub(crate) const VERSION_WITH_REMOVALS: &str = "3";

/// Who removed ids, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalRecord {
    pub removed_at: DateTime<Utc>,
    pub reason: String,
    /// Host name of the process that acknowledged the removal.
    pub origin: String,
}

/// One removed id with its record, as `erase list --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalInfo {
    pub subject: String,
    pub removed_at: DateTime<Utc>,
    pub reason: String,
    pub origin: String,
}

/// What a removal did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveOutcome {
    pub removed: u64,
    pub count: u64,
    pub digest: String,
}

/// Removals waiting for their journal upload.
#[derive(Debug, Default)]
pub struct PendingRemovals {
    pub groups: Vec<(RemovalRecord, Vec<String>)>,
    pub(crate) keys: Vec<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
struct PendingRemoval {
    record: RemovalRecord,
    subjects: Vec<String>,
}

fn key(prefix: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + tail.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(tail);
    k
}

impl ErasureStore {
    /// Removes listed ids in one synced write, all or nothing: an id that is
    /// not listed refuses the whole call (`NotListed`, naming each).
    ///
    /// # Errors
    /// Invalid ids, an empty or too long reason, ids not listed, a read-only
    /// store, a failed write.
    pub fn remove<S: AsRef<str>>(
        &self,
        raw: &[S],
        reason: &str,
    ) -> Result<RemoveOutcome, StoreError> {
        self.refuse_read_only()?;
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > MAX_REFERENCE || reason.contains(['\n', '\r']) {
            return Err(StoreError::BadReason(reason.len()));
        }
        let mut canon = self.normalize_all(raw)?;
        canon.sort_unstable();
        canon.dedup();
        let _guard = self.write_guard();
        let mut st = *self.lock_state();
        let mut missing = Vec::new();
        for c in &canon {
            if self
                .db
                .get(entry_key(c))
                .map_err(|e| self.io("read", e))?
                .is_none()
            {
                missing.push(c.clone());
            }
        }
        if !missing.is_empty() {
            return Err(StoreError::NotListed(missing));
        }
        let record = RemovalRecord {
            removed_at: Utc::now(),
            reason: reason.to_string(),
            origin: self.origin.clone(),
        };
        let json = serde_json::to_vec(&record).map_err(|e| self.corrupt(e.to_string()))?;
        let mut batch = WriteBatch::default();
        for c in &canon {
            batch.delete(entry_key(c));
            batch.put(key(P_REMOVED, c.as_bytes()), &json);
            xor_into(&mut st.digest, &digest_term(c));
            st.count -= 1;
        }
        let pending = PendingRemoval {
            record,
            subjects: canon.clone(),
        };
        let pjson = serde_json::to_vec(&pending).map_err(|e| self.corrupt(e.to_string()))?;
        batch.put(key(P_PENDING_REMOVAL, &st.next_batch.to_be_bytes()), pjson);
        st.next_batch += 1;
        batch.put(K_VERSION, VERSION_WITH_REMOVALS);
        self.commit(batch, st)?;
        self.pending_notify.notify_one();
        Ok(RemoveOutcome {
            removed: canon.len() as u64,
            count: st.count,
            digest: hex::encode(st.digest),
        })
    }

    /// The tombstone of one canonical id, if it was ever removed.
    fn tombstone(&self, c: &str) -> Result<Option<RemovalRecord>, StoreError> {
        self.db
            .get(key(P_REMOVED, c.as_bytes()))
            .map_err(|e| self.io("read", e))?
            .map(|v| {
                serde_json::from_slice(&v)
                    .map_err(|e| self.corrupt(format!("removal record of {c} is not valid: {e}")))
            })
            .transpose()
    }

    /// True when the store holds any tombstone (merges skip the look-ups
    /// otherwise, so a list that never had a removal merges as fast as before).
    fn has_tombstones(&self) -> Result<bool, StoreError> {
        Ok(self.scan(P_REMOVED).next().transpose()?.is_some())
    }

    /// Drops from journal add groups every id whose tombstone is newer than
    /// the add (the removal came last; a tie is an add).
    pub(super) fn drop_removed(
        &self,
        groups: Vec<(BatchRecord, Vec<String>)>,
    ) -> Result<Vec<(BatchRecord, Vec<String>)>, StoreError> {
        if !self.has_tombstones()? {
            return Ok(groups);
        }
        let mut out = Vec::with_capacity(groups.len());
        for (record, ids) in groups {
            let mut keep = Vec::with_capacity(ids.len());
            for c in ids {
                match self.tombstone(&c)? {
                    Some(t) if t.removed_at > record.added_at => {}
                    _ => keep.push(c),
                }
            }
            out.push((record, keep));
        }
        Ok(out)
    }

    /// Applies removals read from the journal (canonical ids): an entry
    /// added before the removal is deleted; the newest tombstone is
    /// kept. Not synced on its own (see `merge_journal`). Returns how many
    /// entries were removed here.
    pub(super) fn merge_removals(
        &self,
        removals: &[(RemovalRecord, Vec<String>)],
    ) -> Result<u64, StoreError> {
        if removals.is_empty() {
            return Ok(0);
        }
        let _guard = self.write_guard();
        let mut st = *self.lock_state();
        let mut batch = WriteBatch::default();
        let mut removed = 0u64;
        // Within one write, the newest removal of an id decides its tombstone.
        let mut newest: std::collections::BTreeMap<&str, &RemovalRecord> = Default::default();
        for (record, ids) in removals {
            for c in ids {
                let e = newest.entry(c.as_str()).or_insert(record);
                if record.removed_at > e.removed_at {
                    *e = record;
                }
            }
        }
        for (c, record) in newest {
            if let Some(v) = self.db.get(entry_key(c)).map_err(|e| self.io("read", e))? {
                let added = self.batch_record(self.seq_of(&v)?)?;
                if added.added_at < record.removed_at {
                    batch.delete(entry_key(c));
                    xor_into(&mut st.digest, &digest_term(c));
                    st.count -= 1;
                    removed += 1;
                }
            }
            let older = self
                .tombstone(c)?
                .is_none_or(|t| t.removed_at < record.removed_at);
            if older {
                let json = serde_json::to_vec(record).map_err(|e| self.corrupt(e.to_string()))?;
                batch.put(key(P_REMOVED, c.as_bytes()), json);
            }
        }
        batch.put(K_VERSION, VERSION_WITH_REMOVALS);
        batch.put(K_STATE, st.encode());
        self.db.write(batch).map_err(|e| self.io("write", e))?;
        *self.lock_state() = st;
        Ok(removed)
    }

    /// Every removal waiting for its journal upload.
    ///
    /// # Errors
    /// Read failure or a corrupt record.
    pub fn pending_removals(&self) -> Result<PendingRemovals, StoreError> {
        let mut out = PendingRemovals::default();
        for item in self.scan(P_PENDING_REMOVAL) {
            let (k, v) = item?;
            let p: PendingRemoval = serde_json::from_slice(&v)
                .map_err(|e| self.corrupt(format!("a pending removal is not valid: {e}")))?;
            out.groups.push((p.record, p.subjects));
            out.keys.push(key(P_PENDING_REMOVAL, &k));
        }
        Ok(out)
    }

    /// Records that `removals` are stored in journal object `object`.
    ///
    /// # Errors
    /// A failed write.
    pub fn mark_removals_journaled(
        &self,
        object: &str,
        removals: &PendingRemovals,
    ) -> Result<(), StoreError> {
        self.refuse_read_only()?;
        let _guard = self.write_guard();
        let mut batch = WriteBatch::default();
        for k in &removals.keys {
            batch.delete(k);
        }
        batch.put(
            key(P_JOURNAL, object.as_bytes()),
            format!(
                "{{\"written_at\":\"{}\",\"removals\":{}}}",
                Utc::now().to_rfc3339(),
                removals.groups.iter().map(|g| g.1.len()).sum::<usize>()
            ),
        );
        self.db
            .write_opt(batch, &synced())
            .map_err(|e| self.io("synced write", e))
    }

    /// Every tombstone, in canonical-id byte order (the removal history).
    ///
    /// # Errors
    /// Read failure or a corrupt record.
    pub fn removals(&self) -> Result<Vec<RemovalInfo>, StoreError> {
        let mut out = Vec::new();
        for item in self.scan(P_REMOVED) {
            let (k, v) = item?;
            let subject = String::from_utf8(k.to_vec())
                .map_err(|_| self.corrupt("a removal key is not UTF-8"))?;
            let r: RemovalRecord = serde_json::from_slice(&v).map_err(|e| {
                self.corrupt(format!("removal record of {subject} is not valid: {e}"))
            })?;
            out.push(RemovalInfo {
                subject,
                removed_at: r.removed_at,
                reason: r.reason,
                origin: r.origin,
            });
        }
        Ok(out)
    }
}
