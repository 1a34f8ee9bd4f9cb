//! `lethe drill [--json]`: one restore drill now (what the daemon runs on
//! `drill.every`).

use super::Ctx;

pub async fn run(ctx: &Ctx, json: bool) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    if cfg.drill.target.is_none() {
        return Err(super::UsageError(
            "drill.target is not set: name the scratch database a drill creates, e.g. \
             target = \"postgres://lethe@scratch-db/lethe_drill\" under [drill]"
                .into(),
        )
        .into());
    }
    let storage = ctx.storage(&cfg).await?;
    let mark = crate::telemetry::LogMark::now();
    match crate::restore::drill::run(&cfg, storage).await {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "drill passed in {:.1} s (restore {:.1} s): snapshot {}{}, {} tables, {} rows restored, {} dropped by the filter, no erased subject found; {} dropped again",
                    r.seconds,
                    r.restore_seconds,
                    r.snapshot,
                    r.point
                        .as_deref()
                        .map(|p| format!(" at {p}"))
                        .unwrap_or_default(),
                    r.tables,
                    r.rows,
                    r.dropped,
                    r.database
                );
            }
            Ok(crate::exit::OK)
        }
        // `drill.failed` carried the step and the error.
        Err(e) => Err(super::reported(&mark, tracing::Level::ERROR, e.into())),
    }
}
