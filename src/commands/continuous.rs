//! `lethe continuous check`

use super::{Ctx, UsageError};
use crate::continuous::{PreflightError, preflight};

/// Runs the preflight checks against `source.url`: exit 0 when the source
/// is ready (warnings on stderr), 2 with every refusal, 1 when the source
/// cannot be reached or read.
pub async fn check(ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    match preflight(&cfg.source.url, &cfg.continuous).await {
        Ok(p) => {
            for w in &p.warnings {
                eprintln!("lethe: warning: {w}");
            }
            println!(
                "source {} is ready for continuous capture: PostgreSQL {}, database {}, role {}, {} table(s) to publish{}",
                crate::config::redact_url(&cfg.source.url),
                p.server_version,
                p.database,
                p.role,
                p.tables,
                if cfg.continuous.enabled {
                    ""
                } else {
                    " (continuous.enabled is false)"
                }
            );
            Ok(crate::exit::OK)
        }
        Err(e @ PreflightError::Refused(_)) => Err(UsageError(e.to_string()).into()),
        Err(e @ PreflightError::Source(_)) => Err(e.into()),
    }
}
