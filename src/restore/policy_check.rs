//! `[erasure]` policies and declared references checked against the source
//! database's tables, so a mistake is found by `lethe config check` instead
//! of by the restore that needs them: unknown tables and columns, redacted
//! keys, dangling references, pseudonyms in types that cannot hold them,
//! and each `set` literal read by PostgreSQL as its column's type.

use super::plan::{RestorePlan, Rules, policy};
use crate::config::Config;
use crate::repo::manifest::Manifest;

/// The source's tables as a manifest with no data.
///
/// # Errors
/// The source cannot be reached or read; the message names it.
pub async fn source_manifest(cfg: &Config) -> Result<(Manifest, crate::pg::PgConn), String> {
    let url = crate::secrets::redact_url(&cfg.source.url);
    let conn = crate::pg::connect(&cfg.source.url)
        .await
        .map_err(|e| format!("source.url = {url}: {e}"))?;
    let catalog = crate::pg::catalog::read(&conn)
        .await
        .map_err(|e| format!("source.url = {url}: {e}"))?;
    Ok((Manifest::of_catalog(&catalog), conn))
}

/// Every problem with the policies and references on the source's
/// current tables, each naming its config key; empty when there is none.
///
/// # Errors
/// The source cannot be reached or read (nothing was checked).
pub async fn against_source(cfg: &Config) -> Result<Vec<String>, String> {
    let (m, conn) = source_manifest(cfg).await?;
    let mut problems = Vec::new();
    if let Err(e) = RestorePlan::build_rules(&m, &Rules::of(&cfg.erasure)) {
        problems.push(e.to_string());
    }
    for l in policy::set_literals(&m, &cfg.erasure.policy, &cfg.erasure.reference) {
        // The type comes from the catalog's format_type(), not the config.
        let sql = format!("SELECT CAST($1::text AS {})::text", l.type_name);
        if let Err(e) = conn.client.query_one(&sql, &[&l.literal]).await {
            let why = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            problems.push(format!(
                "{}: '{}' is not a value of the column's type {}: {why}",
                l.key, l.literal, l.type_name
            ));
        }
    }
    Ok(problems)
}
