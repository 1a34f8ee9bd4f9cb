//! The command line (the contract in DESIGN.md; tests and docs rely on these names).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "lethe", version, about = "PostgreSQL snapshots into EU storage; restores that keep erased subjects erased")]
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
    /// Write an age identity (mode 0600) and print its public key.
    Keygen {
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the config; exit 2 with every problem named.
    Check,
}
