//! Table data into the target: `COPY … FROM STDIN` in one transaction per
//! table, and the large objects through a staging table.

use crate::framed::Frame;
use crate::pg::{connect, pg_message, quote_ident, quote_qualified};
use crate::repo::manifest::TableEntry;
use crate::restore::RestoreError;
use futures::SinkExt;
use tokio::sync::mpsc;

/// Opens the transaction that loads the large objects: their chunks go to
/// a staging table first.
pub const LO_STAGE: &str = "BEGIN; CREATE TEMP TABLE lethe_large_objects \
    (oid oid, off bigint, data bytea) ON COMMIT DROP";

/// Writes the staged chunks into the large objects pre-data created, and
/// unlinks those no chunk arrived for: the filter dropped them with the row
/// that owned them (every object in a snapshot has at least one chunk).
pub const LO_FINISH: &str = "SELECT count(lo_put(oid, off, data)) FROM lethe_large_objects; \
    SELECT count(lo_unlink(m.oid)) FROM pg_largeobject_metadata m \
    WHERE NOT EXISTS (SELECT 1 FROM lethe_large_objects l WHERE l.oid = m.oid)";

/// `COPY "s"."t" ("a", "b") FROM STDIN`
pub fn copy_in_sql(t: &TableEntry, freeze: bool) -> String {
    if t.large_objects {
        return "COPY lethe_large_objects (oid, off, data) FROM STDIN".into();
    }
    let cols = if t.columns.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            t.columns
                .iter()
                .filter(|c| !c.generated)
                .map(|c| quote_ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "COPY {}{cols} FROM STDIN{}",
        quote_qualified(&t.schema, &t.name),
        if freeze { " WITH (FREEZE)" } else { "" }
    )
}

/// Loads one table into the target: its own connection and transaction
/// (`TRUNCATE ONLY` then `COPY … FROM STDIN WITH (FREEZE)`, so rows are
/// written frozen and a failed table leaves nothing behind).
///
/// # Errors
/// `Load` naming the table; a stream that stops without `Frame::End`
/// rolls the table back.
pub async fn load_table(
    url: &str,
    t: &TableEntry,
    mut rx: mpsc::Receiver<Frame>,
) -> Result<(), RestoreError> {
    let table = t.qualified();
    let fail = |message: String| RestoreError::Load {
        table: table.clone(),
        message,
    };
    let conn = connect(url).await.map_err(|e| fail(e.to_string()))?;
    // An extension's configuration table already holds the extension's
    // own rows (from CREATE EXTENSION): added to, never emptied, and
    // not frozen (FREEZE needs the table emptied in this transaction).
    // The large objects are staged, then written with lo_put into the
    // (empty) objects pre-data created; see `LO_FINISH`.
    let freeze = !t.extension_config && !t.large_objects;
    let begin = if t.large_objects {
        LO_STAGE.to_string()
    } else if freeze {
        format!(
            "BEGIN; TRUNCATE ONLY {}",
            quote_qualified(&t.schema, &t.name)
        )
    } else {
        "BEGIN".to_string()
    };
    conn.batch_execute(&begin)
        .await
        .map_err(|e| fail(pg_message(&e)))?;
    // Boxed, not pinned on the stack: dropping it must really drop it,
    // which sends CopyFail and ends the COPY (a COPY left open blocks
    // the connection, and the server's DROP DATABASE barriers, forever).
    let mut sink = Box::pin(
        conn.copy_in::<_, bytes::Bytes>(&copy_in_sql(t, freeze))
            .await
            .map_err(|e| fail(pg_message(&e)))?,
    );
    loop {
        match rx.recv().await {
            Some(Frame::Data(b)) => {
                if let Err(e) = sink.send(b).await {
                    return Err(fail(format!(
                        "COPY failed, the table was rolled back: {}",
                        pg_message(&e)
                    )));
                }
            }
            Some(Frame::End) => {
                sink.as_mut().finish().await.map_err(|e| {
                    fail(format!(
                        "COPY failed, the table was rolled back: {}",
                        pg_message(&e)
                    ))
                })?;
                if t.large_objects {
                    conn.batch_execute(LO_FINISH)
                        .await
                        .map_err(|e| fail(format!("writing large objects: {}", pg_message(&e))))?;
                }
                conn.batch_execute("COMMIT")
                    .await
                    .map_err(|e| fail(format!("COMMIT failed: {}", pg_message(&e))))?;
                return Ok(());
            }
            None => {
                // The filter failed: abandon the COPY and the transaction.
                drop(sink);
                let rollback = conn.batch_execute("ROLLBACK");
                // Closing the connection rolls back too, if this hangs.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(30), rollback).await;
                return Err(fail(
                    "the data stream stopped; the table was rolled back".into(),
                ));
            }
        }
    }
}
