//! Where the replay's delta lives: a temporary RocksDB in a fresh 0700
//! directory, removed when the restore ends (a killed restore leaves it
//! unreadable: see below). Memory stays flat however many rows the window
//! touched; RocksDB's bloom filters make the lookup of a base row that the
//! delta does not hold (the common case) cheap.
//!
//! The rows are personal data, erased subjects' included, on the host's
//! disk until the filter has run: every value is sealed with
//! ChaCha20-Poly1305 under a key made for this restore and kept only in
//! memory, and every key is a keyed BLAKE3 hash (under another such key)
//! of the table and the row's identity. So nothing readable is left on
//! disk, even by a restore killed before it could remove its directory.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rocksdb::{BlockBasedOptions, DB, Direction, IteratorMode, Options, WriteOptions};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// The sealed temporary store.
pub struct DeltaDb {
    db: DB,
    cipher: ChaCha20Poly1305,
    hash_key: [u8; 32],
    nonce: AtomicU64,
    write: WriteOptions,
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
        opts.set_write_buffer_size(32 << 20);
        opts.set_max_write_buffer_number(2);
        // Pass A writes every change and reads single keys; nothing walks
        // the memtable (pass B runs after the flush below). A hash of small
        // skip lists, one bucket per key, spares each write the long skip
        // list walk (`perf`: the largest share of the replay). Keys hash on
        // their first KEY_LEN bytes (a whole key; an index key's base).
        opts.set_prefix_extractor(rocksdb::SliceTransform::create_fixed_prefix(KEY_LEN));
        opts.set_memtable_factory(rocksdb::MemtableFactory::HashSkipList {
            bucket_count: 1 << 20,
            height: 4,
            branching_factor: 4,
        });
        opts.set_allow_concurrent_memtable_write(false);
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        let db = DB::open(&opts, dir.path()).map_err(err("opening"))?;
        let mut write = WriteOptions::default();
        // Nothing survives the restore: no log to replay after a crash.
        write.disable_wal(true);
        let key: [u8; 32] = rand::random();
        let hash_key: [u8; 32] = rand::random();
        Ok(DeltaDb {
            db,
            cipher: ChaCha20Poly1305::new((&key).into()),
            hash_key,
            nonce: AtomicU64::new(0),
            write,
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
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(Nonce::from_slice(&nonce), plain)
                .map_err(|e| StoreError {
                    what: "sealing a row",
                    message: e.to_string(),
                })?,
        );
        Ok(out)
    }

    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let bad = |message: String| StoreError {
            what: "reading a row back",
            message,
        };
        let (nonce, body) = sealed
            .split_at_checked(12)
            .ok_or_else(|| bad("a value shorter than its nonce".into()))?;
        self.cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|e| bad(e.to_string()))
    }

    /// Stores `plain` under `key`.
    ///
    /// # Errors
    /// RocksDB failed (the disk is full, say).
    pub fn put(&self, key: &[u8], plain: &[u8]) -> Result<(), StoreError> {
        let sealed = self.seal(plain)?;
        self.db
            .put_opt(key, sealed, &self.write)
            .map_err(err("writing"))
    }

    /// The value under `key`, if any.
    ///
    /// # Errors
    /// RocksDB failed, or a value does not open.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
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
        self.db.flush().map_err(err("flushing"))
    }

    /// Whether a value is stored under `key` (it is not opened).
    ///
    /// # Errors
    /// RocksDB failed.
    pub fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.db.get_pinned(key).map_err(err("reading"))?.is_some())
    }

    /// Removes every key of `kind` in `table`.
    ///
    /// # Errors
    /// RocksDB failed.
    pub fn delete_all(&self, table: u32, kind: u8) -> Result<(), StoreError> {
        let (from, to) = bounds(table, kind);
        let mut batch = rocksdb::WriteBatch::default();
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
        let start = after.unwrap_or(prefix);
        let mut out = Vec::new();
        // Key order across prefixes (the prefix extractor would confine a
        // seek to one).
        let mut read = rocksdb::ReadOptions::default();
        read.set_total_order_seek(true);
        for item in self
            .db
            .iterator_opt(IteratorMode::From(start, Direction::Forward), read)
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
