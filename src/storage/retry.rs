//! The one retry layer for storage calls: exponential backoff with jitter,
//! only for errors that say retrying can help. The SDK's own retries are off.
//! Cancellation is dropping the future: the sleep between attempts is an
//! await point, so a dropped call stops retrying at once.

use super::StorageError;
use std::future::Future;
use std::time::Duration;

/// How often and how patiently a call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in total, including the first.
    pub attempts: u32,
    /// Delay before the second attempt; doubled after each further failure.
    pub initial: Duration,
    /// Upper bound for one delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// About 30 s of patience: enough for a 503 SlowDown burst or a restarting
    /// gateway, short enough that an operator sees a real outage quickly.
    fn default() -> Self {
        Self {
            attempts: 7,
            initial: Duration::from_millis(250),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay after failed attempt `n` (1-based), with "full jitter"
    /// between half and all of the exponential value.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX));
        let capped = exp.min(self.max);
        let jitter = 0.5 + rand::random::<f64>() * 0.5;
        capped.mul_f64(jitter)
    }

    /// Runs `call` until it succeeds, fails permanently, or the attempts are
    /// used up; the last error is returned. Retries are logged at debug level.
    ///
    /// # Errors
    /// The last error from `call`.
    pub async fn retry<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, StorageError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < self.attempts => {
                    let delay = self.delay(attempt);
                    tracing::debug!(
                        event = "storage.retry",
                        call = what,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %e,
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transient() -> StorageError {
        StorageError::Transient {
            op: "get",
            key: "k".into(),
            message: "503".into(),
        }
    }

    fn quick() -> Backoff {
        Backoff {
            attempts: 4,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_then_succeeds() {
        let calls = AtomicU32::new(0);
        let out = quick()
            .retry("get", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(transient())
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(out.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = quick()
            .retry("get", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(transient())
            })
            .await;
        assert!(matches!(out, Err(StorageError::Transient { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn never_retries_permanent_errors() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = quick()
            .retry("get", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StorageError::Permanent {
                    op: "get",
                    key: "k".into(),
                    message: "403".into(),
                })
            })
            .await;
        assert!(matches!(out, Err(StorageError::Permanent { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let b = Backoff::default();
        assert!(b.delay(1) <= b.initial);
        assert!(b.delay(3) >= b.initial * 2);
        assert!(b.delay(30) <= b.max);
    }
}
