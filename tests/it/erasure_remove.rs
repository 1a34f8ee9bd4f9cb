//! Undoing a mistyped erasure: `lethe erase remove`, journaled so every host
//! applies it; unusual ids accepted with a warning; `erase list` order.

use crate::common::Repo;
use crate::erasure::{host, lethe_ok, stderr, stdout};

#[test]
fn zero_and_negative_bigint_ids_are_accepted_with_a_warning_naming_them() {
    let repo = tempfile::tempdir().unwrap();
    let (_d, cfg) = host(&Repo::File(repo.path()), "");
    let o = lethe_ok(&cfg, &["erase", "add", "0"], 0);
    let err = stderr(&o);
    assert!(
        err.contains("warning: 0 is an unusual subject id")
            && err.contains("lethe erase remove 0 --reason"),
        "{err}"
    );
    let o = lethe_ok(&cfg, &["erase", "add", "12", "--", "-5"], 0);
    let err = stderr(&o);
    assert!(
        err.contains("warning: -5 is an unusual subject id")
            && err.contains("lethe erase remove -- -5 --reason"),
        "{err}"
    );
    assert!(!err.contains("12 is"), "{err}");
    // Both are listed: a legal bigint can be a real subject.
    lethe_ok(&cfg, &["erase", "check", "0"], 0);
    lethe_ok(&cfg, &["erase", "check", "-5"], 0);
    // An ordinary id gets no warning.
    let o = lethe_ok(&cfg, &["erase", "add", "42"], 0);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    assert!(stdout(&o).contains("added 1"));
}
