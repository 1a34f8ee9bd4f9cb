//! `lethe config check`

use super::{Ctx, UsageError};
use crate::config::Config;

pub fn run(ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = Config::load(&ctx.config_path).map_err(|e| UsageError(e.to_string()))?;
    if let Ok(v) = std::env::var("LETHE_LOG")
        && let Err(message) = crate::telemetry::check_level(&v)
    {
        let e = crate::telemetry::LogEnvError { value: v, message };
        return Err(UsageError(e.to_string()).into());
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
    Ok(crate::exit::OK)
}
