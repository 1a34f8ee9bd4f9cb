//! Stop signals, handled one way by every command and by the daemon.
//!
//! The first SIGINT or SIGTERM cancels a [`CancellationToken`]: the work
//! drains (a snapshot aborts its uploads and commits nothing, a restore
//! rolls back, `prune` stops between deletions, the daemon finishes its
//! job). A second one exits at once with code 1; whatever was in flight
//! stays unfinished, and the next run cleans it up. Work below a command
//! takes child tokens of [`Shutdown::token`], so one signal reaches all of
//! it.
//!
//! The handlers are installed before the work starts (replacing the
//! default "terminate" action), so a signal that arrives during start-up
//! drains instead of killing.

use futures::StreamExt;
use signal_hook::consts::signal::{SIGINT, SIGTERM};
use signal_hook_tokio::{Handle, Signals};
use std::sync::{Arc, OnceLock};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a command says when a stop signal arrives: `first` when it starts
/// to drain, `second` just before it exits. Each gets the signal's name.
pub struct Hooks {
    pub first: Box<dyn Fn(&'static str) + Send + Sync>,
    pub second: Box<dyn Fn(&'static str) + Send + Sync>,
}

impl Hooks {
    /// Prints `message` on stderr at the first signal (above a progress
    /// display, if one is shown); nothing at the second.
    pub fn message(message: &'static str) -> Hooks {
        Hooks {
            first: Box::new(move |_| {
                crate::telemetry::progress::write_stderr(format!("\n{message}\n").as_bytes());
            }),
            second: Box::new(|_| {}),
        }
    }

    /// Says nothing.
    pub fn quiet() -> Hooks {
        Hooks {
            first: Box::new(|_| {}),
            second: Box::new(|_| {}),
        }
    }
}

/// The installed handlers. Dropping it (or [`Shutdown::stop`]) removes them.
pub struct Shutdown {
    token: CancellationToken,
    signal: Arc<OnceLock<&'static str>>,
    handle: Handle,
    join: Option<JoinHandle<()>>,
}

fn name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "signal",
    }
}

impl Shutdown {
    /// Installs the SIGINT/SIGTERM handlers. Must be called on a tokio
    /// runtime.
    ///
    /// # Errors
    /// The handlers cannot be registered.
    pub fn install(hooks: Hooks) -> std::io::Result<Shutdown> {
        Self::install_on(CancellationToken::new(), hooks)
    }

    /// [`Shutdown::install`] cancelling `token` (the daemon's root).
    ///
    /// # Errors
    /// The handlers cannot be registered.
    pub fn install_on(token: CancellationToken, hooks: Hooks) -> std::io::Result<Shutdown> {
        let signals = Signals::new([SIGTERM, SIGINT])?;
        let handle = signals.handle();
        let signal = Arc::new(OnceLock::new());
        let join = tokio::spawn(listen(signals, token.clone(), Arc::clone(&signal), hooks));
        Ok(Shutdown {
            token,
            signal,
            handle,
            join: Some(join),
        })
    }

    /// The token the first stop signal cancels.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Resolves when the first stop signal has arrived, with its name.
    pub async fn stopped(&self) -> &'static str {
        self.token.cancelled().await;
        self.signal.get().copied().unwrap_or("signal")
    }

    /// Removes the handlers and waits for the listener to end.
    pub async fn stop(mut self) {
        self.handle.close();
        if let Some(j) = self.join.take() {
            let _ = j.await;
        }
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.handle.close();
    }
}

async fn listen(
    mut signals: Signals,
    token: CancellationToken,
    seen: Arc<OnceLock<&'static str>>,
    hooks: Hooks,
) {
    while let Some(sig) = signals.next().await {
        let sig = name(sig);
        if token.is_cancelled() {
            (hooks.second)(sig);
            std::process::exit(crate::exit::FAILURE);
        }
        let _ = seen.set(sig);
        (hooks.first)(sig);
        token.cancel();
    }
}
