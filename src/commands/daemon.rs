//! `lethe daemon`: the scheduler, retention, journal sync and the erasure
//! API, until SIGTERM (exit 0 after a clean drain, 1 on a second signal).

use super::{Ctx, UsageError};
use crate::daemon::DaemonError;

pub async fn run(ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    match crate::daemon::run(ctx.config_path.clone(), cfg).await {
        Ok(code) => Ok(code),
        Err(DaemonError::Config(m)) => Err(UsageError(m).into()),
        Err(e) => {
            let mark = crate::telemetry::LogMark::now();
            tracing::error!(event = "daemon.failed", error = %e, "the daemon could not start");
            Err(super::reported(&mark, tracing::Level::ERROR, e.into()))
        }
    }
}
