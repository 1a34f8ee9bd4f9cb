//! A payload's transaction structure: [`TxnChecker`] takes records as
//! [`RecordReader`](super::codec::RecordReader) yields them and refuses a
//! payload whose transactions are broken. Re-exported by `codec`.

use super::Lsn;
use super::codec::Record;

/// One committed transaction, as [`TxnChecker::feed`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnSummary {
    /// The commit record's LSN.
    pub commit_lsn: Lsn,
    /// The end of the commit record (from the Commit).
    pub end_lsn: Lsn,
    /// Commit time, µs since 2000-01-01 (from the Begin).
    pub commit_time: i64,
    /// Change records (I, U, D, T, M) in the transaction.
    pub changes: u64,
}

/// A payload's transaction structure broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// A change record with no transaction open.
    #[error("a {tag} record outside any transaction")]
    ChangeOutside {
        /// The record's tag.
        tag: char,
    },
    /// A Begin while a transaction is open.
    #[error("a transaction committing at {next} begins inside the one committing at {open}")]
    NestedBegin {
        /// The open transaction's commit LSN.
        open: Lsn,
        /// The new Begin's.
        next: Lsn,
    },
    /// A Commit with no transaction open.
    #[error("a commit at {commit_lsn} outside any transaction")]
    CommitOutside {
        /// The Commit's LSN.
        commit_lsn: Lsn,
    },
    /// A Commit whose LSN is not its Begin's.
    #[error("the transaction that began to commit at {begin} commits at {commit}")]
    CommitMismatch {
        /// The Begin's commit LSN.
        begin: Lsn,
        /// The Commit's.
        commit: Lsn,
    },
    /// A transaction not after the previous one in commit order.
    #[error("a transaction committing at {next} follows one committed at {previous}")]
    OutOfOrder {
        /// The previous commit LSN.
        previous: Lsn,
        /// The new Begin's.
        next: Lsn,
    },
    /// The payload ended inside a transaction.
    #[error("the payload ends inside the transaction committing at {commit_lsn}")]
    Unfinished {
        /// The open transaction's commit LSN.
        commit_lsn: Lsn,
    },
}

/// Checks a payload's transaction structure record by record: every
/// change inside a Begin … Commit, Commits matching their Begins, no
/// nesting, commit LSNs strictly rising, and no transaction left open
/// ([`TxnChecker::finish`]).
#[derive(Debug, Clone, Default)]
pub struct TxnChecker {
    /// The open transaction: commit LSN, commit time, changes so far.
    open: Option<(Lsn, i64, u64)>,
    last_commit: Option<Lsn>,
}

impl TxnChecker {
    /// A checker at the start of a payload.
    pub fn new() -> TxnChecker {
        TxnChecker::default()
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// Checks the next record; on a Commit, returns its transaction.
    ///
    /// # Errors
    /// The structure rule `r` breaks.
    pub fn feed(&mut self, r: &Record) -> Result<Option<TxnSummary>, TxnError> {
        match (r, &mut self.open) {
            (
                Record::Begin {
                    commit_lsn,
                    commit_time,
                    ..
                },
                None,
            ) => {
                if let Some(previous) = self.last_commit.filter(|p| p >= commit_lsn) {
                    return Err(TxnError::OutOfOrder {
                        previous,
                        next: *commit_lsn,
                    });
                }
                self.open = Some((*commit_lsn, *commit_time, 0));
                Ok(None)
            }
            (Record::Begin { commit_lsn, .. }, Some((open, ..))) => Err(TxnError::NestedBegin {
                open: *open,
                next: *commit_lsn,
            }),
            (
                Record::Commit {
                    commit_lsn,
                    end_lsn,
                },
                Some((begin, commit_time, changes)),
            ) => {
                if begin != commit_lsn {
                    return Err(TxnError::CommitMismatch {
                        begin: *begin,
                        commit: *commit_lsn,
                    });
                }
                let done = TxnSummary {
                    commit_lsn: *commit_lsn,
                    end_lsn: *end_lsn,
                    commit_time: *commit_time,
                    changes: *changes,
                };
                self.open = None;
                self.last_commit = Some(*commit_lsn);
                Ok(Some(done))
            }
            (Record::Commit { commit_lsn, .. }, None) => Err(TxnError::CommitOutside {
                commit_lsn: *commit_lsn,
            }),
            (_, Some((_, _, changes))) => {
                *changes += 1;
                Ok(None)
            }
            (other, None) => Err(TxnError::ChangeOutside { tag: other.tag() }),
        }
    }

    /// Checks the payload ended between transactions.
    ///
    /// # Errors
    /// `Unfinished` when a transaction is open.
    pub fn finish(&self) -> Result<(), TxnError> {
        match self.open {
            Some((commit_lsn, ..)) => Err(TxnError::Unfinished { commit_lsn }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[path = "txn_tests.rs"]
mod tests;
