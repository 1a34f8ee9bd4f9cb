//! A writer's turn at the evidence log: the lease on [`LOCK_KEY`], taken
//! when the record is ready, or ahead of it ([`EarlyTurn`]) so that the
//! lease's settle delay overlaps the caller's last work (a restore's
//! post-data), and given back unused if the record does not follow soon.

use super::{EvidenceError, LOCK_KEY, WAIT_FOR_TURN};
use crate::repo::lease::{Lease, LeaseError};
use crate::storage::Storage;
use chrono::Utc;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The lease's time to live: another writer may take it over after this.
const TTL_SECONDS: i64 = 60;

/// Waits its turn (up to [`WAIT_FOR_TURN`]) and returns the lease.
pub(super) async fn take_turn(
    storage: &Arc<dyn Storage>,
    settle: Duration,
) -> Result<Lease, EvidenceError> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let ttl = chrono::Duration::seconds(TTL_SECONDS);
        match Lease::acquire(Arc::clone(storage), LOCK_KEY, ttl, settle, Utc::now()).await {
            Ok(l) => return Ok(l),
            Err(e @ (LeaseError::Held { .. } | LeaseError::Lost { .. })) => {
                if started.elapsed() >= WAIT_FOR_TURN {
                    return Err(EvidenceError::Busy {
                        waited: started.elapsed(),
                        last: e.to_string(),
                    });
                }
                // Jitter keeps two writers from meeting again at once.
                let jitter = Duration::from_millis(u64::from(rand::random::<u8>()));
                tokio::time::sleep(pause + jitter).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A turn taken ahead of the record: once `ready` resolves, the lease is
/// taken in the background and held for at most `hold` (far inside its
/// time to live, and short, since other writers wait behind it); if the
/// record has not claimed it by then it is given back, and the record
/// takes a turn of its own as usual. Failing to take it early is not an
/// error: the record then takes its own turn and reports any failure.
pub struct EarlyTurn {
    claim: oneshot::Sender<()>,
    task: JoinHandle<Option<Lease>>,
}

impl EarlyTurn {
    pub fn start(
        storage: Arc<dyn Storage>,
        ready: impl Future<Output = ()> + Send + 'static,
        hold: Duration,
    ) -> EarlyTurn {
        Self::start_with(storage, ready, hold, super::SETTLE)
    }

    pub(super) fn start_with(
        storage: Arc<dyn Storage>,
        ready: impl Future<Output = ()> + Send + 'static,
        hold: Duration,
        settle: Duration,
    ) -> EarlyTurn {
        let (claim, mut claimed) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Claimed (or dropped) before it was ready: nothing to take.
            tokio::select! {
                () = ready => {}
                _ = &mut claimed => return None,
            }
            // A claim that comes meanwhile waits for this turn: it is
            // further along than a new one would be.
            let lease = take_turn(&storage, settle).await.ok()?;
            tokio::select! {
                r = &mut claimed => match r {
                    Ok(()) => Some(lease),
                    // The caller went away without a record.
                    Err(_) => {
                        lease.release_bounded().await;
                        None
                    }
                },
                () = tokio::time::sleep(hold) => {
                    lease.release_bounded().await;
                    None
                }
            }
        });
        EarlyTurn { claim, task }
    }

    /// The lease, if it was taken and is still held for this record.
    pub(super) async fn claim(self) -> Option<Lease> {
        let _ = self.claim.send(());
        self.task.await.ok().flatten()
    }
}
