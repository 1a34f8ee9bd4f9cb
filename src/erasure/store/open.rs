//! Opening a store: creation, version and type markers, lock and corruption
//! errors that name the path, and the read-only secondary for restores.

use super::*;

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
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
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
        let scratch = std::env::temp_dir().join(format!(
            "lethe-erasure-secondary-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut opts = db_options();
        opts.set_max_open_files(-1);
        let db = DB::open_as_secondary(&opts, path, &scratch).map_err(|e| open_error(path, e))?;
        db.try_catch_up_with_primary()
            .map_err(|e| open_error(path, e))?;
        Self::finish_open(db, path, subject_type, true, Some(scratch))
    }

    fn open_inner(
        path: &Path,
        subject_type: SubjectType,
        create: bool,
    ) -> Result<Self, StoreError> {
        if create {
            std::fs::create_dir_all(path).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        }
        let mut opts = db_options();
        opts.create_if_missing(create);
        let db = DB::open(&opts, path).map_err(|e| open_error(path, e))?;
        // Ours now (RocksDB's lock): no other process is mid-ingest.
        super::bulk::remove_staged(path);
        Self::finish_open(db, path, subject_type, false, None)
    }

    fn finish_open(
        db: DB,
        path: &Path,
        subject_type: SubjectType,
        read_only: bool,
        scratch: Option<PathBuf>,
    ) -> Result<Self, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let io = |op, e: rocksdb::Error| StoreError::Io {
            path: path.to_path_buf(),
            op,
            message: e.to_string(),
        };
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
                batch.put(K_VERSION, STORE_VERSION_NEW);
                batch.put(K_TYPE, type_name(subject_type));
                let st = State {
                    count: 0,
                    digest: [0; 32],
                    pending: 0,
                    next_batch: 1,
                };
                batch.put(K_STATE, st.encode());
                batch.put(K_NEXT_BATCH, st.next_batch.to_be_bytes());
                db.write_opt(batch, &synced())
                    .map_err(|e| io("initialise", e))?;
            }
            Some(v) if v == STORE_VERSION.as_bytes() || v == STORE_VERSION_NEW.as_bytes() => {}
            // Version 1 differs only in its pending markers, which readers
            // (restores) never look at; a writer migrates them.
            Some(v) if v == b"1" && read_only => {}
            Some(v) if v == b"1" => migrate_v1(&db).map_err(|e| io("migrate from version 1", e))?,
            Some(v) => {
                return Err(StoreError::UnknownVersion {
                    path: path.to_path_buf(),
                    found: String::from_utf8_lossy(&v).into_owned(),
                });
            }
        }
        let stored_type = db
            .get(K_TYPE)
            .map_err(|e| io("read", e))?
            .ok_or_else(|| corrupt("the subject type marker is missing".into()))?;
        if stored_type != type_name(subject_type).as_bytes() {
            return Err(StoreError::TypeMismatch {
                path: path.to_path_buf(),
                store: String::from_utf8_lossy(&stored_type).into_owned(),
                config: type_name(subject_type).into(),
            });
        }
        let state = read_state(&db, path)?;
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
            bulk_opts: db_options(),
        })
    }
}

pub(super) fn db_options() -> Options {
    let mut opts = Options::default();
    let mut table = BlockBasedOptions::default();
    // Most ids an add or a merge checks are new: the bloom filter answers
    // "absent" without reading a block.
    table.set_bloom_filter(10.0, false);
    opts.set_block_based_table_factory(&table);
    // The same for ids still in the memtable: without it, checking a batch
    // of new ids costs a skiplist search each.
    opts.set_memtable_whole_key_filtering(true);
    opts.set_memtable_prefix_bloom_ratio(0.1);
    opts.set_keep_log_file_num(4);
    opts.set_paranoid_checks(true);
    opts
}

/// Version 1 kept one empty `p:<seq><canonical id>` marker per pending id;
/// version 2 keeps one `p:<seq>` record per batch holding its pending ids,
/// `\n`-separated. Rewrites the markers and sets the version, in one synced
/// write (a crash leaves the store at version 1, and the next open migrates
/// again). The pending count is the same in both layouts.
fn migrate_v1(db: &DB) -> Result<(), rocksdb::Error> {
    let mut batch = WriteBatch::default();
    let mut records: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
    let seq_len = P_PENDING.len() + 8;
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(upper_bound(P_PENDING));
    for item in db.iterator_opt(IteratorMode::From(P_PENDING, Direction::Forward), ro) {
        let (k, v) = item?;
        if k.len() == seq_len {
            // Already a per-batch record (written by a build between the two).
            let r = records.entry(k.to_vec()).or_default();
            if !r.is_empty() {
                r.push(b'\n');
            }
            r.extend_from_slice(&v);
        } else if k.len() > seq_len {
            let r = records.entry(k[..seq_len].to_vec()).or_default();
            if !r.is_empty() {
                r.push(b'\n');
            }
            r.extend_from_slice(&k[seq_len..]);
            batch.delete(&k);
        }
    }
    for (k, v) in records {
        batch.put(k, v);
    }
    batch.put(K_VERSION, STORE_VERSION_NEW);
    db.write_opt(batch, &synced())
}

fn open_error(path: &Path, e: rocksdb::Error) -> StoreError {
    let msg = e.to_string();
    if msg.contains("lock")
        && (msg.contains("Resource temporarily unavailable")
            || msg.contains("No locks available")
            || msg.contains("LOCK"))
    {
        return StoreError::Locked {
            path: path.to_path_buf(),
        };
    }
    match e.kind() {
        rocksdb::ErrorKind::Corruption => StoreError::Corrupt {
            path: path.to_path_buf(),
            message: msg,
        },
        rocksdb::ErrorKind::InvalidArgument if !path.join("CURRENT").exists() => {
            StoreError::Missing {
                path: path.to_path_buf(),
            }
        }
        _ => StoreError::Open {
            path: path.to_path_buf(),
            message: msg,
        },
    }
}

/// Reads the state record and batch counter (from a snapshot when given).
pub(super) fn read_state(db: &DB, path: &Path) -> Result<State, StoreError> {
    read_state_with(path, |k| db.get(k))
}

pub(super) fn read_state_with(
    path: &Path,
    get: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, rocksdb::Error>,
) -> Result<State, StoreError> {
    let corrupt = |message: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    };
    let io = |e: rocksdb::Error| StoreError::Io {
        path: path.to_path_buf(),
        op: "read",
        message: e.to_string(),
    };
    let raw = get(K_STATE)
        .map_err(io)?
        .ok_or_else(|| corrupt("the list state record is missing"))?;
    let next = get(K_NEXT_BATCH)
        .map_err(io)?
        .ok_or_else(|| corrupt("the batch counter is missing"))?;
    if raw.len() != 48 || next.len() != 8 {
        return Err(corrupt("the list state record has the wrong size"));
    }
    let u64_at = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&raw[8..40]);
    Ok(State {
        count: u64_at(&raw[..8]),
        digest,
        pending: u64_at(&raw[40..]),
        next_batch: u64_at(&next),
    })
}
