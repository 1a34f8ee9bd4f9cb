//! COPY workers: each its own connection, each inside a transaction that
//! imports the coordinator's exported snapshot, so every table is read as of
//! the same instant.

use super::{LOCK_TIMEOUT, PgConn, SourceError, SourceTable, pg_message, quote_literal};
use tokio_postgres::CopyOutStream;

/// One connection that copies tables out of the shared snapshot.
pub struct CopyWorker {
    conn: PgConn,
}

impl CopyWorker {
    /// Connects and imports `snapshot_id` (`SET TRANSACTION SNAPSHOT` must be
    /// the transaction's first statement). Lock waits are bounded, so a COPY
    /// queued behind another session's exclusive lock fails with a message
    /// instead of hanging.
    ///
    /// # Errors
    /// Connection failures, or the snapshot is gone (the coordinator ended).
    pub async fn open(url: &str, snapshot_id: &str) -> Result<CopyWorker, SourceError> {
        let conn = super::connect(url).await?;
        conn.batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}; SET LOCAL lock_timeout = {}",
            quote_literal(snapshot_id),
            quote_literal(LOCK_TIMEOUT)
        ))
        .await
        .map_err(|e| super::query_err(&format!("importing snapshot {snapshot_id}"), &e))?;
        Ok(CopyWorker { conn })
    }

    /// Starts `COPY table (columns) TO STDOUT` (text format). The stream
    /// yields the server's CopyData messages (in practice one row each; a
    /// row always ends with a raw `\n`).
    ///
    /// # Errors
    /// `Copy` naming the table.
    pub async fn copy_out(&self, table: &SourceTable) -> Result<CopyOutStream, SourceError> {
        self.conn
            .copy_out(table.copy_out_sql().as_str())
            .await
            .map_err(|e| SourceError::Copy {
                table: table.qualified(),
                message: pg_message(&e),
            })
    }

    /// Ends the transaction.
    pub async fn close(self) {
        let _ = self.conn.batch_execute("ROLLBACK").await;
    }
}
