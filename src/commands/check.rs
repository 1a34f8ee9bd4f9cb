//! `lethe check`: tries every connection the config names, like
//! `pgbackrest check`, and reports each piece on its own line, going on
//! past failures: the source and its `pg_dump`, the repository, the
//! identity (when configured) and the erasure list (fresh against the
//! journal, as a restore checks it), and `drill.target` when set. Exit 0
//! when every piece passes, 1 when any fails, 2 for a config error (from
//! `Ctx::config`).

use super::Ctx;
use crate::config::Config;
use crate::erasure::{journal, reader};
use crate::storage::Storage;
use std::sync::Arc;
use std::time::Duration;

/// How long one piece may take before it is reported as failed (an
/// unreachable host must not hang a health check).
const PIECE_TIMEOUT: Duration = Duration::from_secs(60);

/// One checked piece: a line of text output, an object of `--json`.
#[derive(Debug, serde::Serialize)]
struct Piece {
    name: &'static str,
    ok: bool,
    detail: String,
}

impl Piece {
    fn ok(name: &'static str, detail: String) -> Piece {
        Piece {
            name,
            ok: true,
            detail,
        }
    }

    fn failed(name: &'static str, detail: String) -> Piece {
        Piece {
            name,
            ok: false,
            detail,
        }
    }
}

pub async fn run(ctx: &Ctx, json: bool) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let mut pieces = Vec::new();

    let (source, server_version_num) = timed("source", source(&cfg)).await;
    pieces.push(source);
    pieces.push(timed_piece("pg_dump", pg_dump(&cfg, server_version_num)).await);
    let (repository, storage) = timed("repository", repository(ctx, &cfg)).await;
    pieces.push(repository);
    if let Some(p) = identity(&cfg) {
        pieces.push(p);
    }
    pieces.push(timed_piece("erasure_list", erasure_list(&cfg, storage)).await);
    if cfg.drill.target.is_some() {
        pieces.push(timed_piece("drill_target", drill_target(&cfg)).await);
    }

    for p in &pieces {
        if json {
            println!("{}", serde_json::to_string(p)?);
        } else {
            let status = if p.ok { "ok" } else { "FAILED" };
            println!("{:<13} {status:<6} {}", p.name, p.detail);
        }
    }
    let failed: Vec<&str> = pieces.iter().filter(|p| !p.ok).map(|p| p.name).collect();
    if failed.is_empty() {
        if !json {
            println!("all {} checks passed", pieces.len());
        }
        Ok(crate::exit::OK)
    } else {
        eprintln!(
            "lethe: check failed: {} (see each line above)",
            failed.join(", ")
        );
        Ok(crate::exit::FAILURE)
    }
}

/// Runs one piece under [`PIECE_TIMEOUT`]; on timeout the piece fails and
/// the extra result is its default.
async fn timed<T: Default>(
    name: &'static str,
    f: impl std::future::Future<Output = (Piece, T)>,
) -> (Piece, T) {
    match tokio::time::timeout(PIECE_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => (
            Piece::failed(
                name,
                format!(
                    "no answer within {}s; check that the host is reachable (network, firewall, address)",
                    PIECE_TIMEOUT.as_secs()
                ),
            ),
            T::default(),
        ),
    }
}

async fn timed_piece(name: &'static str, f: impl std::future::Future<Output = Piece>) -> Piece {
    timed(name, async { (f.await, ()) }).await.0
}

/// Connects to `source.url` as a snapshot does (exported snapshot, catalog
/// checks), returning the server version for the pg_dump check.
async fn source(cfg: &Config) -> (Piece, Option<i32>) {
    let url = crate::config::redact_url(&cfg.source.url);
    let coord = match crate::pg::Coordinator::open(&cfg.source.url).await {
        Ok(c) => c,
        // The error names the (redacted) URL.
        Err(e) => return (Piece::failed("source", format!("source.url: {e}")), None),
    };
    let catalog = coord.catalog().await;
    coord.close().await;
    match catalog {
        Ok(c) => (
            Piece::ok(
                "source",
                format!(
                    "{url}: PostgreSQL {}, database {} as role {}, {} table(s)",
                    c.server_version,
                    c.database,
                    c.role,
                    c.tables.len()
                ),
            ),
            Some(c.server_version_num),
        ),
        Err(e) => (
            Piece::failed("source", format!("source.url = {url}: {e}")),
            None,
        ),
    }
}

/// `pg_dump` is found and can read the server.
async fn pg_dump(cfg: &Config, server_version_num: Option<i32>) -> Piece {
    let dump = match crate::pg::dump::locate(cfg.source.bin_dir.as_deref()).await {
        Ok(d) => d,
        Err(e) => return Piece::failed("pg_dump", e.to_string()),
    };
    let found = format!("{} ({})", dump.path.display(), dump.version);
    match server_version_num {
        None => Piece::failed(
            "pg_dump",
            format!(
                "{found}: not compared with the server, whose version is unknown (the source check failed)"
            ),
        ),
        Some(v) => match dump.check_server(v) {
            Ok(()) => Piece::ok("pg_dump", format!("{found}, can read the server")),
            Err(e) => Piece::failed("pg_dump", e.to_string()),
        },
    }
}

/// Opens the storage, lists the snapshots and reads the marker.
async fn repository(ctx: &Ctx, cfg: &Config) -> (Piece, Option<Arc<dyn Storage>>) {
    let failed = |e: String| {
        Piece::failed(
            "repository",
            format!("storage.url = {}: {e}", cfg.storage.url),
        )
    };
    let storage = match ctx.storage(cfg).await {
        Ok(s) => s,
        Err(e) => return (failed(format!("{e:#}")), None),
    };
    let complete = match crate::repo::layout::list_complete(storage.as_ref()).await {
        Ok(ids) => ids.len(),
        Err(e) => return (failed(e.to_string()), None),
    };
    let piece = match crate::repo::layout::read_marker(storage.as_ref()).await {
        Ok(Some(m)) if m.format > crate::repo::manifest::FORMAT_VERSION => failed(format!(
            "the repository has format {}, newer than this lethe understands; upgrade lethe",
            m.format
        )),
        Ok(Some(m)) => Piece::ok(
            "repository",
            format!(
                "{}: format {}, initialised {}, {complete} complete snapshot(s)",
                storage.describe(),
                m.format,
                m.created_at.format("%Y-%m-%d")
            ),
        ),
        Ok(None) => failed(format!(
            "{} has no repository marker ({complete} complete snapshot(s)); run `lethe init` to set it up",
            storage.describe()
        )),
        Err(e) => failed(e.to_string()),
    };
    (piece, Some(storage))
}

/// The identity file reads and its public key is one of the recipients;
/// `None` when no identity is configured (only restore hosts need one).
fn identity(cfg: &Config) -> Option<Piece> {
    let path = cfg.encryption.identity_file.as_deref()?;
    let shown = path.display();
    let opener = match crate::crypto::Opener::from_identity_file(path) {
        Ok(o) => o,
        Err(e) => {
            return Some(Piece::failed(
                "identity",
                format!("encryption.identity_file: {e}"),
            ));
        }
    };
    let crate::crypto::Opener::Age(ids) = opener else {
        return Some(Piece::failed(
            "identity",
            format!("{shown} holds no age identity"),
        ));
    };
    let recipients: Vec<String> = cfg
        .encryption
        .recipients
        .iter()
        .filter_map(|r| crate::crypto::parse_recipient(r).ok())
        .map(|r| r.to_string())
        .collect();
    let publics: Vec<String> = ids.iter().map(|i| i.to_public().to_string()).collect();
    Some(match publics.iter().find(|p| recipients.contains(p)) {
        Some(p) => Piece::ok(
            "identity",
            format!("{shown}: its public key {p} is one of encryption.recipients"),
        ),
        None if cfg.encryption.disabled || recipients.is_empty() => Piece::failed(
            "identity",
            format!(
                "{shown} reads, but encryption.recipients is empty: snapshots are not sealed to it; \
                 add its public key ({}) to encryption.recipients",
                publics.join(", ")
            ),
        ),
        None => Piece::failed(
            "identity",
            format!(
                "{shown} matches none of encryption.recipients: its public key is {}; this host cannot \
                 decrypt snapshots sealed to the configured recipients. Use the identity whose key is \
                 listed, or add this key to encryption.recipients (new snapshots only)",
                publics.join(", ")
            ),
        ),
    })
}

/// The list exists at `erasure.path`, is current against the journal (the
/// check a restore makes) and reads.
async fn erasure_list(cfg: &Config, storage: Option<Arc<dyn Storage>>) -> Piece {
    let (path, st) = (cfg.erasure.path.clone(), cfg.erasure.subject_type);
    let shown = cfg.erasure.path.display().to_string();
    let failed = |m: String| Piece::failed("erasure_list", m);
    let opened = tokio::task::spawn_blocking(move || reader::open(&path, st)).await;
    let store = match opened {
        Ok(Ok(Some(s))) => Arc::new(s),
        Ok(Ok(None)) => {
            return failed(format!(
                "no erasure list at {shown} (erasure.path): a restore refuses to run without it; \
                 run `lethe erase sync` on this host to build it from the journal, or check erasure.path"
            ));
        }
        Ok(Err(e)) => {
            return failed(format!(
                "the erasure list at {shown} (erasure.path) cannot be opened: {e}"
            ));
        }
        Err(e) => return failed(format!("opening the erasure list stopped: {e}")),
    };
    let Some(storage) = storage else {
        return failed(format!(
            "{shown} opens, but it cannot be checked against the journal: the repository check failed"
        ));
    };
    if let Err(e) = journal::check_fresh(&store, storage.as_ref()).await {
        return failed(e.to_string());
    }
    match reader::load(&store, reader::SNAPSHOT_ATTEMPTS).await {
        Ok((_, state)) => Piece::ok(
            "erasure_list",
            format!(
                "{shown}: {} entr{}, current with the journal in {}",
                state.count,
                if state.count == 1 { "y" } else { "ies" },
                storage.describe()
            ),
        ),
        Err(e) => failed(format!("the erasure list at {shown} cannot be read: {e}")),
    }
}

/// `drill.target`, as a drill would judge it, without creating anything.
async fn drill_target(cfg: &Config) -> Piece {
    match crate::restore::drill::preflight(cfg).await {
        Ok(detail) => Piece::ok("drill_target", detail),
        Err(e) => Piece::failed("drill_target", e.message),
    }
}
