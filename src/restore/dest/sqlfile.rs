//! `--to-file PATH`: the filtered restore as one plain SQL file that
//! `psql -v ON_ERROR_STOP=1 -f PATH` loads into an empty database — the
//! pre-data schema, one `COPY … FROM stdin;` block per table ended by `\.`,
//! the post-data schema, then the sequence values.
//!
//! The file is written under a temporary name (mode 0600: it holds
//! plaintext data) and renamed into place only when complete, so a failed
//! restore leaves no half-written file.

use super::target::{LO_FINISH, copy_in_sql, setval_sql};
use super::{Destination, SchemaObject, Source, TableDest};
use crate::framed::Frame;
use crate::repo::manifest::{SequenceValue, TableEntry};
use crate::restore::RestoreError;
use crate::restore::plan::RestorePlan;
use crate::restore::report::RestoreReport;
use async_trait::async_trait;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, mpsc};

/// The SQL file being written: nothing exists until `pre_data` creates
/// the temporary file.
pub struct SqlFile {
    path: PathBuf,
    tmp: OnceLock<PathBuf>,
    file: Mutex<Option<tokio::io::BufWriter<tokio::fs::File>>>,
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> RestoreError {
    RestoreError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl SqlFile {
    /// The file at `path`, not created yet.
    pub fn new(path: &Path) -> SqlFile {
        SqlFile {
            path: path.to_path_buf(),
            tmp: OnceLock::new(),
            file: Mutex::new(None),
        }
    }

    /// Creates the temporary file next to `path`; refuses an existing `path`.
    ///
    /// # Errors
    /// `path` exists, or the directory is not writable.
    async fn create(&self) -> Result<(), RestoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path.as_path();
        if path.exists() {
            return Err(file_err(
                path,
                "it already exists; remove it or choose another --to-file path",
            ));
        }
        let name = path
            .file_name()
            .ok_or_else(|| file_err(path, "not a file path"))?
            .to_string_lossy()
            .to_string();
        let tmp = path.with_file_name(format!(
            ".{name}.lethe-partial-{:08x}",
            rand::random::<u32>()
        ));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| file_err(path, format!("cannot create {}: {e}", tmp.display())))?;
        let mut file = self.file.lock().await;
        if self.tmp.set(tmp).is_err() {
            return Err(file_err(path, "already created"));
        }
        *file = Some(tokio::io::BufWriter::with_capacity(
            1 << 20,
            tokio::fs::File::from_std(f),
        ));
        Ok(())
    }

    async fn write(&self, data: &[u8]) -> Result<(), RestoreError> {
        let mut g = self.file.lock().await;
        let f = g
            .as_mut()
            .ok_or_else(|| file_err(&self.path, "already closed"))?;
        f.write_all(data).await.map_err(|e| file_err(&self.path, e))
    }

    /// Appends a schema object's SQL as it is.
    ///
    /// # Errors
    /// The object cannot be read (named) or the file written.
    /// A point's captured DDL, each statement under a comment naming its
    /// commit.
    async fn write_ddl(
        &self,
        ddl: &[(crate::repo::changes::Lsn, String)],
    ) -> Result<(), RestoreError> {
        for (lsn, sql) in ddl {
            let stmt = format!(
                "\n-- DDL captured in the transaction committed at {lsn}\n{};\n",
                sql.trim_end().trim_end_matches(';')
            );
            self.write(stmt.as_bytes()).await?;
        }
        Ok(())
    }

    async fn write_object(&self, object: SchemaObject) -> Result<(), RestoreError> {
        let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
        let reading = tokio::task::spawn_blocking(move || {
            let mut reader = match object.open() {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; 1 << 16];
                match reader.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.blocking_send(Ok(buf)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        let mut last = b'\n';
        while let Some(piece) = rx.recv().await {
            let piece = piece.map_err(|e| RestoreError::Schema {
                section: "schema",
                message: e.to_string(),
            })?;
            if let Some(&b) = piece.last() {
                last = b;
            }
            self.write(&piece).await?;
        }
        reading
            .await
            .map_err(|e| RestoreError::Internal(format!("schema reader: {e}")))?;
        if last != b'\n' {
            self.write(b"\n").await?;
        }
        Ok(())
    }

    /// Appends the sequence values.
    async fn write_sequences(&self, seqs: &[SequenceValue]) -> Result<(), RestoreError> {
        let mut s = String::from("\n-- Sequence values at snapshot time\n");
        for q in seqs {
            s.push_str(&setval_sql(q));
            s.push('\n');
        }
        self.write(s.as_bytes()).await
    }

    /// Flushes, syncs and renames the file into place.
    ///
    /// # Errors
    /// I/O failure.
    async fn commit(&self) -> Result<(), RestoreError> {
        let mut f = self
            .file
            .lock()
            .await
            .take()
            .ok_or_else(|| file_err(&self.path, "already closed"))?;
        f.flush().await.map_err(|e| file_err(&self.path, e))?;
        let f = f.into_inner();
        f.sync_all().await.map_err(|e| file_err(&self.path, e))?;
        drop(f);
        let tmp = self
            .tmp
            .get()
            .ok_or_else(|| file_err(&self.path, "already closed"))?;
        std::fs::rename(tmp, &self.path).map_err(|e| file_err(&self.path, e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for SqlFile {
    fn drop(&mut self) {
        // Not committed: remove the partial file.
        if self.file.get_mut().is_some()
            && let Some(tmp) = self.tmp.get()
        {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// The header: where this came from, and how to load it.
pub fn header(snapshot: &str, database: &str, list_count: u64, list_digest: &str) -> String {
    format!(
        "--\n-- Lethe filtered restore of snapshot {snapshot} (database {database})\n\
         -- Erasure list applied: {list_count} entries, digest {list_digest}\n\
         -- Load into an empty database: psql -v ON_ERROR_STOP=1 -d DB -f FILE\n--\n\n"
    )
}

#[async_trait]
impl TableDest for SqlFile {
    async fn load(
        &self,
        t: &TableEntry,
        mut rx: mpsc::Receiver<Frame>,
    ) -> Result<(), RestoreError> {
        // One table at a time (the runner runs with one job for files).
        let mut g = self.file.lock().await;
        let f = g
            .as_mut()
            .ok_or_else(|| file_err(&self.path, "already closed"))?;
        // Large objects are staged in a temporary table, then written into
        // the objects pre-data created (`loader::LO_FINISH`).
        let stage = if t.large_objects {
            "CREATE TEMP TABLE lethe_large_objects (oid oid, off bigint, data bytea);\n"
        } else {
            ""
        };
        let head = format!(
            "\n-- Data for {}\n{stage}{};\n",
            t.qualified(),
            copy_in_sql(t, false).replace("FROM STDIN", "FROM stdin")
        );
        f.write_all(head.as_bytes())
            .await
            .map_err(|e| file_err(&self.path, e))?;
        loop {
            match rx.recv().await {
                Some(Frame::Data(b)) => {
                    f.write_all(&b).await.map_err(|e| file_err(&self.path, e))?
                }
                Some(Frame::End) => break,
                None => {
                    return Err(RestoreError::Load {
                        table: t.qualified(),
                        message: "the data stream stopped; the SQL file is discarded".into(),
                    });
                }
            }
        }
        f.write_all(b"\\.\n")
            .await
            .map_err(|e| file_err(&self.path, e))?;
        if t.large_objects {
            let finish = format!("{};\nDROP TABLE pg_temp.lethe_large_objects;\n", LO_FINISH);
            f.write_all(finish.as_bytes())
                .await
                .map_err(|e| file_err(&self.path, e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Destination for SqlFile {
    fn mode(&self) -> &'static str {
        "file"
    }

    async fn check(&self, plan: &RestorePlan) -> Result<(), RestoreError> {
        match plan.pending_defaults.first() {
            Some(d) => Err(RestoreError::Default {
                fk: d.fk_name.clone(),
                column: d.column.clone(),
                expr: d.expr.clone(),
                reason: "it is not a constant, and a SQL file has no database to evaluate it in; restore with --target".into(),
            }),
            None => Ok(()),
        }
    }

    async fn pre_data(&self, source: &Source, _plan: &mut RestorePlan) -> Result<(), RestoreError> {
        self.create().await?;
        let m = &source.manifest;
        self.write(
            header(
                m.id.as_str(),
                &m.database,
                source.list.count,
                &source.list.digest,
            )
            .as_bytes(),
        )
        .await?;
        self.write_object(source.pre()).await?;
        self.write_ddl(&source.pre_ddl).await?;
        self.write(b"\nSET client_encoding = 'UTF8';\n").await
    }

    fn tables(self: Arc<Self>) -> Option<Arc<dyn TableDest>> {
        Some(self)
    }

    /// One table after the other, in load order.
    fn jobs(&self, _jobs: usize) -> usize {
        1
    }

    async fn post_data(&self, source: &Source) -> Result<(), RestoreError> {
        self.write(b"\n").await?;
        self.write_object(source.post()).await
    }

    async fn replay_ddl(&self, source: &Source) -> Result<(), RestoreError> {
        self.write_ddl(&source.ddl).await
    }

    async fn sequences(&self, source: &Source) -> Result<(), RestoreError> {
        self.write_sequences(&source.manifest.sequences).await
    }

    /// A complete file is renamed into place; after a failure the partial
    /// one is removed (when this is dropped).
    async fn finish(
        &self,
        outcome: Result<RestoreReport, RestoreError>,
    ) -> Result<RestoreReport, RestoreError> {
        let report = outcome?;
        self.commit().await?;
        Ok(report)
    }
}
