//! `lethe prune [--dry-run] [--json]`: apply retention now, through the same
//! plan and apply the daemon runs after every snapshot.

use super::Ctx;
use crate::retention::{self, Policy};
use crate::shutdown::{Hooks, Shutdown};
use chrono::Utc;

pub async fn run(ctx: &Ctx, dry_run: bool, json: bool) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let storage = ctx.storage(&cfg).await?;
    let now = Utc::now();
    let survey = retention::survey(storage.as_ref(), now).await?;
    let plan = retention::plan_from(&survey, now, Policy::days(cfg.retention.days));
    if !json {
        print!("{}", retention::describe(&plan));
    }
    let grace = crate::capture::expiry::LEFTOVER_GRACE;
    if dry_run {
        let listing = storage.list(crate::repo::changes::CHANGES_PREFIX).await?;
        let changes = crate::capture::expiry::plan(
            &listing,
            now,
            cfg.retention.days,
            grace,
            crate::capture::expiry::held_from(&survey.protections),
        );
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({ "dry_run": true, "plan": plan, "changes": changes })
                )?
            );
        } else {
            println!(
                "change stream: would delete {} segment(s), {} leftover part(s), {} gap record(s)",
                changes.segments.len(),
                changes.leftovers.len(),
                changes.gaps.len()
            );
            println!("dry run: nothing was deleted");
        }
        return Ok(crate::exit::OK);
    }
    // SIGINT/SIGTERM stop between deletions; what is deleted stays deleted.
    let shutdown = Shutdown::install(Hooks::message(
        "lethe: prune: stopping after the deletion in progress; what is deleted stays deleted (signal again to exit now)",
    ))?;
    let applied = retention::apply(storage.as_ref(), &plan, &shutdown.token()).await;
    shutdown.stop().await;
    let mut applied = applied?;
    let changes = crate::capture::expiry::run(
        storage.as_ref(),
        now,
        cfg.retention.days,
        grace,
        crate::capture::expiry::held_from(&survey.protections),
    )
    .await?;
    applied.errors.extend(changes.errors.iter().cloned());
    let expired = retention::ChangesExpired {
        segments: changes.segments,
        gaps: changes.gaps,
    };
    retention::record_prune(
        std::sync::Arc::clone(&storage),
        cfg.evidence.keep_days,
        now,
        &applied,
        expired,
        true,
    )
    .await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "dry_run": false, "plan": plan, "applied": applied, "changes": changes })
            )?
        );
    } else {
        println!(
            "deleted {} snapshot(s) and {} leftover(s) ({} objects, {} bytes); aborted {} upload(s)",
            applied.snapshots_deleted.len(),
            applied.leftovers_deleted.len(),
            applied.objects_deleted,
            applied.bytes_freed,
            applied.uploads_aborted
        );
        println!(
            "change stream: deleted {} segment(s), {} leftover part(s), {} gap record(s) ({} bytes)",
            changes.segments, changes.leftovers, changes.gaps, changes.bytes_freed
        );
    }
    for e in &applied.errors {
        eprintln!("lethe: prune: {e}");
    }
    if applied.errors.is_empty() {
        Ok(crate::exit::OK)
    } else {
        tracing::error!(event = "retention.failed", errors = applied.errors.len(), first = %applied.errors[0]);
        Ok(crate::exit::FAILURE)
    }
}
