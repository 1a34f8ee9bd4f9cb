use super::*;
use crate::repo::changes::codec::Record;

fn begin(lsn: u64) -> Record {
    Record::Begin {
        commit_lsn: Lsn(lsn),
        xid: 1,
        commit_time: 77,
    }
}

fn commit(lsn: u64, end: u64) -> Record {
    Record::Commit {
        commit_lsn: Lsn(lsn),
        end_lsn: Lsn(end),
    }
}

fn insert() -> Record {
    Record::Insert {
        relid: 1,
        new: vec![],
    }
}

#[test]
fn transactions_are_summarised() {
    let mut c = TxnChecker::new();
    assert_eq!(c.feed(&begin(10)).unwrap(), None);
    assert!(c.in_transaction());
    assert_eq!(c.feed(&insert()).unwrap(), None);
    assert_eq!(
        c.feed(&Record::Message {
            prefix: "lethe.ddl".into(),
            content: vec![]
        })
        .unwrap(),
        None
    );
    assert_eq!(
        c.feed(&commit(10, 12)).unwrap(),
        Some(TxnSummary {
            commit_lsn: Lsn(10),
            end_lsn: Lsn(12),
            commit_time: 77,
            changes: 2
        })
    );
    c.feed(&begin(20)).unwrap();
    let s = c.feed(&commit(20, 21)).unwrap().unwrap();
    assert_eq!(s.changes, 0);
    c.finish().unwrap();
}

#[test]
fn transaction_structure_violations_are_refused() {
    let run = |records: &[Record]| -> Result<(), TxnError> {
        let mut c = TxnChecker::new();
        for r in records {
            c.feed(r)?;
        }
        c.finish()
    };
    assert_eq!(run(&[insert()]), Err(TxnError::ChangeOutside { tag: 'I' }));
    assert_eq!(
        run(&[begin(1), commit(1, 2), insert()]),
        Err(TxnError::ChangeOutside { tag: 'I' })
    );
    assert_eq!(
        run(&[begin(1), begin(2)]),
        Err(TxnError::NestedBegin {
            open: Lsn(1),
            next: Lsn(2)
        })
    );
    assert_eq!(
        run(&[commit(1, 2)]),
        Err(TxnError::CommitOutside { commit_lsn: Lsn(1) })
    );
    assert_eq!(
        run(&[begin(1), commit(2, 3)]),
        Err(TxnError::CommitMismatch {
            begin: Lsn(1),
            commit: Lsn(2)
        })
    );
    assert_eq!(
        run(&[begin(5), commit(5, 6), begin(5)]),
        Err(TxnError::OutOfOrder {
            previous: Lsn(5),
            next: Lsn(5)
        })
    );
    assert_eq!(
        run(&[begin(1), insert()]),
        Err(TxnError::Unfinished { commit_lsn: Lsn(1) })
    );
    assert_eq!(run(&[]), Ok(()));
}
