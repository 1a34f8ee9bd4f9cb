//! The durable erasure list: a RocksDB database at `erasure.path`.
//!
//! Every write is one `WriteBatch` written with `sync = true` before the caller
//! is told it succeeded (promise 5). Layout, all in the default column family:
//!
//! | key                         | value                                              |
//! |-----------------------------|----------------------------------------------------|
//! | `m:version`                 | `1` (a store of another version is refused)        |
//! | `m:subject_type`            | `bigint` / `uuid` / `text` (fixed at creation)     |
//! | `m:state`                   | count (u64 BE) · digest (32 B) · pending (u64 BE)  |
//! | `m:next_batch`              | next batch sequence number (u64 BE)                |
//! | `m:last_sync`               | RFC 3339 time of the last complete `sync`          |
//! | `e:<canonical id>`          | batch sequence (u64 BE) that added it              |
//! | `b:<seq u64 BE>`            | JSON [`BatchRecord`]: added_at, reference, origin  |
//! | `p:<seq u64 BE><canonical>` | empty: acknowledged, not yet journaled to storage  |
//! | `j:<journal object name>`   | JSON: a journal object already merged or written   |
//!
//! An entry's added_at/reference/origin are shared by every id added in the
//! same write, so they are stored once per batch; entries stay 8 bytes, which
//! keeps the store small and the restore-time scan fast.
//!
//! **Digest.** The list state is `count` plus the XOR of BLAKE3(canonical id)
//! over every entry, as 64 hex digits (all zeros for the empty list). XOR is
//! order independent, and since the set only grows and each id is added once,
//! two stores hold the same digest exactly when they hold the same ids (up to
//! a hash collision). It is a fingerprint, not a security feature.

use crate::config::SubjectType;
use crate::erasure::subject::{SubjectError, normalize};
use crate::snapshot::manifest::ListState;
use chrono::{DateTime, Utc};
use rocksdb::{BlockBasedOptions, DB, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The store format this build writes and reads.
pub const STORE_VERSION: &str = "1";

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the erasure list at {path} is locked by another process (a running `lethe daemon` or another `lethe erase`); use the daemon's API or wait for the other command to finish"
    )]
    Locked { path: PathBuf },
    #[error("no erasure list at {path}; run `lethe erase sync` to build it from the journal in storage")]
    Missing { path: PathBuf },
    #[error("cannot open the erasure list at {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("the erasure list at {path} has store version {found}, which this lethe does not know (it reads version {STORE_VERSION}); use a matching lethe release")]
    UnknownVersion { path: PathBuf, found: String },
    #[error("the erasure list at {path} is corrupt: {message}; move it aside and run `lethe erase sync` to rebuild it from storage")]
    Corrupt { path: PathBuf, message: String },
    #[error("the erasure list at {path} holds {store} ids but erasure.subject_type = {config}; a list cannot change type, point erasure.path elsewhere")]
    TypeMismatch { path: PathBuf, store: String, config: String },
    #[error("{}", invalid_message(.0))]
    Invalid(Vec<SubjectError>),
    #[error("reference is too long ({0} bytes, at most {MAX_REFERENCE}) or contains a line break")]
    BadReference(usize),
    #[error("erasure list at {path}: {op} failed: {message}")]
    Io { path: PathBuf, op: &'static str, message: String },
}

fn invalid_message(errs: &[SubjectError]) -> String {
    let mut s = errs.iter().take(5).map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
    if errs.len() > 5 {
        s.push_str(&format!("; and {} more", errs.len() - 5));
    }
    format!("{s} (nothing was added)")
}

/// Who added a batch of ids, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub added_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Host name of the process that first acknowledged the ids.
    pub origin: String,
}

/// One listed id with its record, as `erase check` and `erase list` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    pub subject: String,
    pub added_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub origin: String,
    /// False while the entry waits for its journal upload.
    pub journaled: bool,
}

/// What an add did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOutcome {
    /// Ids newly listed by this call.
    pub added: u64,
    /// Ids that were listed already (or repeated in the input).
    pub already_listed: u64,
    pub count: u64,
    pub digest: String,
    /// Acknowledged entries not yet in the journal in storage.
    pub pending: u64,
}

/// The list's summary, as `GET /v1/status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub path: PathBuf,
    pub subject_type: SubjectType,
    pub count: u64,
    pub digest: String,
    pub pending: u64,
    pub last_sync: Option<DateTime<Utc>>,
}

/// Ids waiting for their journal upload, grouped by the batch that added them.
#[derive(Debug, Default)]
pub struct PendingChunk {
    pub groups: Vec<(BatchRecord, Vec<String>)>,
    pub(crate) keys: Vec<Vec<u8>>,
}

impl PendingChunk {
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

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
        ListState { count: self.count, digest: hex::encode(self.digest) }
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
}

impl std::fmt::Debug for ErasureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErasureStore").field("path", &self.path).field("read_only", &self.read_only).finish()
    }
}

impl Drop for ErasureStore {
    fn drop(&mut self) {
        if let Some(dir) = self.scratch.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn db_options() -> Options {
    let mut opts = Options::default();
    let mut table = BlockBasedOptions::default();
    // Most ids an add or a merge checks are new: the bloom filter answers
    // "absent" without reading a block.
    table.set_bloom_filter(10.0, false);
    opts.set_block_based_table_factory(&table);
    opts.set_keep_log_file_num(4);
    opts.set_paranoid_checks(true);
    opts
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

fn pending_key(seq: u64, c: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + c.len());
    k.extend_from_slice(P_PENDING);
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(c.as_bytes());
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

/// This host's name, recorded as the origin of the ids it acknowledges.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // (or truncates) within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Ok(s) = std::str::from_utf8(&buf[..end]) {
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    "unknown".into()
}

impl ErasureStore {
    /// Opens the list for writing, creating it when absent.
    ///
    /// # Errors
    /// Locked by another process, unknown version, corrupt, other subject type.
    pub fn open(path: &Path, subject_type: SubjectType) -> Result<Self, StoreError> {
        Self::open_inner(path, subject_type, true)
    }

    /// Opens an existing list for writing; a missing one is an error (a
    /// restore must never run against a list it just created empty).
    ///
    /// # Errors
    /// As [`ErasureStore::open`], plus `Missing`.
    pub fn open_existing(path: &Path, subject_type: SubjectType) -> Result<Self, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Missing { path: path.to_path_buf() });
        }
        Self::open_inner(path, subject_type, false)
    }

    /// Opens an existing list for a restore: for writing when free, else as a
    /// read-only secondary of the process that holds it (the daemon), caught
    /// up to its latest synced write.
    ///
    /// # Errors
    /// As [`ErasureStore::open_existing`].
    pub fn open_for_restore(path: &Path, subject_type: SubjectType) -> Result<Self, StoreError> {
        match Self::open_existing(path, subject_type) {
            Err(StoreError::Locked { .. }) => Self::open_secondary(path, subject_type),
            other => other,
        }
    }

    fn open_secondary(path: &Path, subject_type: SubjectType) -> Result<Self, StoreError> {
        let scratch = std::env::temp_dir().join(format!("lethe-erasure-secondary-{}-{:08x}", std::process::id(), rand::random::<u32>()));
        let mut opts = db_options();
        opts.set_max_open_files(-1);
        let db = DB::open_as_secondary(&opts, path, &scratch).map_err(|e| open_error(path, e))?;
        db.try_catch_up_with_primary().map_err(|e| open_error(path, e))?;
        Self::finish_open(db, path, subject_type, true, Some(scratch))
    }

    fn open_inner(path: &Path, subject_type: SubjectType, create: bool) -> Result<Self, StoreError> {
        if create {
            std::fs::create_dir_all(path).map_err(|e| StoreError::Open { path: path.to_path_buf(), message: e.to_string() })?;
        }
        let mut opts = db_options();
        opts.create_if_missing(create);
        let db = DB::open(&opts, path).map_err(|e| open_error(path, e))?;
        Self::finish_open(db, path, subject_type, false, None)
    }

    fn finish_open(db: DB, path: &Path, subject_type: SubjectType, read_only: bool, scratch: Option<PathBuf>) -> Result<Self, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt { path: path.to_path_buf(), message };
        let io = |op, e: rocksdb::Error| StoreError::Io { path: path.to_path_buf(), op, message: e.to_string() };
        let version = db.get(K_VERSION).map_err(|e| io("read", e))?;
        match version {
            None => {
                let empty = db.iterator(IteratorMode::Start).next().is_none();
                if !empty {
                    return Err(corrupt("it has data but no version marker (is this directory a Lethe erasure list?)".into()));
                }
                if read_only {
                    return Err(corrupt("it is not initialised".into()));
                }
                let mut batch = WriteBatch::default();
                batch.put(K_VERSION, STORE_VERSION);
                batch.put(K_TYPE, type_name(subject_type));
                let st = State { count: 0, digest: [0; 32], pending: 0, next_batch: 1 };
                batch.put(K_STATE, st.encode());
                batch.put(K_NEXT_BATCH, st.next_batch.to_be_bytes());
                db.write_opt(batch, &synced()).map_err(|e| io("initialise", e))?;
            }
            Some(v) if v == STORE_VERSION.as_bytes() => {}
            Some(v) => {
                return Err(StoreError::UnknownVersion { path: path.to_path_buf(), found: String::from_utf8_lossy(&v).into_owned() });
            }
        }
        let stored_type = db.get(K_TYPE).map_err(|e| io("read", e))?.ok_or_else(|| corrupt("the subject type marker is missing".into()))?;
        if stored_type != type_name(subject_type).as_bytes() {
            return Err(StoreError::TypeMismatch {
                path: path.to_path_buf(),
                store: String::from_utf8_lossy(&stored_type).into_owned(),
                config: type_name(subject_type).into(),
            });
        }
        let raw = db.get(K_STATE).map_err(|e| io("read", e))?.ok_or_else(|| corrupt("the list state record is missing".into()))?;
        let next = db.get(K_NEXT_BATCH).map_err(|e| io("read", e))?.ok_or_else(|| corrupt("the batch counter is missing".into()))?;
        if raw.len() != 48 || next.len() != 8 {
            return Err(corrupt("the list state record has the wrong size".into()));
        }
        let u64_at = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&raw[8..40]);
        let state = State { count: u64_at(&raw[..8]), digest, pending: u64_at(&raw[40..]), next_batch: u64_at(&next) };
        Ok(Self {
            db,
            path: path.to_path_buf(),
            subject_type,
            origin: host_name(),
            read_only,
            state: Mutex::new(state),
            write_lock: Mutex::new(()),
            pending_notify: tokio::sync::Notify::new(),
            journal_lock: tokio::sync::Mutex::new(()),
            scratch,
        })
    }

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
        StoreError::Io { path: self.path.clone(), op, message: e.to_string() }
    }

    fn corrupt(&self, message: impl Into<String>) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), message: message.into() }
    }

    fn refuse_read_only(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::Locked { path: self.path.clone() });
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
        if errs.is_empty() { Ok(out) } else { Err(StoreError::Invalid(errs)) }
    }

    /// Adds ids in one synced write; returns only once they are durable.
    /// Invalid ids refuse the whole call. Ids already listed are counted, not
    /// rewritten.
    ///
    /// # Errors
    /// Invalid ids or reference, a read-only store, a failed write.
    pub fn add<S: AsRef<str>>(&self, raw: &[S], reference: Option<&str>) -> Result<AddOutcome, StoreError> {
        self.refuse_read_only()?;
        if let Some(r) = reference {
            if r.len() > MAX_REFERENCE || r.contains(['\n', '\r']) {
                return Err(StoreError::BadReference(r.len()));
            }
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
    /// not pending), and remembers the object as merged, in one synced write.
    /// Returns how many ids were new here.
    ///
    /// # Errors
    /// Invalid ids, a failed write.
    pub fn merge_journal(&self, object: &str, groups: Vec<(BatchRecord, Vec<String>)>) -> Result<u64, StoreError> {
        self.refuse_read_only()?;
        let mut canon = Vec::with_capacity(groups.len());
        for (record, raw) in groups {
            canon.push((record, self.normalize_all(&raw)?));
        }
        Ok(self.insert(&canon, false, Some(object))?.added)
    }

    fn write_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stages and commits groups of canonical ids in one synced write.
    fn insert(&self, groups: &[(BatchRecord, Vec<String>)], pending: bool, journal: Option<&str>) -> Result<AddOutcome, StoreError> {
        let _guard = self.write_guard();
        let mut st = *self.lock_state();
        let mut batch = WriteBatch::default();
        let total: usize = groups.iter().map(|g| g.1.len()).sum();
        let mut seen = HashSet::with_capacity(total);
        let mut added = 0;
        for (record, canon) in groups {
            added += self.stage(&mut batch, &mut st, &mut seen, canon, record, pending)?;
        }
        if let Some(name) = journal {
            let mut jkey = P_JOURNAL.to_vec();
            jkey.extend_from_slice(name.as_bytes());
            batch.put(jkey, format!("{{\"merged_at\":\"{}\",\"new_entries\":{added}}}", Utc::now().to_rfc3339()));
        }
        if added > 0 || journal.is_some() {
            self.commit(batch, st)?;
        }
        Ok(AddOutcome {
            added,
            already_listed: total as u64 - added,
            count: st.count,
            digest: hex::encode(st.digest),
            pending: st.pending,
        })
    }

    /// Puts the new ids of one batch into `batch`, updating `st`. Returns how many were new.
    fn stage<'a>(&self, batch: &mut WriteBatch, st: &mut State, seen: &mut HashSet<&'a str>, canon: &'a [String], record: &BatchRecord, pending: bool) -> Result<u64, StoreError> {
        let fresh: Vec<&str> = canon.iter().map(String::as_str).filter(|c| seen.insert(c)).collect();
        let keys: Vec<Vec<u8>> = fresh.iter().map(|c| entry_key(c)).collect();
        let found = self.db.multi_get(&keys);
        let seq = st.next_batch;
        let seq_bytes = seq.to_be_bytes();
        let mut added = 0u64;
        for ((c, key), got) in fresh.iter().zip(keys).zip(found) {
            if got.map_err(|e| self.io("read", e))?.is_some() {
                continue;
            }
            batch.put(key, seq_bytes);
            if pending {
                batch.put(pending_key(seq, c), b"");
            }
            xor_into(&mut st.digest, &digest_term(c));
            added += 1;
        }
        if added > 0 {
            let json = serde_json::to_vec(record).map_err(|e| self.corrupt(e.to_string()))?;
            batch.put(batch_key(seq), json);
            st.count += added;
            if pending {
                st.pending += added;
            }
            st.next_batch += 1;
        }
        Ok(added)
    }

    /// Writes the batch with the new state, synced, then publishes the state.
    fn commit(&self, mut batch: WriteBatch, st: State) -> Result<(), StoreError> {
        batch.put(K_STATE, st.encode());
        batch.put(K_NEXT_BATCH, st.next_batch.to_be_bytes());
        self.db.write_opt(batch, &synced()).map_err(|e| self.io("synced write", e))?;
        *self.lock_state() = st;
        Ok(())
    }

    /// One id's entry, `None` when not listed.
    ///
    /// # Errors
    /// Invalid id, read failure, a dangling batch reference.
    pub fn get(&self, raw: &str) -> Result<Option<EntryInfo>, StoreError> {
        let c = normalize(self.subject_type, raw).map_err(|e| StoreError::Invalid(vec![e]))?;
        let Some(v) = self.db.get(entry_key(&c)).map_err(|e| self.io("read", e))? else {
            return Ok(None);
        };
        let seq = self.seq_of(&v)?;
        let record = self.batch_record(seq)?;
        let journaled = self.db.get(pending_key(seq, &c)).map_err(|e| self.io("read", e))?.is_none();
        Ok(Some(EntryInfo { subject: c, added_at: record.added_at, reference: record.reference, origin: record.origin, journaled }))
    }

    fn seq_of(&self, v: &[u8]) -> Result<u64, StoreError> {
        let b: [u8; 8] = v.try_into().map_err(|_| self.corrupt("an entry has a malformed batch reference"))?;
        Ok(u64::from_be_bytes(b))
    }

    fn batch_record(&self, seq: u64) -> Result<BatchRecord, StoreError> {
        let raw = self.db.get(batch_key(seq)).map_err(|e| self.io("read", e))?.ok_or_else(|| self.corrupt(format!("batch record {seq} is missing")))?;
        serde_json::from_slice(&raw).map_err(|e| self.corrupt(format!("batch record {seq} is not valid: {e}")))
    }

    /// An iterator over every key with `prefix`, in key order, on a consistent snapshot.
    pub(crate) fn scan(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), StoreError>> + '_ {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(upper_bound(prefix));
        ro.fill_cache(false);
        ro.set_readahead_size(2 << 20);
        let plen = prefix.len();
        self.db
            .iterator_opt(IteratorMode::From(prefix, Direction::Forward), ro)
            .map(move |r| r.map(|(k, v)| (k[plen..].into(), v)).map_err(|e| StoreError::Io { path: self.path.clone(), op: "scan", message: e.to_string() }))
    }

    /// Calls `f` with every entry, in canonical-id byte order.
    ///
    /// # Errors
    /// Read failure or a corrupt record; whatever `f` returns.
    pub fn for_each_entry(&self, mut f: impl FnMut(EntryInfo) -> Result<(), StoreError>) -> Result<u64, StoreError> {
        let mut records: std::collections::HashMap<u64, BatchRecord> = std::collections::HashMap::new();
        let pending: HashSet<Box<[u8]>> = self.scan(P_PENDING).map(|r| r.map(|(k, _)| k)).collect::<Result<_, _>>()?;
        let mut n = 0;
        for item in self.scan(P_ENTRY) {
            let (k, v) = item?;
            let seq = self.seq_of(&v)?;
            if !records.contains_key(&seq) {
                records.insert(seq, self.batch_record(seq)?);
            }
            let record = &records[&seq];
            let subject = String::from_utf8(k.to_vec()).map_err(|_| self.corrupt("an entry key is not UTF-8"))?;
            let journaled = !pending.contains(&pending_key(seq, &subject)[P_PENDING.len()..]);
            f(EntryInfo { subject, added_at: record.added_at, reference: record.reference.clone(), origin: record.origin.clone(), journaled })?;
            n += 1;
        }
        Ok(n)
    }

    /// Up to `limit` pending ids, oldest batch first.
    ///
    /// # Errors
    /// Read failure or a corrupt record.
    pub fn pending_chunk(&self, limit: usize) -> Result<PendingChunk, StoreError> {
        let mut chunk = PendingChunk::default();
        let mut current: Option<u64> = None;
        for item in self.scan(P_PENDING).take(limit) {
            let (k, _) = item?;
            if k.len() < 8 {
                return Err(self.corrupt("a pending key is malformed"));
            }
            let seq = self.seq_of(&k[..8])?;
            let subject = String::from_utf8(k[8..].to_vec()).map_err(|_| self.corrupt("a pending key is not UTF-8"))?;
            if current != Some(seq) {
                chunk.groups.push((self.batch_record(seq)?, Vec::new()));
                current = Some(seq);
            }
            if let Some(g) = chunk.groups.last_mut() {
                g.1.push(subject);
            }
            let mut full = P_PENDING.to_vec();
            full.extend_from_slice(&k);
            chunk.keys.push(full);
        }
        Ok(chunk)
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
            if got.map_err(|e| self.io("read", e))?.is_some() {
                batch.delete(k);
                st.pending = st.pending.saturating_sub(1);
            }
        }
        let mut jkey = P_JOURNAL.to_vec();
        jkey.extend_from_slice(object.as_bytes());
        batch.put(jkey, format!("{{\"written_at\":\"{}\",\"entries\":{}}}", Utc::now().to_rfc3339(), chunk.len()));
        self.commit(batch, st)
    }

    /// Names of the journal objects this list has merged or written.
    ///
    /// # Errors
    /// Read failure.
    pub fn merged_objects(&self) -> Result<HashSet<String>, StoreError> {
        self.scan(P_JOURNAL).map(|r| r.map(|(k, _)| String::from_utf8_lossy(&k).into_owned())).collect()
    }

    /// Records the time of a complete sync.
    ///
    /// # Errors
    /// A failed write.
    pub fn set_last_sync(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.refuse_read_only()?;
        let mut batch = WriteBatch::default();
        batch.put(K_LAST_SYNC, at.to_rfc3339());
        self.db.write_opt(batch, &synced()).map_err(|e| self.io("synced write", e))
    }

    /// The summary shown by `GET /v1/status`.
    ///
    /// # Errors
    /// Read failure.
    pub fn status(&self) -> Result<StoreStatus, StoreError> {
        let st = *self.lock_state();
        let last_sync = self
            .db
            .get(K_LAST_SYNC)
            .map_err(|e| self.io("read", e))?
            .and_then(|v| DateTime::parse_from_rfc3339(&String::from_utf8_lossy(&v)).ok())
            .map(|t| t.with_timezone(&Utc));
        Ok(StoreStatus {
            path: self.path.clone(),
            subject_type: self.subject_type,
            count: st.count,
            digest: hex::encode(st.digest),
            pending: st.pending,
            last_sync,
        })
    }

    /// Recomputes count and digest from the entries and compares them with
    /// the stored state (a full scan: for `verify`-style checks and tests).
    ///
    /// # Errors
    /// `Corrupt` when they differ.
    pub fn verify_state(&self) -> Result<ListState, StoreError> {
        let mut digest = [0u8; 32];
        let mut count = 0u64;
        for item in self.scan(P_ENTRY) {
            let (k, _) = item?;
            let s = std::str::from_utf8(&k).map_err(|_| self.corrupt("an entry key is not UTF-8"))?;
            xor_into(&mut digest, &digest_term(s));
            count += 1;
        }
        let want = self.state();
        let got = ListState { count, digest: hex::encode(digest) };
        if got != want {
            return Err(self.corrupt(format!("the entries give count {} digest {}, but the state record says count {} digest {}", got.count, got.digest, want.count, want.digest)));
        }
        Ok(got)
    }

    /// Catches a secondary up with the writer's latest synced write.
    ///
    /// # Errors
    /// Read failure.
    pub fn catch_up(&self) -> Result<(), StoreError> {
        if self.read_only {
            self.db.try_catch_up_with_primary().map_err(|e| self.io("catch up", e))?;
        }
        Ok(())
    }
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

fn open_error(path: &Path, e: rocksdb::Error) -> StoreError {
    let msg = e.to_string();
    if msg.contains("lock") && (msg.contains("Resource temporarily unavailable") || msg.contains("No locks available") || msg.contains("LOCK")) {
        return StoreError::Locked { path: path.to_path_buf() };
    }
    match e.kind() {
        rocksdb::ErrorKind::Corruption => StoreError::Corrupt { path: path.to_path_buf(), message: msg },
        rocksdb::ErrorKind::InvalidArgument if !path.join("CURRENT").exists() => StoreError::Missing { path: path.to_path_buf() },
        _ => StoreError::Open { path: path.to_path_buf(), message: msg },
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
