//! `lethe verify <ID|latest|--all> [--deep] [--identity FILE]`: every
//! problem is listed on stdout, each naming its object; exit 1 when there
//! is any. Logs `verify.completed` / `verify.failed` per snapshot, so a
//! scheduled `lethe verify --all` can be alerted on.

use super::{Ctx, UsageError};
use crate::commands::list::human_bytes;
use crate::crypto::Opener;
use crate::repo::layout;
use crate::repo::verify::verify_snapshot;
use std::path::Path;

pub async fn run(
    ctx: &Ctx,
    id: Option<&str>,
    all: bool,
    deep: bool,
    identity: Option<&Path>,
) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let storage = ctx.storage(&cfg).await?;
    let ids = if all {
        let mut v = layout::list_complete(storage.as_ref()).await?;
        v.reverse();
        if v.is_empty() {
            eprintln!("no complete snapshots in {}", storage.describe());
            return Ok(crate::exit::OK);
        }
        v
    } else {
        let scope = crate::restore::source_scope(&cfg)?;
        vec![
            layout::resolve_in(storage.as_ref(), id.unwrap_or("latest"), &scope)
                .await?
                .id,
        ]
    };

    // The identity is loaded once, and only when a snapshot needs it.
    let identity_path = identity
        .map(Path::to_path_buf)
        .or_else(|| cfg.encryption.identity_file.clone());
    let mut age_opener: Option<Opener> = None;
    let (mut failed, mut problems) = (0usize, 0usize);
    for id in &ids {
        let opener = if !deep {
            None
        } else {
            let m = match layout::load_manifest(storage.as_ref(), id).await {
                Ok(m) => m,
                Err(e) => {
                    println!("snapshot {id}: cannot read its manifest: {e}");
                    failed += 1;
                    problems += 1;
                    continue;
                }
            };
            if m.recipients.is_empty() {
                Some(Opener::Plain)
            } else {
                if age_opener.is_none() {
                    age_opener = Some(age_identity(identity_path.as_deref(), "the snapshot")?);
                }
                age_opener.clone()
            }
        };
        match verify_snapshot(storage.clone(), id, opener.as_ref()).await {
            Ok(r) if r.ok() => {
                tracing::info!(event = "verify.completed", id = %id, deep, objects = r.objects, bytes = r.bytes, rows = r.rows);
                let parsed = if deep {
                    format!(", {} rows parsed", r.rows)
                } else {
                    String::new()
                };
                println!(
                    "snapshot {id}: OK ({} objects, {}{parsed})",
                    r.objects,
                    human_bytes(r.bytes)
                );
            }
            Ok(r) => {
                let first = r
                    .problems
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                tracing::error!(event = "verify.failed", id = %id, deep, problems = r.problems.len(), first = %first);
                println!(
                    "snapshot {id}: {} problem(s) in {} objects:",
                    r.problems.len(),
                    r.objects
                );
                for p in &r.problems {
                    println!("  {p}");
                }
                failed += 1;
                problems += r.problems.len();
            }
            Err(e) => {
                println!("snapshot {id}: cannot read its manifest: {e}");
                failed += 1;
                problems += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "lethe: verify found {problems} problem(s) in {failed} of {} snapshot(s)",
            ids.len()
        );
        return Ok(crate::exit::FAILURE);
    }
    Ok(crate::exit::OK)
}

/// `lethe verify --changes [--deep]`: the configured source's change
/// stream. Logs `verify.completed` / `verify.failed` with `id = "changes"`.
pub async fn changes(ctx: &Ctx, deep: bool, identity: Option<&Path>) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let storage = ctx.storage(&cfg).await?;
    let (source, _) = crate::pg::source_identity(&cfg.source.url)?;
    let opener = if !deep {
        None
    } else if cfg.encryption.disabled {
        Some(Opener::Plain)
    } else {
        let path = identity
            .map(Path::to_path_buf)
            .or_else(|| cfg.encryption.identity_file.clone());
        Some(age_identity(path.as_deref(), "the change stream")?)
    };
    let r = crate::repo::verify_changes::verify_changes(storage.clone(), &source, opener.as_ref())
        .await?;
    if r.ok() {
        tracing::info!(
            event = "verify.completed",
            id = "changes",
            deep,
            objects = r.parts,
            bytes = r.bytes,
            rows = r.xacts
        );
        println!(
            "changes of {source}: OK ({} segments, {} parts, {}{})",
            r.segments,
            r.parts,
            human_bytes(r.bytes),
            if deep {
                format!(", {} transactions read", r.xacts)
            } else {
                String::new()
            }
        );
        Ok(crate::exit::OK)
    } else {
        let first = r
            .problems
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::error!(event = "verify.failed", id = "changes", deep, problems = r.problems.len(), first = %first);
        println!(
            "changes of {source}: {} problem(s) in {} segments:",
            r.problems.len(),
            r.segments
        );
        for p in &r.problems {
            println!("  {p}");
        }
        Ok(crate::exit::FAILURE)
    }
}

/// The age identity `--deep` needs to decrypt `what`, from `--identity` or
/// `encryption.identity_file`.
fn age_identity(path: Option<&Path>, what: &str) -> Result<Opener, UsageError> {
    let Some(p) = path else {
        return Err(UsageError(format!(
            "--deep decrypts {what} and needs the age identity: pass --identity FILE \
             or set encryption.identity_file"
        )));
    };
    Opener::from_identity_file(p).map_err(|e| UsageError(e.to_string()))
}
