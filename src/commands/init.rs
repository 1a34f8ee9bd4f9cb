//! `lethe init`: residency check (by connecting), repository marker, and on
//! S3 the lifecycle rules merged into the bucket's own. Idempotent: a second
//! run changes nothing and says so.

use super::{Ctx, UsageError};
use crate::repo::layout::{self, MARKER_KEY};
use crate::repo::manifest::FORMAT_VERSION;
use crate::storage::StorageExt;
use crate::storage::lifecycle::{self, Installed};

pub async fn run(ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let days = cfg.retention.days;
    let storage = ctx.storage(&cfg).await?;
    let where_ = storage.describe();

    // Refusals first, before anything is written.
    let marker = layout::read_marker(storage.as_ref()).await?;
    if let Some(m) = &marker {
        if m.format > FORMAT_VERSION {
            anyhow::bail!(
                "{where_} has repository format {}, newer than this lethe understands ({FORMAT_VERSION}); \
                 upgrade lethe before using this repository",
                m.format
            );
        }
        if m.retention_days != days {
            return Err(UsageError(format!(
                "retention.days = {days} but {where_} was initialised with {} days (its {MARKER_KEY}); \
                 set retention.days = {} or use a new storage.url prefix for a different retention",
                m.retention_days, m.retention_days
            ))
            .into());
        }
    }

    let report = lifecycle::install(&cfg.storage, crate::retention::lifecycle_policy(days)).await?;
    let mut changed = false;
    match &report.installed {
        Installed::Unchanged => println!("lifecycle: rules already in place"),
        Installed::Updated { added, replaced } => {
            changed = true;
            for id in added {
                println!("lifecycle: added rule {id}");
            }
            for id in replaced {
                println!("lifecycle: updated rule {id}");
            }
            println!(
                "lifecycle: snapshots/ expire after {days} days (the store rounds up to the next \
                 midnight UTC), incomplete uploads are aborted after {} day; other rules kept",
                lifecycle::ABORT_INCOMPLETE_DAYS
            );
        }
        Installed::NotApplicable => println!(
            "lifecycle: none for a directory repository; the daemon's prune expires snapshots"
        ),
    }
    for c in &report.conflicts {
        const WHY: &str =
            "the erasure journal must outlive every snapshot, narrow that rule's prefix";
        // Said once: in the event, or here when warnings are not logged.
        let mark = crate::telemetry::LogMark::now();
        tracing::warn!(event = "init.lifecycle_conflict", conflict = %c, "{WHY}");
        if !mark.logged_since(tracing::Level::WARN) {
            eprintln!("lethe: warning: {c}; {WHY}");
        }
    }

    match marker {
        Some(m) => println!(
            "marker: {MARKER_KEY} present (format {}, retention {} days, created {})",
            m.format,
            m.retention_days,
            m.created_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => {
            let m = layout::new_marker(days);
            let json = serde_json::to_vec_pretty(&m)?;
            storage.put_bytes(MARKER_KEY, json.into()).await?;
            changed = true;
            println!(
                "marker: wrote {MARKER_KEY} (format {}, retention {days} days)",
                m.format
            );
        }
    }

    if changed {
        println!("{where_} is initialised");
    } else {
        println!("{where_} was already initialised; nothing changed");
    }
    tracing::info!(event = "init.completed", storage = %where_, changed);
    Ok(crate::exit::OK)
}
