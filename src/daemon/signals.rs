//! The daemon's signals. Stop signals go through [`crate::shutdown`] like
//! every command's: SIGTERM/SIGINT cancel the root token (a graceful drain,
//! `daemon.signal`); a second one exits at once with code 1
//! (`daemon.killed`). Here: SIGHUP asks for a config reload, SIGUSR1 for a
//! snapshot now.

use crate::shutdown::{Hooks, Shutdown};
use futures::StreamExt;
use signal_hook::consts::signal::{SIGHUP, SIGUSR1};
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

/// The running signal listeners; [`SignalTask::stop`] ends and awaits them.
pub struct SignalTask {
    shutdown: Shutdown,
    handle: Handle,
    join: JoinHandle<()>,
}

/// Installs the handlers (replacing the default "terminate" action, so a
/// signal that arrives while we are starting up is not lost) and starts the
/// listeners.
///
/// # Errors
/// The handlers cannot be registered.
pub fn spawn(root: CancellationToken, tx: mpsc::Sender<Control>) -> std::io::Result<SignalTask> {
    let shutdown = Shutdown::install_on(
        root,
        Hooks {
            first: Box::new(|sig| tracing::info!(event = "daemon.signal", signal = sig)),
            // Whatever is in flight stays unfinished: no manifest was
            // written for it, and the next run cleans its leftovers.
            second: Box::new(|sig| {
                tracing::warn!(
                    event = "daemon.killed",
                    signal = sig,
                    "second stop signal: exiting now"
                );
            }),
        },
    )?;
    let signals = Signals::new([SIGHUP, SIGUSR1])?;
    let handle = signals.handle();
    let join = tokio::spawn(listen(signals, tx));
    Ok(SignalTask {
        shutdown,
        handle,
        join,
    })
}

async fn listen(mut signals: Signals, tx: mpsc::Sender<Control>) {
    while let Some(sig) = signals.next().await {
        let (ctl, name) = match sig {
            SIGHUP => (Control::Reload, "SIGHUP"),
            SIGUSR1 => (Control::SnapshotNow, "SIGUSR1"),
            _ => continue,
        };
        tracing::info!(event = "daemon.signal", signal = name);
        // A full queue means the same request is already waiting.
        let _ = tx.try_send(ctl);
    }
}

impl SignalTask {
    /// Stops listening and waits for the listeners to end.
    pub async fn stop(self) {
        self.handle.close();
        let _ = self.join.await;
        self.shutdown.stop().await;
    }
}
