//! The erasure list a restore applies: opened (never created), proven not
//! behind the journal in storage, loaded into memory, and read again with
//! folded keys when the plan compares ids as `citext` or `char(n)` does.

use super::{RestoreError, keys};
use crate::config::Config;
use crate::erasure::journal::{self, StaleError};
use crate::erasure::{ErasureSet, ErasureStore, MemSet};
use crate::repo::manifest::ListState;
use crate::storage::Storage;
use std::sync::Arc;

/// The erasure list a restore applies, proven current (or explicitly let
/// through), as an in-memory set.
pub struct LoadedList {
    pub set: Arc<dyn ErasureSet>,
    /// The store it was read from, to read it again with folded keys.
    store: Arc<ErasureStore>,
    pub state: ListState,
    pub fresh: bool,
}

/// Opens the list (never creating it), proves it is not behind the journal
/// in storage, and loads it into memory. Fail closed: a missing or
/// unreadable list always refuses; a list behind the journal (or a journal
/// that cannot be read) refuses unless `allow_stale`, which logs
/// `restore.stale_erasure_list` at warn level.
///
/// # Errors
/// `ErasureList` saying why and what to run.
pub async fn load_list(
    cfg: &Config,
    storage: &dyn Storage,
    allow_stale: bool,
) -> Result<LoadedList, RestoreError> {
    let (path, st) = (cfg.erasure.path.clone(), cfg.erasure.subject_type);
    let shown = path.display().to_string();
    let store = tokio::task::spawn_blocking(move || ErasureStore::open_for_restore(&path, st))
        .await
        .map_err(|e| RestoreError::Internal(format!("erasure list task: {e}")))?
        .map_err(|e| {
            // `e` names the path and what to do (e.g. `lethe erase sync`).
            RestoreError::ErasureList(format!(
                "refusing to restore: a restore never runs without the erasure list (erasure.path): {e}"
            ))
        })?;
    let store = Arc::new(store);
    let (state, fresh) = match journal::check_fresh(&store, storage).await {
        Ok(s) => (s, true),
        Err(StaleError::Unusable(e)) => {
            return Err(RestoreError::ErasureList(format!(
                "refusing to restore: the erasure list at {shown} is unreadable: {e}"
            )));
        }
        Err(e) if allow_stale => {
            tracing::warn!(
                event = "restore.stale_erasure_list",
                path = %shown,
                error = %e,
                "RESTORING WITH AN ERASURE LIST NOT PROVEN CURRENT (--allow-stale-erasure-list): subjects erased \
                 elsewhere may come back; run `lethe erase sync` and restore again as soon as possible"
            );
            (store.state(), false)
        }
        Err(e) => {
            return Err(RestoreError::ErasureList(format!(
                "{e} (in an emergency, --allow-stale-erasure-list restores anyway and logs it)"
            )));
        }
    };
    // One attempt: the count must match the state just checked against the
    // journal, or the restore refuses (below).
    let (set, _) = crate::erasure::reader::load(&store, 1).await.map_err(|e| {
        RestoreError::ErasureList(format!(
            "refusing to restore: the erasure list at {shown} cannot be read: {e}"
        ))
    })?;
    if set.len() as u64 != state.count {
        return Err(RestoreError::ErasureList(format!(
            "refusing to restore: the erasure list at {shown} changed while it was read ({} entries, state says {}); retry",
            set.len(),
            state.count
        )));
    }
    Ok(LoadedList {
        set: Arc::new(set),
        store,
        state,
        fresh,
    })
}

impl LoadedList {
    /// How many ids `lethe erase remove` took off the list since `t` (their
    /// latest removal, as this list knows it).
    pub(super) async fn removed_since(
        &self,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, RestoreError> {
        let store = Arc::clone(&self.store);
        let removals = tokio::task::spawn_blocking(move || store.removals())
            .await
            .map_err(|e| RestoreError::Internal(format!("erasure list task: {e}")))?
            .map_err(|e| RestoreError::ErasureList(format!("refusing to restore: {e}")))?;
        Ok(removals.iter().filter(|r| r.removed_at >= t).count() as u64)
    }

    /// Reads the list again when the plan needs more than its ids: each
    /// text id also folded the way `forms` compare (`citext` roots
    /// lower-case both sides, `char(n)` roots ignore trailing spaces; see
    /// `keys::folds_list`), and, for reusable roots (`reuse = Some(since)`),
    /// each erasure added after `since` also under `keys::reuse_key`.
    /// Refuses if the list changed since it was first read.
    pub(super) async fn prepare(
        &mut self,
        forms: Vec<keys::KeyForm>,
        reuse: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), RestoreError> {
        if forms.is_empty() && reuse.is_none() {
            return Ok(());
        }
        let store = self.store.clone();
        let (set, n) = tokio::task::spawn_blocking(move || {
            MemSet::load_entries(&store, &|e, k, out| {
                let mut scratch = Vec::new();
                let first = out.len();
                let (name, id) = crate::erasure::subject::split_subject(&e.subject);
                for &f in &forms {
                    let c = keys::canonical(f, id.as_bytes(), &mut scratch);
                    let folded = keys::folded_text_key(f, c);
                    out.push(match name {
                        Some(n) => crate::erasure::subject::subject_key(n, folded),
                        None => folded,
                    });
                }
                if reuse.is_some_and(|since| e.added_at > since) {
                    out.push(keys::reuse_key(k));
                    for i in first..out.len() - 1 {
                        out.push(keys::reuse_key(out[i]));
                    }
                }
            })
        })
        .await
        .map_err(|e| RestoreError::Internal(format!("erasure list task: {e}")))?
        .map_err(|e| {
            RestoreError::ErasureList(format!(
                "refusing to restore: the erasure list cannot be read: {e}"
            ))
        })?;
        if n != self.state.count {
            return Err(RestoreError::ErasureList(
                "refusing to restore: the erasure list changed while it was read; retry".into(),
            ));
        }
        self.set = Arc::new(set);
        Ok(())
    }
}
