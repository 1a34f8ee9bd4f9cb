//! `lethe pause` / `lethe resume`: scheduled snapshots of the running daemon
//! stop (or start again) through its API; erasure intake goes on. The pause
//! is in the daemon's memory only: a restart ends it, and the output says so.

use super::Ctx;
use crate::erasure::client::{ApiClient, ClientError};

pub async fn run(ctx: &Ctx, pause: bool) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let verb = if pause { "pause" } else { "resume" };
    let client = ApiClient::for_config(&cfg.api, &cfg.erasure, &cfg.storage.url)?;
    let state = match client.set_paused(pause).await {
        Ok(s) => s,
        Err(ClientError::NotRunning(listen)) => {
            anyhow::bail!(
                "cannot {verb}: the daemon is not running (nothing answers on api.listen = {listen}); \
                 without a daemon no scheduled snapshots run. Start it (`systemctl start lethe`) or check --config"
            );
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot {verb} the daemon"))),
    };
    let since = state
        .paused_since
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    match (pause, state.changed) {
        (true, changed) => {
            println!(
                "scheduled snapshots {} since {since}; the erasure API keeps accepting erasures.",
                if changed {
                    "paused"
                } else {
                    "were already paused"
                }
            );
            println!(
                "The pause is NOT kept across a daemon restart: a restarted daemon snapshots on schedule again. Run `lethe resume` when done."
            );
        }
        (false, true) => println!(
            "scheduled snapshots resumed; a run missed while paused starts now (`lethe status` shows the next run)."
        ),
        (false, false) => println!("scheduled snapshots were not paused; nothing changed."),
    }
    Ok(crate::exit::OK)
}
