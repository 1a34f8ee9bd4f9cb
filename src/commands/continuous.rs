//! `lethe continuous check` and `lethe continuous disable`

use super::{Ctx, UsageError};
use crate::continuous::{PreflightError, preflight, slot};
use crate::pg::ddl_capture::DdlCapture;

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
            let conn = crate::pg::connect(&cfg.source.url).await?;
            match crate::pg::ddl_capture::possible(&conn).await? {
                DdlCapture::EventTriggers => println!(
                    "schema changes: captured by lethe's event triggers (installed in schema lethe when capture starts); \
                     indexes, triggers, views and functions made or dropped, and columns appended \
                     by ALTER TABLE … ADD COLUMN, cost no base"
                ),
                DdlCapture::Digest(why) => println!("schema changes: by the schema digest: {why}"),
            }
            Ok(crate::exit::OK)
        }
        Err(e @ PreflightError::Refused(_)) => Err(UsageError(e.to_string()).into()),
        Err(e @ PreflightError::Source(_)) => Err(e.into()),
    }
}

/// Drops the slot, the publication and the DDL capture: exit 0 with one line per object
/// removed (or "nothing to remove"), 1 with the error.
pub async fn disable(ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let c = &cfg.continuous;
    let removed = slot::disable(&cfg.source.url, c).await?;
    if removed.slot {
        println!("removed replication slot {}", c.slot);
    }
    if removed.publication {
        println!("removed publication {}", c.publication);
    }
    if removed.ddl.triggers {
        println!(
            "removed event triggers {}",
            crate::pg::ddl_capture::TRIGGERS.join(", ")
        );
    }
    if removed.ddl.schema {
        println!("removed schema {}", crate::pg::ddl_capture::SCHEMA);
    }
    if !removed.slot && !removed.publication && removed.ddl == Default::default() {
        println!(
            "nothing to remove: no replication slot {}, no publication {} and no event trigger of lethe's on the source",
            c.slot, c.publication
        );
    }
    Ok(crate::exit::OK)
}
