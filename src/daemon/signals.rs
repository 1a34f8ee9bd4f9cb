//! Signals: SIGTERM/SIGINT cancel the root token (a graceful drain); a
//! second one exits at once with code 1. SIGHUP asks for a config reload,
//! SIGUSR1 for a snapshot now.

use futures::StreamExt;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_tokio::{Handle, Signals};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A request from outside to the scheduler loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Reload,
    SnapshotNow,
}

/// The running signal listener; [`SignalTask::stop`] ends and awaits it.
pub struct SignalTask {
    handle: Handle,
    join: JoinHandle<()>,
}

fn name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGHUP => "SIGHUP",
        SIGUSR1 => "SIGUSR1",
        _ => "signal",
    }
}

/// Installs the handlers (replacing the default "terminate" action, so a
/// signal that arrives while we are starting up is not lost) and starts the
/// listener.
///
/// # Errors
/// The handlers cannot be registered.
pub fn spawn(root: CancellationToken, tx: mpsc::Sender<Control>) -> std::io::Result<SignalTask> {
    let signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])?;
    let handle = signals.handle();
    let join = tokio::spawn(listen(signals, root, tx));
    Ok(SignalTask { handle, join })
}

async fn listen(mut signals: Signals, root: CancellationToken, tx: mpsc::Sender<Control>) {
    while let Some(sig) = signals.next().await {
        match sig {
            SIGTERM | SIGINT if root.is_cancelled() => {
                tracing::warn!(
                    event = "daemon.killed",
                    signal = name(sig),
                    "second stop signal: exiting now"
                );
                // Whatever is in flight stays unfinished: no manifest was
                // written for it, and the next run cleans its leftovers.
                std::process::exit(crate::exit::FAILURE);
            }
            SIGTERM | SIGINT => {
                tracing::info!(event = "daemon.signal", signal = name(sig));
                root.cancel();
            }
            SIGHUP | SIGUSR1 => {
                let ctl = if sig == SIGHUP {
                    Control::Reload
                } else {
                    Control::SnapshotNow
                };
                tracing::info!(event = "daemon.signal", signal = name(sig));
                // A full queue means the same request is already waiting.
                let _ = tx.try_send(ctl);
            }
            _ => {}
        }
    }
}

impl SignalTask {
    /// Stops listening and waits for the listener to end.
    pub async fn stop(self) {
        self.handle.close();
        let _ = self.join.await;
    }
}
