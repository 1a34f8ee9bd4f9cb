//! The erasure journal in storage: `erasures/<ULID>.json` objects that let
//! every host rebuild and share the list: adds, and the removals that undo a
//! mistyped add (see `format.rs` for the objects and how removals order).
//!
//! **Objects.** Each acknowledged write is first synced to the local store as
//! *pending*; a push then uploads the pending ids as one journal object (up to
//! [`MAX_PER_OBJECT`] ids, grouped by the write that added them, so a burst
//! of API calls becomes one object rather than one per id) and, only after
//! the upload succeeded, marks them journaled and the object merged in one
//! synced write. A crash between the two uploads the same ids again later:
//! duplicates are harmless (an add or removal applies once; for one id the
//! later of its add and its removal wins). Pending removals go up the same
//! way, in an object of their own.
//!
//! **Sync** ([`sync`]): list `erasures/`, merge every object the store has not
//! merged yet (the store remembers the names), then push what is pending.
//! **Freshness** ([`check_fresh`]): a restore proves its list is not behind the
//! journal by comparing object names listed in storage with names merged.
//! **Worker** ([`run_worker`]): the daemon's loop that pushes after every add
//! and syncs periodically, retrying with backoff until storage answers.

use super::store::{ErasureStore, StoreError};
use crate::repo::manifest::ListState;
use crate::storage::{Storage, StorageError, StorageExt};
use bytes::Bytes;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where journal objects live, relative to the repository.
pub const PREFIX: &str = "erasures/";
/// Ids per journal object at most (a bigint object is then ~1.5 MB).
pub const MAX_PER_OBJECT: usize = 100_000;
/// Journal objects fetched concurrently during a sync.
const FETCH_CONCURRENCY: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("erasure journal in {repo}: {source}")]
    Storage { repo: String, source: StorageError },
    #[error(
        "journal object {key} is not valid: {message}; it must be repaired or removed by hand before the list can be synced"
    )]
    BadObject { key: String, message: String },
    #[error(
        "journal object {key} was written by a newer lethe (format {found}; this lethe reads formats up to {FORMAT}); upgrade lethe on this host to sync the list, and do not delete the object"
    )]
    NewerFormat { key: String, found: u32 },
    #[error("the store task failed: {0}")]
    Task(String),
}

/// Why a restore must not use the local list (promise 3, fail closed).
#[derive(Debug, thiserror::Error)]
pub enum StaleError {
    #[error("refusing to restore: {0}")]
    Unusable(#[from] StoreError),
    #[error(
        "refusing to restore: the erasure list at {path} lacks {missing} journal object(s) from {repo} (e.g. {example}); run `lethe erase sync` first"
    )]
    Behind {
        path: String,
        repo: String,
        missing: usize,
        example: String,
    },
    #[error(
        "refusing to restore: cannot read the erasure journal in {repo} to prove the list is current: {source}"
    )]
    Storage { repo: String, source: StorageError },
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutcome {
    /// Journal objects read from storage and merged.
    pub objects_merged: u64,
    /// Ids that were new to this list.
    pub new_entries: u64,
    /// Pending ids (added or removed) uploaded to the journal.
    pub pushed: u64,
    /// Entries removed here by other hosts' removals.
    #[serde(default)]
    pub removed: u64,
    pub count: u64,
    pub digest: String,
}

fn storage_err(storage: &dyn Storage, source: StorageError) -> JournalError {
    JournalError::Storage {
        repo: storage.describe(),
        source,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, JournalError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| JournalError::Task(e.to_string()))?
        .map_err(JournalError::from)
}

/// The object name part of a journal key, when it is one (`<ULID>.json`).
fn object_name(key: &str) -> Option<&str> {
    let name = key.strip_prefix(PREFIX)?;
    let stem = name.strip_suffix(".json")?;
    (stem.len() == 26 && stem.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(name)
}

/// Journal object names in storage, sorted.
async fn list_names(storage: &dyn Storage) -> Result<Vec<String>, StorageError> {
    let mut names: Vec<String> = storage
        .list(PREFIX)
        .await?
        .iter()
        .filter_map(|m| object_name(&m.key))
        .map(str::to_string)
        .collect();
    names.sort();
    Ok(names)
}

/// Uploads every pending id, [`MAX_PER_OBJECT`] per object. Returns how many
/// were pushed. Storage errors are returned as they are (the caller decides
/// how patiently to retry); what was pushed before an error stays pushed.
///
/// # Errors
/// Storage or store failure.
pub async fn push_pending(
    store: &Arc<ErasureStore>,
    storage: &Arc<dyn Storage>,
) -> Result<u64, JournalError> {
    let _held = store.journal_lock.lock().await;
    push_all_locked(store, storage).await
}

/// Pending adds, then pending removals; each batch that reached storage is
/// recorded in the evidence log.
async fn push_all_locked(
    store: &Arc<ErasureStore>,
    storage: &Arc<dyn Storage>,
) -> Result<u64, JournalError> {
    let adds = push_pending_locked(store, storage.as_ref()).await;
    let (Ok(n) | Err((n, _))) = &adds;
    record(storage, store, "add", &[("entries", *n)]).await;
    let adds = adds.map_err(|(_, e)| e)?;
    let removals = push_removals_locked(store, storage.as_ref()).await?;
    record(storage, store, "remove", &[("entries", removals)]).await;
    Ok(adds + removals)
}

/// An erasure batch in the evidence log (when it moved anything): the
/// action, its counts, and the list's count and digest after it. Never an id.
async fn record(
    storage: &Arc<dyn Storage>,
    store: &ErasureStore,
    action: &str,
    counts: &[(&str, u64)],
) {
    if counts.iter().all(|(_, n)| *n == 0) {
        return;
    }
    let state = store.state();
    let mut entry = crate::repo::evidence::Entry::new(crate::repo::evidence::Kind::Erasure, action)
        .list(ListState {
            count: state.count,
            digest: state.digest,
        });
    for (name, n) in counts {
        entry = entry.count(name, *n);
    }
    crate::repo::evidence::record(Arc::clone(storage), entry).await;
}

/// Returns how many ids were pushed, also on an error (with it): what was
/// pushed before the error stays pushed, and is recorded as evidence.
async fn push_pending_locked(
    store: &Arc<ErasureStore>,
    storage: &dyn Storage,
) -> Result<u64, (u64, JournalError)> {
    let mut pushed = 0u64;
    loop {
        let s = Arc::clone(store);
        let chunk = blocking(move || s.pending_chunk(MAX_PER_OBJECT))
            .await
            .map_err(|e| (pushed, e))?;
        if chunk.is_empty() {
            return Ok(pushed);
        }
        let (name, key) = put_object(store, storage, &chunk.groups, &[])
            .await
            .map_err(|e| (pushed, e))?;
        let n = chunk.len() as u64;
        let s = Arc::clone(store);
        blocking(move || s.mark_journaled(&name, &chunk))
            .await
            .map_err(|e| (pushed, e))?;
        tracing::debug!(event = "erasure.journaled", object = %key, entries = n);
        pushed += n;
    }
}

/// Encodes adds and removals into one journal object under a fresh ULID
/// name and stores it; returns its name and key.
async fn put_object(
    store: &ErasureStore,
    storage: &dyn Storage,
    adds: &[(crate::erasure::store::BatchRecord, Vec<String>)],
    removals: &[(crate::erasure::store::RemovalRecord, Vec<String>)],
) -> Result<(String, String), JournalError> {
    let body = format::encode(store.subject_type(), adds, removals)
        .map_err(|e| JournalError::Task(e.to_string()))?;
    let name = format!("{}.json", ulid::Ulid::generate());
    let key = format!("{PREFIX}{name}");
    storage
        .put_bytes(&key, Bytes::from(body))
        .await
        .map_err(|e| storage_err(storage, e))?;
    Ok((name, key))
}

/// Uploads every pending removal as one journal object (removals are few:
/// each is one command). Returns how many ids it carried.
async fn push_removals_locked(
    store: &Arc<ErasureStore>,
    storage: &dyn Storage,
) -> Result<u64, JournalError> {
    let s = Arc::clone(store);
    let removals = blocking(move || s.pending_removals()).await?;
    if removals.groups.is_empty() {
        return Ok(0);
    }
    let (name, key) = put_object(store, storage, &[], &removals.groups).await?;
    let n: u64 = removals.groups.iter().map(|g| g.1.len() as u64).sum();
    let s = Arc::clone(store);
    blocking(move || s.mark_removals_journaled(&name, &removals)).await?;
    tracing::debug!(event = "erasure.journaled", object = %key, entries = n, removals = true);
    Ok(n)
}

/// Pushes what is pending, merges every journal object this list has not
/// merged yet, pushes again what arrived meanwhile, and records the time.
/// Logs `erasure.synced`.
///
/// # Errors
/// Storage failure, an invalid journal object (named), store failure.
pub async fn sync(
    store: &Arc<ErasureStore>,
    storage_arc: &Arc<dyn Storage>,
) -> Result<SyncOutcome, JournalError> {
    let _held = store.journal_lock.lock().await;
    let storage = storage_arc.as_ref();
    // Upload first: this host's entries reach storage even if some other
    // journal object turns out to be unreadable below.
    let pushed_first = push_all_locked(store, storage_arc).await?;
    let names = list_names(storage)
        .await
        .map_err(|e| storage_err(storage, e))?;
    let s = Arc::clone(store);
    let merged = blocking(move || s.merged_objects()).await?;
    let todo: Vec<String> = names.into_iter().filter(|n| !merged.contains(n)).collect();
    let subject_type = store.subject_type();
    let mut out = SyncOutcome::default();
    let mut fetches = futures::stream::iter(todo)
        .map(|name| async move {
            let key = format!("{PREFIX}{name}");
            let data = storage
                .get_bytes(&key)
                .await
                .map_err(|e| storage_err(storage, e))?;
            let obj = format::decode(&key, subject_type, &data)?;
            Ok::<_, JournalError>((name, obj))
        })
        .buffered(FETCH_CONCURRENCY);
    while let Some((name, obj)) = fetches.try_next().await? {
        let s = Arc::clone(store);
        let m = blocking(move || s.merge_journal_with(&name, obj.groups, obj.removals)).await?;
        out.new_entries += m.added;
        out.removed += m.removed;
        out.objects_merged += 1;
    }
    drop(fetches);
    out.pushed = pushed_first + push_all_locked(store, storage_arc).await?;
    let s = Arc::clone(store);
    blocking(move || s.set_last_sync(Utc::now())).await?;
    let state = store.state();
    out.count = state.count;
    out.digest = state.digest;
    record(
        storage_arc,
        store,
        "sync",
        &[
            ("objects_merged", out.objects_merged),
            ("new_entries", out.new_entries),
            ("removed", out.removed),
        ],
    )
    .await;
    tracing::info!(
        event = "erasure.synced",
        new_entries = out.new_entries,
        removed = out.removed,
        total = out.count,
        objects_merged = out.objects_merged,
        pushed = out.pushed,
        digest = %out.digest,
    );
    Ok(out)
}

/// Which journal objects in storage the local list has not merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalState {
    pub objects_in_storage: usize,
    pub not_merged: Vec<String>,
}

/// Compares the journal in storage with what the store has merged.
///
/// # Errors
/// Storage or store failure.
pub async fn journal_state(
    store: &ErasureStore,
    storage: &dyn Storage,
) -> Result<JournalState, JournalError> {
    let names = list_names(storage)
        .await
        .map_err(|e| storage_err(storage, e))?;
    let merged = store.merged_objects()?;
    let objects_in_storage = names.len();
    let not_merged = names.into_iter().filter(|n| !merged.contains(n)).collect();
    Ok(JournalState {
        objects_in_storage,
        not_merged,
    })
}

/// Fail closed: the list state a restore may apply, or why it must refuse.
///
/// Open the store with [`ErasureStore::open_for_restore`] (which refuses a
/// missing or unreadable list rather than creating an empty one, and opens a
/// read-only secondary when the daemon holds the list), then call this: it
/// catches a secondary up with the daemon's latest synced write, lists
/// `erasures/` in storage, and refuses when any journal object there has not
/// been merged into the local list (the list is behind), or when the journal
/// cannot be read (freshness cannot be proven). On success it returns the
/// count and digest of the list as checked. Build the filter with
/// `MemSet::load`, which returns the state of exactly the entries it loaded
/// (equal to this one, or a superset if the daemon added entries in
/// between): that is the state to name in the restore report.
///
/// # Errors
/// [`StaleError`] naming the path, the repository and what to run.
pub async fn check_fresh(
    store: &ErasureStore,
    storage: &dyn Storage,
) -> Result<ListState, StaleError> {
    store.catch_up()?;
    let js = journal_state(store, storage).await.map_err(|e| match e {
        JournalError::Storage { repo, source } => StaleError::Storage { repo, source },
        JournalError::Store(s) => StaleError::Unusable(s),
        other => StaleError::Unusable(StoreError::Io {
            path: store.path().to_path_buf(),
            op: "journal check",
            message: other.to_string(),
        }),
    })?;
    if let Some(example) = js.not_merged.first() {
        return Err(StaleError::Behind {
            path: store.path().display().to_string(),
            repo: storage.describe(),
            missing: js.not_merged.len(),
            example: format!("{PREFIX}{example}"),
        });
    }
    Ok(store.state())
}

/// How the journal worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    /// A full sync (merge other hosts' entries) this often.
    pub sync_every: Duration,
    /// First delay after a failed push or sync; doubled up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// After an add wakes the worker, wait this long so a burst of adds
    /// becomes one journal object rather than one per request.
    pub coalesce: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            sync_every: Duration::from_secs(300),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            coalesce: Duration::from_millis(500),
        }
    }
}

/// The daemon's journal loop: syncs at start and every `sync_every`, pushes
/// pending ids as soon as an add leaves some, and on failure retries with
/// exponential backoff (logging `erasure.journal_retry`) until storage
/// answers. Returns when `shutdown` is cancelled, after one last push
/// attempt bounded to a few seconds (what is still pending stays in the
/// store and is pushed by the next start).
pub async fn run_worker(
    store: Arc<ErasureStore>,
    storage: Arc<dyn Storage>,
    opts: WorkerOptions,
    shutdown: CancellationToken,
) {
    let now = tokio::time::Instant::now;
    let grow = |d: Duration| (d * 2).min(opts.max_backoff);
    // Syncs and pushes back off separately: a journal object that cannot be
    // merged (named in the warning) must not hold back this host's uploads.
    let mut next_sync = now();
    let mut sync_backoff = opts.min_backoff;
    let mut push_backoff = opts.min_backoff;
    let mut push_retry: Option<Duration>;
    loop {
        if now() >= next_sync {
            match sync(&store, &storage).await {
                Ok(_) => {
                    sync_backoff = opts.min_backoff;
                    next_sync = now() + opts.sync_every;
                    push_retry = None;
                }
                Err(e) => {
                    warn_retry("sync", &store, &e, sync_backoff);
                    next_sync = now() + sync_backoff;
                    sync_backoff = grow(sync_backoff);
                    // Push on its own, so pending ids still leave the host.
                    push_retry = Some(Duration::ZERO);
                }
            }
        } else {
            match push_pending(&store, &storage).await {
                Ok(_) => {
                    push_backoff = opts.min_backoff;
                    push_retry = None;
                }
                Err(e) => {
                    warn_retry("push", &store, &e, push_backoff);
                    push_retry = Some(push_backoff);
                    push_backoff = grow(push_backoff);
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = store.pending_notify.notified(), if push_retry.is_none() => {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(opts.coalesce) => {}
                }
            }
            () = tokio::time::sleep_until(next_sync) => {}
            () = tokio::time::sleep(push_retry.unwrap_or_default()), if push_retry.is_some() => {}
        }
    }
    if store.status().map(|s| s.pending).unwrap_or(0) > 0 {
        match tokio::time::timeout(Duration::from_secs(5), push_pending(&store, &storage)).await {
            Ok(Ok(n)) => tracing::debug!(event = "erasure.journaled", entries = n),
            Ok(Err(e)) => {
                tracing::warn!(event = "erasure.journal_retry", error = %e, "stopping with entries pending; the next start pushes them")
            }
            Err(_) => tracing::warn!(
                event = "erasure.journal_retry",
                "stopping with entries pending; the next start pushes them"
            ),
        }
    }
}

fn warn_retry(what: &str, store: &ErasureStore, e: &JournalError, retry_in: Duration) {
    let pending = store.status().map(|s| s.pending).unwrap_or(0);
    tracing::warn!(
        event = "erasure.journal_retry",
        step = what,
        error = %e,
        pending,
        retry_in_s = retry_in.as_secs_f64()
    );
}

mod format;

pub use format::{FORMAT, FORMAT_ADDS};

#[cfg(test)]
mod tests;
