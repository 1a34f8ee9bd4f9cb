//! `lethe evidence verify [--json]` and `lethe evidence list [--since D] [--json]`.

use super::Ctx;
use crate::repo::evidence::{self, Record};
use chrono::Utc;

pub async fn verify(ctx: &Ctx, json: bool) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let storage = ctx.storage(&cfg).await?;
    let chain = evidence::read_chain(storage.as_ref()).await?;
    let verdict = evidence::verify(&chain);
    if json {
        let v = match &verdict {
            Ok(v) => serde_json::json!({
                "ok": true,
                "records": v.records,
                "first_seq": v.first_seq,
                "last_seq": v.last_seq,
                "last_hash": v.last_hash,
                "horizon": v.horizon,
            }),
            Err(b) => serde_json::json!({ "ok": false, "broken": b.key, "problem": b.what }),
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    match verdict {
        Ok(v) => {
            if !json {
                match (v.first_seq, v.last_seq, &v.last_hash) {
                    (Some(f), Some(l), Some(h)) => println!(
                        "evidence log holds: {} record(s), {f} to {l}; the last hashes to {h}{}",
                        v.records,
                        v.horizon
                            .map(|s| format!(" (records up to {s} expired by evidence.keep_days)"))
                            .unwrap_or_default()
                    ),
                    _ => println!("evidence log holds: no records yet"),
                }
            }
            Ok(crate::exit::OK)
        }
        Err(b) => {
            eprintln!("lethe: evidence log BROKEN at {}: {}", b.key, b.what);
            Ok(crate::exit::FAILURE)
        }
    }
}

pub async fn list(
    ctx: &Ctx,
    since: Option<std::time::Duration>,
    json: bool,
) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let storage = ctx.storage(&cfg).await?;
    let chain = evidence::read_chain(storage.as_ref()).await?;
    let from = since
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| Utc::now() - d);
    let mut unreadable = 0;
    for stored in &chain.records {
        let Ok(r) = &stored.record else {
            unreadable += 1;
            continue;
        };
        if from.is_some_and(|f| r.at < f) {
            continue;
        }
        if json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!("{}", line(r));
        }
    }
    if unreadable > 0 {
        eprintln!(
            "lethe: warning: {unreadable} record(s) could not be read; run `lethe evidence verify`"
        );
    }
    Ok(crate::exit::OK)
}

/// `  42  2026-12-07T02:00:00Z  host  restore completed  snapshot … rows_read=…`
fn line(r: &Record) -> String {
    let e = &r.entry;
    let mut s = format!(
        "{:>6}  {}  {}  {} {}",
        r.seq,
        crate::units::rfc3339(r.at),
        r.host,
        e.kind.as_str(),
        e.action
    );
    if let Some(id) = &e.snapshot {
        s.push_str(&format!("  snapshot {id}"));
    }
    if let Some(p) = &e.point {
        s.push_str(&format!("  point {p}"));
    }
    if let Some(l) = &e.erasure_list {
        s.push_str(&format!(
            "  list {} ({})",
            l.count,
            &l.digest[..l.digest.len().min(12)]
        ));
    }
    for (k, v) in &e.counts {
        s.push_str(&format!("  {k}={v}"));
    }
    for (k, v) in &e.notes {
        s.push_str(&format!("  {k}={v}"));
    }
    s
}
