//! One function per CLI verb; the daemon calls the same library functions.

mod check;
mod config_check;
mod continuous;
mod daemon;
mod drill;
mod erase;
mod erasure_map;
mod evidence;
mod generate;
mod init;
mod keygen;
mod list;
mod pause;
mod prune;
mod restore;
mod snapshot;
mod status;
mod verify;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::config::Config;
use std::path::PathBuf;

/// A usage or configuration error: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// An error a person has already read on stderr, in the event a command (or
/// the library it called) logged for it (`restore.failed`,
/// `snapshot.failed`, `daemon.failed`…): `main` prints no `lethe: error:`
/// line for it, so each error is shown once. The exit code is the wrapped
/// error's (1, or 2 for a [`UsageError`]).
#[derive(Debug)]
pub struct Reported(pub anyhow::Error);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Reported {}

/// `e` as [`Reported`] when a line at `level` (the event that carries it)
/// reached stderr after `mark`; else `e` as it is, for `main` to print
/// (logging off, or the event filtered out).
pub fn reported(
    mark: &crate::telemetry::LogMark,
    level: tracing::Level,
    e: anyhow::Error,
) -> anyhow::Error {
    if mark.logged_since(level) {
        Reported(e).into()
    } else {
        e
    }
}

/// Loaded lazily: `keygen` runs without a config.
pub struct Ctx {
    pub config_path: PathBuf,
}

impl Ctx {
    /// Loads and validates the config; a bad config is a usage error.
    ///
    /// # Errors
    /// `UsageError` with every problem named.
    pub fn config(&self) -> anyhow::Result<Config> {
        let cfg = Config::load(&self.config_path).map_err(|e| UsageError(e.to_string()))?;
        crate::telemetry::init(&cfg.log).map_err(|e| UsageError(e.to_string()))?;
        register_secrets(&cfg);
        crate::telemetry::panic::test_panic_point("config", || {
            let read = |p: Option<&std::path::Path>| {
                p.and_then(|p| std::fs::read_to_string(p).ok())
                    .unwrap_or_default()
            };
            format!(
                "config = {cfg:?}; args = {:?}; AWS_SECRET_ACCESS_KEY = {:?}; token = {}; identity = {}",
                std::env::args().collect::<Vec<_>>(),
                std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
                read(cfg.api.token_file.as_deref()),
                read(cfg.encryption.identity_file.as_deref()),
            )
        });
        if cfg.encryption.disabled {
            tracing::warn!(
                event = "encryption.disabled",
                "encryption.disabled = true: snapshots are stored unencrypted"
            );
        }
        Ok(cfg)
    }

    /// Opens the configured storage.
    ///
    /// # Errors
    /// Storage cannot be opened.
    pub async fn storage(
        &self,
        cfg: &Config,
    ) -> anyhow::Result<std::sync::Arc<dyn crate::storage::Storage>> {
        Ok(crate::storage::open(&cfg.storage).await?)
    }
}

/// Tells the panic hook which configured secrets to redact: the source
/// URL's password and the API token (the identity is matched by its form).
fn register_secrets(cfg: &Config) {
    crate::telemetry::panic::register_url_password(&cfg.source.url);
    if let Some(token) = cfg
        .api
        .token_file
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        crate::telemetry::panic::register_secret(&token);
    }
}

/// Runs one command and returns its exit code.
///
/// # Errors
/// Any failure; `UsageError` maps to exit 2, the rest to 1.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let ctx = Ctx {
        config_path: crate::config::resolve_path(cli.config.as_deref()),
    };
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check::run(&ctx).await,
        Command::Keygen {
            pseudonym_key: Some(path),
            ..
        } => keygen::pseudonym_key(&path),
        Command::Keygen { output, .. } => keygen::run(output.as_deref()),
        Command::List { json } => list::list(&ctx, json).await,
        Command::Init => init::run(&ctx).await,
        Command::Snapshot => snapshot::run(&ctx).await,
        Command::Restore {
            id,
            before,
            at,
            target,
            to_file,
            identity,
            jobs,
            dry_run,
            report,
            allow_stale_erasure_list,
        } => {
            restore::run(
                &ctx,
                restore::Args {
                    selector: match (at, before, id) {
                        (Some(p), _, _) => crate::repo::layout::Selector::At(p),
                        (None, Some(t), _) => crate::repo::layout::Selector::Before(t),
                        (None, None, id) => crate::repo::layout::Selector::from_arg(
                            id.as_deref().unwrap_or("latest"),
                        ),
                    },
                    target,
                    to_file,
                    identity,
                    jobs,
                    dry_run,
                    report,
                    allow_stale_erasure_list,
                },
            )
            .await
        }
        Command::Verify {
            changes: true,
            deep,
            identity,
            ..
        } => verify::changes(&ctx, deep, identity.as_deref()).await,
        Command::Verify {
            id,
            all,
            deep,
            identity,
            ..
        } => verify::run(&ctx, id.as_deref(), all, deep, identity.as_deref()).await,
        Command::Show { id, json } => list::show(&ctx, &id, json).await,
        Command::Erase { command } => erase::run(&ctx, command).await,
        Command::Erasure {
            command:
                crate::cli::ErasureCommand::Map {
                    snapshot,
                    source,
                    json,
                    dot,
                },
        } => erasure_map::run(&ctx, snapshot.as_deref(), source, json, dot.as_deref()).await,
        Command::Continuous {
            command: crate::cli::ContinuousCommand::Check,
        } => continuous::check(&ctx).await,
        Command::Continuous {
            command: crate::cli::ContinuousCommand::Disable,
        } => continuous::disable(&ctx).await,
        Command::Evidence {
            command: crate::cli::EvidenceCommand::Verify { json },
        } => evidence::verify(&ctx, json).await,
        Command::Evidence {
            command: crate::cli::EvidenceCommand::List { since, json },
        } => evidence::list(&ctx, since, json).await,
        Command::Drill { json } => drill::run(&ctx, json).await,
        Command::Daemon => daemon::run(&ctx).await,
        Command::GenerateAssets { out } => generate::run(&out),
        Command::Prune { dry_run, json } => prune::run(&ctx, dry_run, json).await,
        Command::Status { json } => status::run(&ctx, json).await,
        Command::Check { json } => check::run(&ctx, json).await,
        Command::Pause => pause::run(&ctx, true).await,
        Command::Resume => pause::run(&ctx, false).await,
    }
}
