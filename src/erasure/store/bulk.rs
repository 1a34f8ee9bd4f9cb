//! Bulk writes and the "already listed?" check behind every add and merge.
//!
//! **Bulk writes.** A write of [`BULK_MIN`] or more new ids that adds at
//! least 1/[`BULK_SHARE`] of the list (an import, a journal object from
//! another host) skips the memtable: its keys — entries,
//! batch and pending records, the journal marker *and the new count, digest
//! and batch counter* — are written in key order into one SST file in the
//! store's directory, synced, and ingested with `IngestExternalFile`. RocksDB
//! links the file in (and syncs it and the directory) and records it in the
//! MANIFEST in one synced edit, so the write is atomic and durable exactly
//! like a synced `WriteBatch`: after a crash either every key of it is there,
//! state included, or none is. The file gets a sequence number above every
//! earlier write, so its state record supersedes the previous one. A file
//! left behind by a crash before the ingest is removed at the next open.
//!
//! **Already listed.** Small adds ask with a multi-get (the bloom filters
//! answer "absent" without reading blocks). Large ones, when the list is not
//! much larger than the input, walk the entries in key order alongside the
//! sorted input instead: a journal object whose ids are all listed already
//! then costs a sequential scan, not a random read per id.

use super::*;
use rocksdb::{IngestExternalFileOptions, SstFileWriter};
use std::sync::atomic::{AtomicU64, Ordering};

/// New ids from which a write may go through an ingested SST file.
pub(super) const BULK_MIN: usize = 20_000;
/// ... when they also add at least 1/BULK_SHARE of the list. Every ingested
/// file (and the memtable flush it forces) lands in L0 spanning most of the
/// key space, and compacting it rewrites the overlapping entries: ~the whole
/// list. Writes small against the list go through the memtable, which
/// batches many of them per flush (building a 10M list from 50,000-id
/// writes, all ingested, took 580 s at load 5-8).
const BULK_SHARE: u64 = 32;

/// Whether a write of `fresh` new ids into a list of `count` goes through an
/// ingested SST file.
pub(super) fn use_sst(fresh: usize, count: u64) -> bool {
    fresh >= BULK_MIN && fresh as u64 >= count / BULK_SHARE
}
/// Inputs up to this size are always checked with a multi-get.
const MULTI_GET_MAX: usize = 256;
/// Walk the entries (rather than multi-get) when the list holds at most
/// this many entries per id checked.
const WALK_RATIO: u64 = 16;
/// Entries stepped over before the walk seeks instead.
const WALK_STEPS: usize = 32;
/// Name prefix of the SST files staged for ingestion.
pub(super) const STAGED_PREFIX: &str = "lethe-ingest-";

static STAGED_SEQ: AtomicU64 = AtomicU64::new(0);

/// Where a write's keys go, in key order.
pub(super) enum Sink<'a> {
    Batch(WriteBatch),
    Sst {
        writer: SstFileWriter<'a>,
        path: PathBuf,
    },
}

impl<'a> Sink<'a> {
    pub(super) fn batch() -> Sink<'a> {
        Sink::Batch(WriteBatch::default())
    }

    pub(super) fn sst(store: &'a ErasureStore) -> Result<Sink<'a>, StoreError> {
        let path = store.path.join(format!(
            "{STAGED_PREFIX}{}-{}.sst",
            std::process::id(),
            STAGED_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let writer = SstFileWriter::create(&store.bulk_opts);
        writer
            .open(&path)
            .map_err(|e| store.io("stage bulk write", e))?;
        Ok(Sink::Sst { writer, path })
    }

    /// Adds one key; keys must come in strictly increasing order.
    pub(super) fn put(
        &mut self,
        store: &ErasureStore,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        match self {
            Sink::Batch(b) => {
                b.put(key, value);
                Ok(())
            }
            Sink::Sst { writer, .. } => writer
                .put(key, value)
                .map_err(|e| store.io("stage bulk write", e)),
        }
    }

    /// Applies the write atomically: one write (synced when `sync`), or the
    /// SST file finished (synced by RocksDB) and ingested (always durable).
    pub(super) fn commit(self, store: &ErasureStore, sync: bool) -> Result<(), StoreError> {
        match self {
            Sink::Batch(b) if sync => store
                .db
                .write_opt(b, &synced())
                .map_err(|e| store.io("synced write", e)),
            Sink::Batch(b) => {
                let mut w = WriteOptions::default();
                w.set_memtable_insert_hint_per_batch(true);
                store.db.write_opt(b, &w).map_err(|e| store.io("write", e))
            }
            Sink::Sst { mut writer, path } => {
                let result = writer
                    .finish()
                    .map_err(|e| store.io("stage bulk write", e))
                    .and_then(|()| {
                        let mut io = IngestExternalFileOptions::default();
                        // Link the file in rather than copy it (same directory).
                        io.set_move_files(true);
                        store
                            .db
                            .ingest_external_file_opts(&io, vec![&path])
                            .map_err(|e| store.io("ingest bulk write", e))
                    });
                drop(writer);
                // After a successful ingest RocksDB has removed our link; after
                // a failure nothing was ingested and the file is garbage.
                let _ = std::fs::remove_file(&path);
                result
            }
        }
    }
}

/// Removes SST files staged by a process that died before ingesting them.
pub(super) fn remove_staged(path: &Path) {
    let Ok(dir) = std::fs::read_dir(path) else {
        return;
    };
    for e in dir.flatten() {
        if e.file_name().to_string_lossy().starts_with(STAGED_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl ErasureStore {
    /// For each of `sorted` (distinct canonical ids in key order), whether
    /// it is listed already. `count` is the list's current size.
    pub(super) fn listed(
        &self,
        sorted: &[(&str, u32)],
        count: u64,
    ) -> Result<Vec<bool>, StoreError> {
        if count == 0 {
            return Ok(vec![false; sorted.len()]);
        }
        let keys = || sorted.iter().map(|(c, _)| entry_key(c));
        if sorted.len() <= MULTI_GET_MAX || count / (sorted.len() as u64) > WALK_RATIO {
            return self
                .db
                .multi_get(keys())
                .into_iter()
                .map(|r| r.map(|v| v.is_some()).map_err(|e| self.io("read", e)))
                .collect();
        }
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(upper_bound(P_ENTRY));
        ro.fill_cache(false);
        ro.set_readahead_size(2 << 20);
        let mut it = self.db.raw_iterator_opt(ro);
        let mut out = Vec::with_capacity(sorted.len());
        let mut key = Vec::with_capacity(64);
        let mut positioned = false;
        for (c, _) in sorted {
            key.clear();
            key.extend_from_slice(P_ENTRY);
            key.extend_from_slice(c.as_bytes());
            if !positioned {
                it.seek(&key);
                positioned = true;
            } else {
                let mut steps = 0;
                while it.key().is_some_and(|k| k < key.as_slice()) {
                    if steps == WALK_STEPS {
                        it.seek(&key);
                        break;
                    }
                    it.next();
                    steps += 1;
                }
            }
            match it.key() {
                Some(k) => out.push(k == key.as_slice()),
                None => break,
            }
        }
        it.status().map_err(|e| self.io("read", e))?;
        // Past the last entry: the rest are not listed.
        out.resize(sorted.len(), false);
        Ok(out)
    }
}
