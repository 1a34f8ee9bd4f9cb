//! `lethe list` and `lethe show`

use super::Ctx;
use crate::repo::layout;

pub async fn list(ctx: &Ctx, json: bool) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let storage = ctx.storage(&cfg).await?;
    let ids = layout::list_complete(storage.as_ref()).await?;
    let mut rows = Vec::new();
    for id in &ids {
        let m = layout::load_manifest(storage.as_ref(), id).await?;
        rows.push(m);
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id, "started_at": m.started_at, "finished_at": m.finished_at,
                    "expires_at": m.expires_at, "database": m.database, "tables": m.tables.len(),
                    "rows": m.total_rows(), "stored_bytes": m.stored_bytes(), "raw_bytes": m.raw_bytes(),
                    "duration_s": (m.finished_at - m.started_at).num_seconds(),
                    "base": m.continuous,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if rows.is_empty() {
        eprintln!("no complete snapshots in {}", storage.describe());
    } else {
        println!(
            "{:<22} {:<20} {:<20} {:>9} {:>7} {:>12} {:>10}  expires",
            "ID", "STARTED (UTC)", "FINISHED (UTC)", "DURATION", "TABLES", "ROWS", "STORED"
        );
        for m in &rows {
            println!(
                "{:<22} {:<20} {:<20} {:>9} {:>7} {:>12} {:>10}  {}",
                m.id,
                m.started_at.format("%Y-%m-%d %H:%M:%S"),
                m.finished_at.format("%Y-%m-%d %H:%M:%S"),
                crate::restore::human_ago((m.finished_at - m.started_at).num_seconds()),
                m.tables.len(),
                m.total_rows(),
                human_bytes(m.stored_bytes()),
                m.expires_at.format("%Y-%m-%d")
            );
        }
    }
    if !json && cfg.continuous.enabled {
        print!(
            "{}",
            continuous_section(&cfg, storage.as_ref(), &rows).await?
        );
    }
    Ok(crate::exit::OK)
}

/// The change stream as stored: bases, restorable windows and gaps.
async fn continuous_section(
    cfg: &crate::config::Config,
    storage: &dyn crate::storage::Storage,
    snapshots: &[crate::repo::manifest::Manifest],
) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let (source, _) = crate::pg::source_identity(&cfg.source.url)?;
    let crate::capture::window::Stored {
        head,
        mut gaps,
        bases,
        windows,
    } = crate::capture::window::stored(storage, &source, snapshots).await?;
    let t = |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\ncontinuous capture: {} base(s); changes stored through {}",
        bases.len(),
        head.as_ref().map_or("nothing yet".to_string(), |h| format!(
            "{} (last commit {})",
            t(h.verified_at),
            h.last_commit_at.map_or("none yet".to_string(), t)
        ))
    );
    for w in &windows {
        let _ = writeln!(
            s,
            "  window {} → {}  ({} base(s), epoch {})",
            t(w.from),
            t(w.to),
            w.bases,
            w.epoch
        );
    }
    gaps.sort_by_key(|g| g.detected_at);
    for g in &gaps {
        let _ = writeln!(
            s,
            "  GAP    {} → {}  ({})",
            g.last_commit_at.map_or("?".to_string(), t),
            g.resumed_at.map_or("not closed yet".to_string(), t),
            g.reason
        );
    }
    let _ = writeln!(
        s,
        "  (`lethe restore --at TIME` restores the database as it was at any time inside a window)"
    );
    Ok(s)
}

pub async fn show(ctx: &Ctx, selector: &str, json: bool) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let storage = ctx.storage(&cfg).await?;
    let scope = crate::restore::source_scope(&cfg)?;
    let m = layout::resolve_in(storage.as_ref(), selector, &scope).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&m)?);
        return Ok(crate::exit::OK);
    }
    println!("snapshot   {}", m.id);
    println!(
        "database   {} (PostgreSQL {})",
        m.database, m.server_version
    );
    println!("taken      {} .. {}", m.started_at, m.finished_at);
    println!("expires    {}", m.expires_at);
    println!(
        "encryption {}",
        if m.recipients.is_empty() {
            "none".to_string()
        } else {
            format!("age, recipients {}", m.recipients.join(", "))
        }
    );
    println!(
        "erasures   {} entries at snapshot time (digest {})",
        m.erasure_list.count, m.erasure_list.digest
    );
    println!(
        "size       {} raw, {} stored",
        human_bytes(m.raw_bytes()),
        human_bytes(m.stored_bytes())
    );
    let prev = previous(storage.as_ref(), &m, &scope).await?;
    match &prev {
        Some(p) => println!(
            "compared   with the previous complete snapshot {} (finished {}): SHRANK = fewer than half its rows, MISSING = gone",
            p.id,
            p.finished_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => println!("compared   with nothing: no earlier complete snapshot of this database"),
    }
    println!(
        "{:<40} {:>12} {:>10} {:>10} {:>8}  VS PREVIOUS",
        "TABLE", "ROWS", "RAW", "STORED", "OBJECTS"
    );
    for t in &m.tables {
        let stored: u64 = t.objects.iter().map(|o| o.size).sum();
        let mark = match prev
            .as_ref()
            .and_then(|p| p.tables.iter().find(|o| o.qualified() == t.qualified()))
        {
            Some(o) if t.rows.saturating_mul(2) < o.rows => format!("SHRANK from {} rows", o.rows),
            _ => String::new(),
        };
        println!(
            "{:<40} {:>12} {:>10} {:>10} {:>8}  {mark}",
            t.qualified(),
            t.rows,
            human_bytes(t.raw_bytes),
            human_bytes(stored),
            t.objects.len()
        );
    }
    if let Some(p) = &prev {
        for o in &p.tables {
            if !m.tables.iter().any(|t| t.qualified() == o.qualified()) {
                println!(
                    "{:<40} {:>12} {:>10} {:>10} {:>8}  MISSING (had {} row{})",
                    o.qualified(),
                    "-",
                    "-",
                    "-",
                    "-",
                    o.rows,
                    if o.rows == 1 { "" } else { "s" }
                );
            }
        }
    }
    println!(
        "{} foreign keys, {} sequences",
        m.foreign_keys.len(),
        m.sequences.len()
    );
    Ok(crate::exit::OK)
}

/// The newest complete snapshot of the same source that started before
/// `m` (ids sort by start time), if any.
async fn previous(
    storage: &dyn crate::storage::Storage,
    m: &crate::repo::manifest::Manifest,
    scope: &layout::SourceScope,
) -> anyhow::Result<Option<crate::repo::manifest::Manifest>> {
    for id in layout::list_complete(storage).await? {
        if id >= m.id {
            continue;
        }
        // An unreadable older manifest only loses the comparison.
        let Ok(p) = layout::load_manifest(storage, &id).await else {
            continue;
        };
        if scope.matches(&p) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// `1.5 GiB`-style sizes for humans.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
