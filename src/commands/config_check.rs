//! `lethe config check`

use super::{Ctx, UsageError};
use crate::config::Config;

pub async fn run(ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = Config::load(&ctx.config_path).map_err(|e| UsageError(e.to_string()))?;
    if let Ok(v) = std::env::var("LETHE_LOG")
        && let Err(message) = crate::telemetry::check_level(&v)
    {
        let e = crate::telemetry::LogEnvError { value: v, message };
        return Err(UsageError(e.to_string()).into());
    }
    // Policies and references name tables: check them on the source's.
    let e = &cfg.erasure;
    let mut unchecked = None;
    if !e.policy.is_empty() || !e.reference.is_empty() {
        match crate::restore::policy_check::against_source(&cfg).await {
            Ok(problems) if problems.is_empty() => {}
            Ok(problems) => {
                return Err(UsageError(format!(
                    "config file {} has {} problem(s):\n  {}",
                    ctx.config_path.display(),
                    problems.len(),
                    problems.join("\n  ")
                ))
                .into());
            }
            Err(why) => unchecked = Some(why),
        }
    }
    println!("config {} is valid", ctx.config_path.display());
    println!(
        "  source:    {} (jobs {})",
        crate::config::redact_url(&cfg.source.url),
        cfg.source.jobs
    );
    println!(
        "  storage:   {} (region {})",
        cfg.storage.url, cfg.storage.region
    );
    println!("  retention: {} days", cfg.retention.days);
    if cfg.encryption.disabled {
        println!("  encryption: DISABLED (snapshots stored in plaintext)");
    } else {
        println!(
            "  encryption: age, {} recipient(s)",
            cfg.encryption.recipients.len()
        );
    }
    if !e.policy.is_empty() || !e.reference.is_empty() {
        println!(
            "  erasure:   {} policy(ies), {} declared reference(s){}",
            e.policy.len(),
            e.reference.len(),
            if unchecked.is_some() {
                " (NOT checked against the source's tables)"
            } else {
                ", checked against the source's tables"
            }
        );
    }
    if cfg.continuous.enabled {
        eprintln!(
            "lethe: warning: continuous.enabled = true: the daemon captures every committed change into storage, but `lethe restore` does not read the changes yet (point-in-time restore comes next), so a restore still uses the newest base or scheduled snapshot; `lethe continuous check` tells whether the source can be captured"
        );
    }
    if let Some(why) = unchecked {
        eprintln!(
            "lethe: warning: erasure.policy / erasure.reference were not checked against the source's tables, which could not be read ({why}); every restore checks them against its snapshot before it writes anything"
        );
    }
    Ok(crate::exit::OK)
}
