//! The command line: a contract with operators and scripts (README's Commands section lists it; tests and docs rely on these names).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "lethe",
    version = lethe::VERSION_LINE,
    about = "PostgreSQL snapshots into EU storage; restores that keep erased subjects erased"
)]
pub struct Cli {
    /// Config file (default: $LETHE_CONFIG, else /etc/lethe/lethe.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Complete snapshots, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One snapshot's manifest summary.
    Show {
        /// Snapshot id or `latest`.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Initialise the repository: marker, lifecycle rules (S3), residency check.
    Init,
    /// What a restore does to erased subjects' data, table by table.
    Erasure {
        #[command(subcommand)]
        command: ErasureCommand,
    },
    /// Take one snapshot now; exits 0 once it is committed (prints its id).
    Snapshot,
    /// Restore a snapshot through the erasure filter into an empty database or a SQL file.
    Restore {
        /// Snapshot id or `latest` (or use --before or --at instead).
        #[arg(required_unless_present_any = ["before", "at"], conflicts_with_all = ["before", "at"])]
        id: Option<String>,
        /// Instead of an id: the newest complete snapshot of the configured
        /// database that finished strictly before this RFC 3339 time, e.g.
        /// 2026-12-06T09:00:00Z (before the damage).
        #[arg(long, value_name = "TIME", value_parser = parse_before, conflicts_with = "at")]
        before: Option<chrono::DateTime<chrono::Utc>>,
        /// Point-in-time restore from continuous capture: the database as
        /// it was at this RFC 3339 time (the last commit at or before it),
        /// at an LSN (0/16B3748), or at `latest` (the last flushed commit);
        /// a base plus the changes after it, through the same filter.
        #[arg(long, value_name = "TIME|LSN|latest", value_parser = parse_at)]
        at: Option<crate::repo::changes::Point>,
        /// An empty PostgreSQL database (postgres://…); refused if it holds any table.
        #[arg(long, value_name = "URL", conflicts_with = "to_file")]
        target: Option<String>,
        /// Write one plain SQL file for `psql -v ON_ERROR_STOP=1 -f` instead.
        #[arg(long, value_name = "PATH")]
        to_file: Option<PathBuf>,
        /// age identity (default: encryption.identity_file).
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// Tables loaded in parallel, each on its own connection (default:
        /// source.jobs); a table waits for the tables it references.
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
        /// Read and filter everything and print the report, but write
        /// nothing and connect to no database (SET DEFAULT values that need
        /// the target are not evaluated; the counts are the same).
        #[arg(long)]
        dry_run: bool,
        /// Also write the report as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Emergency only: restore even if the erasure list cannot be proven
        /// current against the journal (logged loudly). A missing or
        /// unreadable list is never overridable.
        #[arg(long)]
        allow_stale_erasure_list: bool,
    },
    /// Check stored objects against the manifest (`--deep`: decrypt and parse too).
    Verify {
        /// Snapshot id or `latest`.
        #[arg(required_unless_present_any = ["all", "changes"], conflicts_with_all = ["all", "changes"])]
        id: Option<String>,
        /// Verify every complete snapshot.
        #[arg(long, conflicts_with = "changes")]
        all: bool,
        /// Verify the change stream of continuous capture: every segment's
        /// parts, and that the segments chain without a hole.
        #[arg(long)]
        changes: bool,
        /// Also decrypt, decompress and parse every object, counting rows.
        #[arg(long)]
        deep: bool,
        /// age identity for --deep (default: encryption.identity_file).
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
    },
    /// Write an age identity (mode 0600) and print its public key; with
    /// --pseudonym-key, a pseudonym key instead.
    Keygen {
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Write a new key for "pseudonym" redactions (32 random bytes as
        /// hex, mode 0600; an existing file is refused) and print the config
        /// line that names it (erasure.pseudonym_key_file).
        #[arg(long, value_name = "FILE", conflicts_with = "output")]
        pseudonym_key: Option<PathBuf>,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The erasure list: subjects a restore must never bring back.
    Erase {
        #[command(subcommand)]
        command: EraseCommand,
    },
    /// Continuous capture from a logical replication slot.
    Continuous {
        #[command(subcommand)]
        command: ContinuousCommand,
    },
    /// The evidence log: a hash-chained record of every restore, drill,
    /// prune, erasure batch and leak detection, for auditors.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Run one restore drill now: restore the latest snapshot (or point)
    /// into a scratch database it creates (drill.target), check the rows and
    /// that no erased subject is there, drop it. Exit 0 passed, 1 failed.
    Drill {
        #[arg(long)]
        json: bool,
    },
    /// Run the scheduler, retention, journal sync and the erasure API until SIGTERM.
    Daemon,
    /// Write the man pages (lethe.1 and one per subcommand) and the bash,
    /// zsh and fish completions into DIR (for packaging).
    #[command(hide = true)]
    GenerateAssets {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Apply retention now: expired snapshots, leftovers, unfinished uploads.
    Prune {
        /// Print the plan and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the plan (and what was done) as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Pause the running daemon's scheduled snapshots (and SIGUSR1); the
    /// erasure API keeps accepting erasures. Not kept across a daemon restart.
    Pause,
    /// Resume the running daemon's scheduled snapshots.
    Resume,
    /// Try every connection the config names (source, pg_dump, repository,
    /// identity, erasure list, drill.target), one line per piece; exit 0 when all pass, 1
    /// when any fails.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Last snapshot and its age, next run, snapshot count and size, erasure list, lifecycle rule.
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// `--before`: an RFC 3339 time (a date alone is refused: say which moment).
fn parse_at(s: &str) -> Result<crate::repo::changes::Point, String> {
    s.trim().parse()
}

fn parse_before(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            format!(
                "{e}: --before takes an RFC 3339 time with a zone, e.g. 2026-12-06T09:00:00Z or 2026-12-06T10:00:00+01:00"
            )
        })
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the config; exit 2 with every problem named.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Check the whole chain: every record hashes to its name and names the
    /// one before it, none is missing or doubled. Exit 0 when it holds, 1
    /// naming the first broken link.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// The records, oldest first.
    List {
        /// Only records of the last DURATION (e.g. 30d, 12h).
        #[arg(long, value_name = "DURATION", value_parser = parse_since)]
        since: Option<std::time::Duration>,
        /// One JSON record per line, as stored.
        #[arg(long)]
        json: bool,
    },
}

fn parse_since(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}: --since takes a duration such as 30d, 12h or 90m"))
}

#[derive(Debug, Subcommand)]
pub enum ContinuousCommand {
    /// Check that the source allows continuous capture (wal_level, the
    /// role's REPLICATION, a replica identity on every table) without
    /// changing it; exit 0 when ready, 2 naming every problem and its fix.
    /// Warnings go to stderr.
    Check,
    /// Drop continuous capture's replication slot and publication from the
    /// source (continuous.slot, continuous.publication): one line per thing
    /// removed, or "nothing to remove". A slot a session is reading is
    /// refused (exit 1, naming its pid); lethe terminates nothing.
    Disable,
}

#[derive(Debug, Subcommand)]
pub enum ErasureCommand {
    /// Per table: what a restore does to an erased subject's rows (drop,
    /// redact, keep, rewrite) and why, and the columns that look like
    /// subject references no key or erasure.reference reaches.
    Map {
        /// Snapshot id or `latest` (the default) whose tables to map.
        #[arg(long, value_name = "ID", conflicts_with = "source")]
        snapshot: Option<String>,
        /// Map the source database's current tables instead of a snapshot's.
        #[arg(long)]
        source: bool,
        #[arg(long)]
        json: bool,
        /// Also write the map as a Graphviz picture (`dot -Tsvg FILE`).
        #[arg(long, value_name = "FILE")]
        dot: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EraseCommand {
    /// List subject ids; acknowledged only once durably written.
    Add {
        /// Ids of the configured erasure.subject_type (use `--` before ids starting with '-').
        #[arg(required = true, allow_negative_numbers = true)]
        subjects: Vec<String>,
        /// Why: a ticket or request reference, stored with the entry.
        #[arg(long, value_name = "TEXT")]
        reference: Option<String>,
        /// Which named subject the ids are (erasure.subjects[].subject);
        /// needed when the config names more than one.
        #[arg(long = "subject", value_name = "NAME")]
        of: Option<String>,
    },
    /// Undo a mistyped add: take ids off the list, journaled so every host
    /// that syncs the list applies it. All or nothing: an id that is not
    /// listed refuses the whole command (exit 1).
    Remove {
        /// Listed ids (use `--` before ids starting with '-').
        #[arg(required = true, allow_negative_numbers = true)]
        subjects: Vec<String>,
        /// Why the ids are removed (required; journaled and logged).
        #[arg(long, value_name = "TEXT", required = true)]
        reason: String,
        /// Which named subject the ids are, as for `erase add`.
        #[arg(long = "subject", value_name = "NAME")]
        of: Option<String>,
    },
    /// List every id in FILE (or `-` for stdin), one per line; blank lines and
    /// `#` comments are skipped. Any invalid line refuses the whole file.
    Import {
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
        #[arg(long, value_name = "TEXT")]
        reference: Option<String>,
        #[arg(long = "subject", value_name = "NAME")]
        of: Option<String>,
    },
    /// Exit 0 if the id is listed, 1 if not.
    Check {
        #[arg(allow_negative_numbers = true)]
        subject: String,
        #[arg(long = "subject", value_name = "NAME")]
        of: Option<String>,
    },
    /// Every listed id: subject, added, origin, reference, journal state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Merge the journal from storage and upload pending entries.
    Sync,
    /// Serve the erasure API in the foreground (what the daemon runs).
    #[command(hide = true)]
    Serve,
}
