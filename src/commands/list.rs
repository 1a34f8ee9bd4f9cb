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
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if rows.is_empty() {
        eprintln!("no complete snapshots in {}", storage.describe());
    } else {
        println!(
            "{:<22} {:<20} {:>7} {:>12} {:>10}  expires",
            "ID", "FINISHED", "TABLES", "ROWS", "STORED"
        );
        for m in &rows {
            println!(
                "{:<22} {:<20} {:>7} {:>12} {:>10}  {}",
                m.id,
                m.finished_at.format("%Y-%m-%d %H:%M:%S"),
                m.tables.len(),
                m.total_rows(),
                human_bytes(m.stored_bytes()),
                m.expires_at.format("%Y-%m-%d")
            );
        }
    }
    Ok(crate::exit::OK)
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
    println!(
        "{:<40} {:>12} {:>10} {:>8}",
        "TABLE", "ROWS", "STORED", "OBJECTS"
    );
    for t in &m.tables {
        let stored: u64 = t.objects.iter().map(|o| o.size).sum();
        println!(
            "{:<40} {:>12} {:>10} {:>8}",
            t.qualified(),
            t.rows,
            human_bytes(stored),
            t.objects.len()
        );
    }
    println!(
        "{} foreign keys, {} sequences",
        m.foreign_keys.len(),
        m.sequences.len()
    );
    Ok(crate::exit::OK)
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
