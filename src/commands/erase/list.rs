//! `lethe erase list`: every listed id in its type's order (bigint
//! numerically, uuid and text in byte order), with a header line on a
//! terminal, then (with `--json`) the removal history.

use super::{Writer, blocking, client_err, shown_subject, writer};
use crate::config::Config;
use crate::erasure::store::{EntryInfo, RemovalInfo, StoreError};
use std::io::{IsTerminal, Write};

/// Prints entries as tab-separated text or as one JSON array, streamed.
struct EntryPrinter<W: Write> {
    out: W,
    json: bool,
    n: u64,
}

impl<W: Write> EntryPrinter<W> {
    fn entry(&mut self, e: &EntryInfo) -> std::io::Result<()> {
        if self.json {
            self.out
                .write_all(if self.n == 0 { b"[\n  " } else { b",\n  " })?;
            match crate::erasure::subject::split_subject(&e.subject) {
                // A named subject's entry: `subject` is the id, and
                // `subject_name` says whose.
                (Some(name), id) => {
                    let mut v = serde_json::to_value(e)?;
                    v["subject"] = id.into();
                    v["subject_name"] = name.into();
                    serde_json::to_writer(&mut self.out, &v)?;
                }
                (None, _) => serde_json::to_writer(&mut self.out, e)?,
            }
        } else {
            let state = if e.journaled { "journaled" } else { "pending" };
            writeln!(
                self.out,
                "{}\t{}\t{}\t{}\t{state}",
                shown_subject(&e.subject),
                e.added_at.format("%Y-%m-%dT%H:%M:%SZ"),
                e.origin,
                e.reference.as_deref().unwrap_or("-")
            )?;
        }
        self.n += 1;
        Ok(())
    }

    /// One removal of the history, after every entry (JSON only): marked
    /// `"removed": true`, with its time, reason and origin.
    fn removal(&mut self, r: &RemovalInfo) -> std::io::Result<()> {
        if !self.json {
            return Ok(());
        }
        self.out
            .write_all(if self.n == 0 { b"[\n  " } else { b",\n  " })?;
        let mut v = serde_json::json!({
            "removed": true,
            "removed_at": r.removed_at,
            "reason": r.reason,
            "origin": r.origin,
        });
        match crate::erasure::subject::split_subject(&r.subject) {
            (Some(name), id) => {
                v["subject"] = id.into();
                v["subject_name"] = name.into();
            }
            (None, id) => v["subject"] = id.into(),
        }
        serde_json::to_writer(&mut self.out, &v)?;
        self.n += 1;
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if self.json {
            self.out
                .write_all(if self.n == 0 { b"[]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()
    }
}

/// The text output's header, printed only when stdout is a terminal (a
/// pipe gets the entries alone, as scripts expect).
const HEADER: &str = "SUBJECT\tADDED\tORIGIN\tREFERENCE\tJOURNAL";

pub(super) async fn list(cfg: &Config, json: bool) -> anyhow::Result<i32> {
    if !json && std::io::stdout().is_terminal() {
        println!("{HEADER}");
    }
    match writer(cfg).await? {
        Writer::Remote(c) => {
            let mut p = EntryPrinter {
                out: std::io::BufWriter::new(std::io::stdout()),
                json,
                n: 0,
            };
            c.list(|e| p.entry(&e)).await.map_err(client_err)?;
            if json {
                for r in c.removals().await.map_err(client_err)? {
                    p.removal(&r)?;
                }
            }
            p.finish()?;
        }
        Writer::Local(store) => {
            blocking(move || {
                let mut p = EntryPrinter {
                    out: std::io::BufWriter::new(std::io::stdout()),
                    json,
                    n: 0,
                };
                let io = |e: std::io::Error| StoreError::Io {
                    path: "stdout".into(),
                    op: "write",
                    message: e.to_string(),
                };
                store.for_each_entry_ordered(|e| p.entry(&e).map_err(io))?;
                if json {
                    for r in store.removals()? {
                        p.removal(&r).map_err(io)?;
                    }
                }
                p.finish().map_err(io)
            })
            .await?;
        }
    }
    Ok(crate::exit::OK)
}
