//! PostgreSQL's streaming replication protocol, for continuous capture: a
//! `replication=database` connection that creates a logical slot (with an
//! exported snapshot for a base), starts `pgoutput` on it and yields each
//! decoded message, and confirms positions back to the server.
//!
//! The one module that uses `pg_walstream` (pinned exactly in Cargo.toml): a
//! fork or replacement touches only this file. Its own types stay inside;
//! callers see [`Frame`], [`Change`] and [`Col`].
//!
//! pgoutput is asked for protocol version 1, no streaming of transactions in
//! progress (the server sends each transaction after its commit, whole and
//! in commit order), text values (each as the type's output function writes
//! it: what COPY writes before escaping) and logical messages.

use super::SourceError;
use super::tls::{self, Mode};
use bytes::Bytes;
use pg_walstream::{
    CancellationToken, LogicalReplicationMessage, LogicalReplicationParser,
    LogicalReplicationStream, ReplicationError, ReplicationSlotOptions, ReplicationStreamConfig,
    RetryConfig, SharedLsnFeedback, StreamingMode, TupleData,
};
use std::sync::Arc;
use std::time::Duration;

/// Where the CA bundle of Debian and its derivatives lives: passed as
/// `sslrootcert` for `verify-*` modes without one, so the replication
/// connection trusts what Lethe's other connections trust (the system's
/// CAs), not the crate's built-in list.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A failure of the replication connection.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationFailure {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("replication connection to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("replication slot {slot}: {message}")]
    Slot { slot: String, message: String },
    #[error(
        "replication slot {slot} already exists, so no snapshot could be exported for a base; \
         lethe creates the slot it takes a base from (a leftover slot of lethe's is dropped by \
         `lethe continuous disable`)"
    )]
    SlotExists { slot: String },
    #[error("START_REPLICATION on slot {slot} at {lsn} failed: {message}")]
    Start {
        slot: String,
        lsn: String,
        message: String,
    },
    #[error("replication stream on slot {slot}: {message}")]
    Stream { slot: String, message: String },
    #[error("replication stream on slot {slot} sent a message lethe cannot read: {message}")]
    Protocol { slot: String, message: String },
    #[error("replication stream on slot {slot} stopped")]
    Cancelled { slot: String },
}

/// One column of a row as pgoutput sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Col {
    Null,
    /// An unchanged TOASTed value pgoutput did not send (`'u'`).
    Unchanged,
    /// The value's text form.
    Text(Bytes),
}

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelColumn {
    pub name: String,
    pub type_oid: u32,
    pub typmod: i32,
    /// Part of the replica identity.
    pub key: bool,
}

/// A Relation message: the shape of a table as the changes after it use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationMsg {
    pub relid: u32,
    pub schema: String,
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replident: char,
    pub columns: Vec<RelColumn>,
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `final_lsn` is the LSN of the transaction's commit record.
    Begin {
        final_lsn: u64,
        commit_time: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: u64,
        end_lsn: u64,
        commit_time: i64,
    },
    Relation(RelationMsg),
    Insert {
        relid: u32,
        new: Vec<Col>,
    },
    /// `old` is `('K', key columns)` or `('O', the whole old row)` when the
    /// replica identity made pgoutput send it.
    Update {
        relid: u32,
        old: Option<(char, Vec<Col>)>,
        new: Vec<Col>,
    },
    Delete {
        relid: u32,
        kind: char,
        old: Vec<Col>,
    },
    /// `flags`: 1 CASCADE, 2 RESTART IDENTITY.
    Truncate {
        flags: u8,
        relids: Vec<u32>,
    },
    /// `pg_logical_emit_message`: inside a transaction when `transactional`.
    Message {
        transactional: bool,
        lsn: u64,
        prefix: String,
        content: Bytes,
    },
    /// Type and Origin messages: nothing a restore needs.
    Skipped,
}

/// A decoded message with the WAL positions of its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub wal_start: u64,
    pub wal_end: u64,
    /// The server's clock when it sent the frame (µs since 2000-01-01).
    pub server_time: i64,
    pub change: Change,
}

/// A slot just created with an exported snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    /// Where the slot's changes begin: the exported snapshot holds every
    /// transaction that committed before it, and none after.
    pub consistent_lsn: u64,
    /// For `SET TRANSACTION SNAPSHOT` and `pg_dump --snapshot`; valid until
    /// the next command on this connection.
    pub snapshot: String,
}

/// Sends confirmed positions to the server from any task: the slot's
/// `confirmed_flush_lsn` follows what the caller confirms (never ahead of
/// what was received), at the stream's next feedback.
#[derive(Clone)]
pub struct Confirmer(Arc<SharedLsnFeedback>);

impl Confirmer {
    /// Everything before `lsn` is durable; the server may release its WAL.
    pub fn confirm(&self, lsn: u64) {
        self.0.update_flushed_lsn(lsn);
        self.0.update_applied_lsn(lsn);
    }

    /// The highest position confirmed so far (0 if none).
    pub fn confirmed(&self) -> u64 {
        self.0.get_flushed_lsn()
    }
}

/// How a connection is opened.
#[derive(Debug, Clone)]
pub struct Options {
    pub slot: String,
    pub publication: String,
    /// A temporary slot (dropped by the server when the connection ends).
    pub temporary: bool,
}

/// A replication connection bound to one slot.
pub struct ReplicationConn {
    stream: LogicalReplicationStream,
    parser: LogicalReplicationParser,
    slot: String,
    url: String,
}

impl std::fmt::Debug for ReplicationConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationConn")
            .field("slot", &self.slot)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `source.url` as a key=value conninfo for the replication connection:
/// the same user, password (URL, `PGPASSWORD` or the password file), TLS
/// mode and CA as Lethe's other connections, plus `replication=database`.
///
/// # Errors
/// `BadUrl` for what the replication client cannot reach (a Unix socket).
pub fn conninfo(url: &str) -> Result<String, SourceError> {
    let ep = tls::endpoint(url)?;
    let cfg = super::parse_config(&ep.driver_url)?;
    let redacted = crate::secrets::redact_url(url);
    let host = match cfg.get_hosts().first() {
        None => "localhost".to_string(),
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => {
            return Err(SourceError::BadUrl {
                url: redacted,
                message: format!(
                    "continuous capture connects over TCP, not the Unix socket {}; \
                     give source.url a host name or address (e.g. 127.0.0.1)",
                    p.display()
                ),
            });
        }
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let user = cfg.get_user().unwrap_or_default().to_string();
    let (_, dbname) = super::source_identity(url)?;
    let mut parts = vec![
        kv("host", &host),
        kv("port", &port.to_string()),
        kv("user", &user),
        kv("dbname", &dbname),
        kv("replication", "database"),
        kv("application_name", "lethe-capture"),
    ];
    if let Some(pw) = cfg.get_password() {
        parts.push(kv("password", &String::from_utf8_lossy(pw)));
    }
    let (mode, root) = match ep.mode {
        Mode::Disable => ("disable", None),
        Mode::Require => ("require", None),
        Mode::VerifyCa => ("verify-ca", Some(ep.root_cert.clone())),
        Mode::VerifyFull => ("verify-full", Some(ep.root_cert.clone())),
    };
    parts.push(kv("sslmode", mode));
    if let Some(root) = root {
        let root = root.map_or_else(|| SYSTEM_CA_BUNDLE.to_string(), |p| p.display().to_string());
        parts.push(kv("sslrootcert", &root));
    }
    Ok(parts.join(" "))
}

/// `key='value'` with libpq's quoting.
fn kv(key: &str, value: &str) -> String {
    format!(
        "{key}='{}'",
        value.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

impl ReplicationConn {
    /// Opens a replication connection for `opts.slot`.
    ///
    /// # Errors
    /// `Source` for a bad URL, `Connect` with the server's message.
    pub async fn open(url: &str, opts: &Options) -> Result<ReplicationConn, ReplicationFailure> {
        let info = conninfo(url)?;
        let redacted = crate::secrets::redact_url(url);
        let cfg = ReplicationStreamConfig::builder(&opts.slot, &opts.publication)
            .with_protocol_version(1)
            .with_streaming_mode(StreamingMode::Off)
            .with_messages(true)
            .with_binary(false)
            .with_feedback_interval(Duration::from_secs(1))
            .with_connection_timeout(Duration::from_secs(30))
            .with_retry_config(RetryConfig {
                max_attempts: 1,
                initial_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(1),
                multiplier: 2.0,
                max_duration: Duration::from_secs(30),
                jitter: false,
            })
            .with_slot_options(ReplicationSlotOptions {
                temporary: opts.temporary,
                snapshot: Some("export".into()),
                ..Default::default()
            });
        let stream = LogicalReplicationStream::new(&info, cfg)
            .await
            .map_err(|e| ReplicationFailure::Connect {
                url: redacted.clone(),
                message: e.to_string(),
            })?;
        Ok(ReplicationConn {
            stream,
            parser: LogicalReplicationParser::with_protocol_version(1),
            slot: opts.slot.clone(),
            url: redacted,
        })
    }

    /// Creates the slot with an exported snapshot. Send nothing else on
    /// this connection until the snapshot has been imported and used.
    ///
    /// # Errors
    /// `SlotExists` when the slot was already there (no snapshot can be
    /// exported for it); `Slot` with the server's message.
    pub async fn create_slot(&mut self, url: &str) -> Result<CreatedSlot, ReplicationFailure> {
        self.stream
            .ensure_replication_slot()
            .await
            .map_err(|e| ReplicationFailure::Slot {
                slot: self.slot.clone(),
                message: e.to_string(),
            })?;
        let Some(snapshot) = self.stream.exported_snapshot_name().map(str::to_string) else {
            return Err(ReplicationFailure::SlotExists {
                slot: self.slot.clone(),
            });
        };
        // The consistent point is the new slot's confirmed_flush_lsn; read
        // it on a normal connection, since another command on this one
        // would end the exported snapshot.
        let conn = super::connect(url).await?;
        let row = conn
            .query_opt(
                "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots \
                 WHERE slot_name = $1",
                &[&self.slot],
            )
            .await
            .map_err(|e| super::query_err("reading the new slot's consistent point", &e))?;
        let consistent: Option<i64> = row.and_then(|r| r.get(0));
        let Some(consistent) = consistent.and_then(|v| u64::try_from(v).ok()) else {
            return Err(ReplicationFailure::Slot {
                slot: self.slot.clone(),
                message: "created, but pg_replication_slots shows no confirmed_flush_lsn for it"
                    .into(),
            });
        };
        Ok(CreatedSlot {
            consistent_lsn: consistent,
            snapshot,
        })
    }

    /// Starts streaming changes that commit at or after `lsn`.
    ///
    /// pg_walstream 0.9 creates the slot here if it is missing (0.10 can
    /// refuse instead but needs a webpki-roots newer than this machine's
    /// registry has): the caller checks the slot before and after, and a
    /// slot that is new or ahead of what is stored is a gap.
    ///
    /// # Errors
    /// `Start` with the server's message.
    pub async fn start(&mut self, lsn: u64) -> Result<(), ReplicationFailure> {
        self.stream
            .start(Some(lsn))
            .await
            .map_err(|e| ReplicationFailure::Start {
                slot: self.slot.clone(),
                lsn: crate::repo::changes::Lsn(lsn).to_string(),
                message: e.to_string(),
            })
    }

    /// A handle that confirms positions from another task.
    pub fn confirmer(&self) -> Confirmer {
        Confirmer(self.stream.shared_lsn_feedback.clone())
    }

    /// The next message. Keepalives are answered inside.
    ///
    /// # Errors
    /// `Cancelled` when `cancel` fired; `Stream` when the connection broke;
    /// `Protocol` for a message that cannot be decoded.
    pub async fn next(&mut self, cancel: &CancellationToken) -> Result<Frame, ReplicationFailure> {
        let raw = match self.stream.next_raw_event(cancel).await {
            Ok(raw) => raw,
            Err(ReplicationError::Cancelled(_)) => {
                return Err(ReplicationFailure::Cancelled {
                    slot: self.slot.clone(),
                });
            }
            Err(e) => {
                return Err(ReplicationFailure::Stream {
                    slot: self.slot.clone(),
                    message: e.to_string(),
                });
            }
        };
        let protocol = |message: String| ReplicationFailure::Protocol {
            slot: self.slot.clone(),
            message,
        };
        if raw.data.is_empty() {
            return Err(protocol("an XLogData frame without a message".into()));
        }
        let msg = self
            .parser
            .parse_wal_message_bytes(raw.data.clone())
            .map_err(|e| protocol(e.to_string()))?;
        if msg.is_streaming {
            return Err(protocol(
                "a streamed (in-progress) transaction, which lethe does not ask for".into(),
            ));
        }
        let change = change_of(msg.message).map_err(protocol)?;
        Ok(Frame {
            wal_start: raw.wal_start.value(),
            wal_end: raw.wal_end.value(),
            server_time: raw.server_time,
            change,
        })
    }

    /// Sends a last status update and ends the stream.
    pub async fn close(mut self) {
        let _ = self.stream.stop().await;
    }
}

fn cols(t: TupleData) -> Vec<Col> {
    (0..t.column_count())
        .filter_map(|i| t.get_column(i))
        .map(|c| {
            if c.is_null() {
                Col::Null
            } else if c.is_unchanged() {
                Col::Unchanged
            } else {
                Col::Text(c.raw_bytes())
            }
        })
        .collect()
}

fn change_of(m: LogicalReplicationMessage) -> Result<Change, String> {
    use LogicalReplicationMessage as M;
    Ok(match m {
        M::Begin {
            final_lsn,
            timestamp,
            xid,
        } => Change::Begin {
            final_lsn,
            commit_time: timestamp,
            xid,
        },
        M::Commit {
            commit_lsn,
            end_lsn,
            timestamp,
            ..
        } => Change::Commit {
            commit_lsn,
            end_lsn,
            commit_time: timestamp,
        },
        M::Relation {
            relation_id,
            namespace,
            relation_name,
            replica_identity,
            columns,
        } => Change::Relation(RelationMsg {
            relid: relation_id,
            schema: namespace.to_string(),
            name: relation_name.to_string(),
            replident: replica_identity as char,
            columns: columns
                .into_iter()
                .map(|c| RelColumn {
                    key: c.is_key(),
                    name: c.name.to_string(),
                    type_oid: c.type_id,
                    typmod: c.type_modifier,
                })
                .collect(),
        }),
        M::Insert { relation_id, tuple } => Change::Insert {
            relid: relation_id,
            new: cols(tuple),
        },
        M::Update {
            relation_id,
            old_tuple,
            new_tuple,
            key_type,
        } => Change::Update {
            relid: relation_id,
            old: match (old_tuple, key_type) {
                (Some(t), Some(k)) => Some((k, cols(t))),
                (Some(t), None) => Some(('O', cols(t))),
                (None, _) => None,
            },
            new: cols(new_tuple),
        },
        M::Delete {
            relation_id,
            old_tuple,
            key_type,
        } => Change::Delete {
            relid: relation_id,
            kind: key_type,
            old: cols(old_tuple),
        },
        M::Truncate {
            relation_ids,
            flags,
        } => Change::Truncate {
            flags,
            relids: relation_ids,
        },
        M::Message {
            flags,
            lsn,
            prefix,
            content,
        } => Change::Message {
            transactional: flags & 1 == 1,
            lsn,
            prefix,
            content,
        },
        M::Type { .. } | M::Origin { .. } => Change::Skipped,
        other => return Err(format!("unexpected pgoutput message {other:?}")),
    })
}
