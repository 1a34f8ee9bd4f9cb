//! `lethe restore (<ID|latest> | --before TIME) (--target URL | --to-file PATH) [--dry-run] …`:
//! a snapshot through the erasure filter, with a report of what was dropped.

use super::{Ctx, UsageError};
use crate::repo::evidence::{Entry, Kind};
use crate::restore::{Destination, RestoreOptions};
use std::io::IsTerminal;
use std::path::PathBuf;

/// How long the evidence turn taken as post-data begins is held for the
/// record: post-data plus sequences of a small database; a larger one's
/// restore gives it back and takes its own turn at the end.
const EARLY_TURN_HOLD: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Args {
    pub selector: crate::repo::layout::Selector,
    pub target: Option<String>,
    pub to_file: Option<PathBuf>,
    pub identity: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub dry_run: bool,
    pub report: Option<PathBuf>,
    pub allow_stale_erasure_list: bool,
}

pub async fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let jobs = a.jobs.unwrap_or(cfg.source.jobs);
    if !(1..=64).contains(&jobs) {
        return Err(UsageError(format!("--jobs {jobs}: must be between 1 and 64")).into());
    }
    if let Some(t) = &a.target
        && !(t.starts_with("postgres://") || t.starts_with("postgresql://"))
    {
        return Err(UsageError(format!(
            "--target {}: must be a postgres:// or postgresql:// URL of an empty database",
            crate::config::redact_url(t)
        ))
        .into());
    }
    let destination = match (a.target, a.to_file) {
        (Some(t), _) => Destination::Target(t),
        (None, Some(p)) => Destination::File(p),
        (None, None) if a.dry_run => Destination::Nowhere,
        (None, None) => {
            return Err(UsageError(
                "say where to restore: --target URL (an empty database) or --to-file PATH (a SQL file); \
                 or --dry-run to see the report without writing anything"
                    .into(),
            )
            .into());
        }
    };
    let storage = ctx.storage(&cfg).await?;
    let opts = RestoreOptions {
        selector: a.selector.clone(),
        destination,
        dry_run: a.dry_run,
        identity: a.identity,
        jobs,
        allow_stale_erasure_list: a.allow_stale_erasure_list,
        announce: true,
        progress: std::io::stderr().is_terminal(),
        target_claimed: Default::default(),
        finishing: Default::default(),
    };
    // The evidence record's turn is taken while post-data runs, so the
    // lease's settle delay is not added to the restore's time.
    let finishing = opts.finishing.clone();
    let early = crate::repo::evidence::EarlyTurn::start(
        std::sync::Arc::clone(&storage),
        async move { finishing.notified().await },
        EARLY_TURN_HOLD,
    );
    let shutdown = crate::shutdown::Shutdown::install(crate::shutdown::Hooks::quiet())?;
    let result = tokio::select! {
        r = crate::restore::restore(&cfg, std::sync::Arc::clone(&storage), &opts) => r.map_err(anyhow::Error::from),
        sig = shutdown.stopped() => Err(cancelled(sig, &opts).await),
    };
    shutdown.stop().await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            // The error is the event's `error` field, not also its message:
            // a person reads it once (and `main` does not print it again).
            let mark = crate::telemetry::LogMark::now();
            tracing::error!(event = "restore.failed", snapshot = %a.selector, dry_run = a.dry_run, error = %format!("{e:#}"), "restore failed");
            // Evidence of the attempt: what was asked, never the error's
            // text (a database error can quote a row).
            let entry = Entry::new(Kind::Restore, "failed")
                .snapshot(&a.selector)
                .note("dry_run", if a.dry_run { "true" } else { "false" });
            crate::repo::evidence::record_in_turn(storage, entry, Some(early)).await;
            return Err(super::reported(&mark, tracing::Level::ERROR, e));
        }
    };
    // The restore happened whether or not its report file can be written:
    // it is logged and put in the evidence first.
    report.log_completed();
    crate::repo::evidence::record_in_turn(storage, report.evidence(Kind::Restore), Some(early))
        .await;
    if let Some(path) = &a.report {
        std::fs::write(path, report.to_json() + "\n").map_err(|e| {
            anyhow::anyhow!(
                "the restore finished but the report could not be written to {}: {e}",
                path.display()
            )
        })?;
    }
    print!("{}", report.human());
    Ok(crate::exit::OK)
}

/// The restore future has been dropped: in-flight tables rolled back (their
/// connections closed), a partial SQL file removed. A target this restore
/// had claimed (found empty, then written) is emptied of every row, so
/// nothing erased stays behind in a half-restored database.
async fn cancelled(sig: &str, opts: &RestoreOptions) -> anyhow::Error {
    let what = match (&opts.destination, opts.dry_run) {
        (Destination::Target(u), false)
            if opts
                .target_claimed
                .load(std::sync::atomic::Ordering::SeqCst) =>
        {
            let purged = tokio::time::timeout(
                std::time::Duration::from_secs(60),
                crate::restore::dest::target::purge_rows(u),
            )
            .await;
            let rows = match purged {
                Ok(Ok(())) => {
                    "every row it loaded was removed again (TRUNCATE), but its schema is partial"
                        .to_string()
                }
                Ok(Err(e)) => {
                    format!("removing the rows it loaded ALSO FAILED ({e}): it may hold rows")
                }
                Err(_) => {
                    "removing the rows it loaded did not finish within 60 s: it may hold rows"
                        .to_string()
                }
            };
            format!(
                "; {} was left incomplete: {rows}; drop it and restore into a new, empty database",
                crate::config::redact_url(u)
            )
        }
        (Destination::Target(_), false) => "; the target was not written".to_string(),
        (Destination::File(p), false) => format!("; {} was not written", p.display()),
        _ => String::new(),
    };
    anyhow::anyhow!("restore cancelled by {sig}{what}")
}
