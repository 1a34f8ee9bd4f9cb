//! Where the replay's delta lives: a temporary RocksDB in a fresh 0700
//! directory, removed when the restore ends (a killed restore leaves it
//! unreadable: see below). Memory stays flat however many rows the window
//! touched; RocksDB's bloom filters make the lookup of a base row that the
//! delta does not hold (the common case) cheap.
//!
//! The rows are personal data, erased subjects' included, on the host's
//! disk until the filter has run: every value is sealed with AES-256-GCM
//! (ring's, on the CPU's AES instructions) under a key made for this
//! restore and kept only in memory, and every key is a keyed BLAKE3 hash
//! (under another such key) of the table and the row's identity. So
//! nothing readable is left on disk, even by a restore killed before it
//! could remove its directory.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use rocksdb::{BlockBasedOptions, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes of puts gathered before they are written as one batch: one trip
/// through RocksDB's write path for many rows instead of one each, in key
/// order (see [`DeltaDb::settle`]).
const BATCH_BYTES: usize = 1 << 20;

/// Length of a stored key: table (4), kind (1), hash (16).
pub const KEY_LEN: usize = 21;

/// A stored key.
pub type Key = [u8; KEY_LEN];

/// Stored keys with their opened values, in key order.
pub type Scanned = Vec<(Vec<u8>, Vec<u8>)>;

/// A failure of the temporary store, naming what it did.
#[derive(Debug, thiserror::Error)]
#[error("the replay's temporary store ({what}): {message}")]
pub struct StoreError {
    pub what: &'static str,
    pub message: String,
}

fn err(what: &'static str) -> impl Fn(rocksdb::Error) -> StoreError {
    move |e| StoreError {
        what,
        message: e.to_string(),
    }
}

/// Puts gathered for one write.
#[derive(Default)]
struct Pending {
    rows: Vec<(Vec<u8>, Vec<u8>)>,
    bytes: usize,
}

/// The sealed temporary store.
pub struct DeltaDb {
    db: DB,
    cipher: LessSafeKey,
    hash_key: [u8; 32],
    nonce: AtomicU64,
    write: WriteOptions,
    /// Puts not yet written; every read writes them first, so a read sees
    /// every earlier put.
    pending: Mutex<Pending>,
    /// Whether `pending` may hold puts: reads after pass A skip its lock.
    dirty: AtomicBool,
    // Dropped last: removes the directory.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for DeltaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeltaDb")
    }
}

impl DeltaDb {
    /// A new store in a fresh directory under `parent` (the system's
    /// temporary directory when `None`).
    ///
    /// # Errors
    /// The directory or the database cannot be made.
    pub fn create(parent: Option<&std::path::Path>) -> Result<DeltaDb, StoreError> {
        let dir = match parent {
            Some(p) => tempfile::Builder::new()
                .prefix("lethe-replay-")
                .tempdir_in(p),
            None => tempfile::Builder::new().prefix("lethe-replay-").tempdir(),
        }
        .map_err(|e| StoreError {
            what: "creating its directory",
            message: e.to_string(),
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        // Small memtables: each sorted batch lands in a shallower skip list,
        // and the flushes run on RocksDB's own thread beside the replay
        // (8 MB: wall 0.91x, CPU 0.96x, peak RSS 85 vs 99 MiB against 32 MB;
        // 2 and 4 MB spend more CPU; BENCHMARKS.md, pass J).
        opts.set_write_buffer_size(8 << 20);
        opts.set_max_write_buffer_number(2);
        // RocksDB's default skip-list memtable, fed sorted batches (see
        // `settle`): faster than a hash of skip lists fed row by row, whose
        // flush must sort every entry (BENCHMARKS.md, pass I).
        // Values are sealed: nothing for a compressor to find.
        opts.set_compression_type(rocksdb::DBCompressionType::None);
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        let db = DB::open(&opts, dir.path()).map_err(err("opening"))?;
        let mut write = WriteOptions::default();
        // Nothing survives the restore: no log to replay after a crash.
        write.disable_wal(true);
        let key: [u8; 32] = rand::random();
        let hash_key: [u8; 32] = rand::random();
        let cipher = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| StoreError {
            what: "making its key",
            message: "ring refused a 32-byte AES-256-GCM key".into(),
        })?;
        Ok(DeltaDb {
            db,
            cipher: LessSafeKey::new(cipher),
            hash_key,
            nonce: AtomicU64::new(0),
            write,
            pending: Mutex::new(Pending::default()),
            dirty: AtomicBool::new(false),
            _dir: dir,
        })
    }

    /// The stored key of `bytes` of `kind` in `table`.
    pub fn key(&self, table: u32, kind: u8, bytes: &[u8]) -> Key {
        let mut h = blake3::Hasher::new_keyed(&self.hash_key);
        h.update(&table.to_be_bytes());
        h.update(&[kind]);
        h.update(bytes);
        let mut k = [0u8; KEY_LEN];
        k[..4].copy_from_slice(&table.to_be_bytes());
        k[4] = kind;
        k[5..].copy_from_slice(&h.finalize().as_bytes()[..16]);
        k
    }

    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let n = self.nonce.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        // A counter nonce under a key of this restore's: never used twice.
        let tag = self
            .cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| StoreError {
                what: "sealing a row",
                message: "AES-256-GCM refused the value".into(),
            })?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let bad = |message: &str| StoreError {
            what: "reading a row back",
            message: message.into(),
        };
        let (nonce, body) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or_else(|| bad("a value shorter than its nonce"))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| bad("a value shorter than its nonce"))?;
        let mut body = body.to_vec();
        let plain_len = self
            .cipher
            .open_in_place(nonce, Aad::empty(), &mut body)
            .map_err(|_| bad("a value that does not open under this restore's key (damaged)"))?
            .len();
        body.truncate(plain_len);
        Ok(body)
    }

    /// The puts not yet written, locked.
    fn pending(&self) -> Result<std::sync::MutexGuard<'_, Pending>, StoreError> {
        self.pending.lock().map_err(|_| StoreError {
            what: "writing",
            message: "a writer panicked".into(),
        })
    }

    /// Writes the puts gathered so far, in one batch.
    fn settle(&self) -> Result<(), StoreError> {
        if !self.dirty.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut pending = self.pending()?;
        // Written under the lock, and marked clean only once written: a
        // read that finds it clean finds every put in RocksDB.
        let mut puts = std::mem::take(&mut *pending);
        if !puts.rows.is_empty() {
            // In key order, each insertion into the memtable's skip list
            // starts where the one before it ended: keys are hashes, so
            // unsorted each would search the whole list (`perf`: its
            // largest cost). A stable sort: of two puts of one key, the
            // later is written later and wins.
            puts.rows.sort_by(|a, b| a.0.cmp(&b.0));
            let mut batch = WriteBatch::default();
            for (k, v) in &puts.rows {
                batch.put(k, v);
            }
            self.db
                .write_opt(batch, &self.write)
                .map_err(err("writing"))?;
        }
        self.dirty.store(false, Ordering::Release);
        Ok(())
    }

    /// Stores `plain` under `key`.
    ///
    /// # Errors
    /// RocksDB failed (the disk is full, say).
    pub fn put(&self, key: &[u8], plain: &[u8]) -> Result<(), StoreError> {
        let sealed = self.seal(plain)?;
        let full = {
            let mut pending = self.pending()?;
            pending.bytes += key.len() + sealed.len();
            pending.rows.push((key.to_vec(), sealed));
            self.dirty.store(true, Ordering::Release);
            pending.bytes >= BATCH_BYTES
        };
        if full { self.settle() } else { Ok(()) }
    }

    /// The value under `key`, if any.
    ///
    /// # Errors
    /// RocksDB failed, or a value does not open.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.settle()?;
        match self.db.get_pinned(key).map_err(err("reading"))? {
            None => Ok(None),
            Some(v) => self.open(&v).map(Some),
        }
    }

    /// Writes what RocksDB holds in memory to its table files, where bloom
    /// filters answer most lookups of keys it does not hold (a memtable
    /// lookup walks a skip list): done once the replay is written, before
    /// pass B looks up every base row.
    ///
    /// # Errors
    /// RocksDB failed.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.settle()?;
        self.db.flush().map_err(err("flushing"))
    }

    /// Whether a value is stored under `key` (it is not opened).
    ///
    /// # Errors
    /// RocksDB failed.
    pub fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        self.settle()?;
        Ok(self.db.get_pinned(key).map_err(err("reading"))?.is_some())
    }

    /// Removes every key of `kind` in `table`.
    ///
    /// # Errors
    /// RocksDB failed.
    pub fn delete_all(&self, table: u32, kind: u8) -> Result<(), StoreError> {
        self.settle()?;
        let (from, to) = bounds(table, kind);
        let mut batch = WriteBatch::default();
        batch.delete_range(from, to);
        self.db
            .write_opt(batch, &self.write)
            .map_err(err("deleting a table's rows"))
    }

    /// Up to `max` keys and opened values of `kind` in `table`, in key
    /// order, starting after `after` (from the first when `None`).
    ///
    /// # Errors
    /// RocksDB failed, or a value does not open.
    pub fn scan(
        &self,
        table: u32,
        kind: u8,
        after: Option<&[u8]>,
        max: usize,
    ) -> Result<Scanned, StoreError> {
        self.scan_prefix(&bounds(table, kind).0, after, max)
    }

    /// As [`DeltaDb::scan`], for every key that starts with `prefix`.
    ///
    /// # Errors
    /// RocksDB failed, or a value does not open.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        max: usize,
    ) -> Result<Scanned, StoreError> {
        self.settle()?;
        let start = after.unwrap_or(prefix);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(start, Direction::Forward))
        {
            let (k, v) = item.map_err(err("listing"))?;
            if !k.starts_with(prefix) || out.len() >= max {
                break;
            }
            if after.is_some_and(|a| &*k == a) {
                continue;
            }
            out.push((k.to_vec(), self.open(&v)?));
        }
        Ok(out)
    }
}

/// The key range of `kind` in `table`: `[table kind, table kind+1)`.
fn bounds(table: u32, kind: u8) -> (Vec<u8>, Vec<u8>) {
    let mut from = table.to_be_bytes().to_vec();
    from.push(kind);
    let mut to = table.to_be_bytes().to_vec();
    to.push(kind + 1);
    (from, to)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
