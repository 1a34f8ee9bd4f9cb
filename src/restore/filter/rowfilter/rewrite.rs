//! Writing a kept row with fields replaced: SET NULL / SET DEFAULT
//! rewrites, redactions (a policy's or a declared reference's) and
//! pseudonyms.

use super::RowFilter;
use crate::restore::filter::{Action, Effect, FilterError, Replacement, decoded};

/// Where a rewritten field's value comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Repl {
    /// Entry `.1` of check `.0`'s rewrite.
    Fk(usize, usize),
    /// Entry `.0` of the table's redaction.
    Policy(usize),
}

impl RowFilter<'_> {
    pub(super) fn write_rewritten(
        &self,
        input: &[u8],
        i: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), FilterError> {
        let spans = &self.spans[i * self.width..][..self.width];
        let last = self.repl.iter().rposition(|&r| r != 0).unwrap_or(0);
        // Indexes both `spans` and `repl`, column by column.
        #[allow(clippy::needless_range_loop)]
        for c in 0..=last {
            if c > 0 {
                out.push(b'\t');
            }
            match self.repl[c] {
                0 => {
                    let (a, b) = spans[c];
                    out.extend_from_slice(&input[a..b]);
                }
                k => {
                    let (a, b) = spans[c];
                    self.write_replacement(self.repl_vals[k as usize - 1], &input[a..b], out)?;
                }
            }
        }
        out.extend_from_slice(&input[spans[last].1..=self.rows[i].1]);
        Ok(())
    }

    /// Writes what `src` puts in a field that held `old` (COPY text).
    pub(super) fn write_replacement(
        &self,
        src: Repl,
        old: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FilterError> {
        let (name, r) = match src {
            Repl::Fk(fk, j) => {
                let Effect::Rewrite(cols) = &self.plan.fks[fk].effect else {
                    unreachable!("rewrite of a drop check")
                };
                (&self.plan.fks[fk].name, &cols[j].1)
            }
            Repl::Policy(j) => {
                let Action::Redact(entries) = &self.plan.action else {
                    unreachable!("redaction without a redact policy")
                };
                (&self.plan.table, &entries[j].1)
            }
        };
        match r {
            Replacement::Null => out.extend_from_slice(b"\\N"),
            Replacement::Value(v) => out.extend_from_slice(v),
            Replacement::Unresolved(expr) => {
                return Err(FilterError::UnresolvedDefault {
                    table: self.plan.table.clone(),
                    fk: name.clone(),
                    expr: expr.clone(),
                });
            }
            Replacement::Pseudonym(kind) => {
                let Some(key) = self.pseudonym_key else {
                    return Err(FilterError::NoPseudonymKey {
                        table: self.plan.table.clone(),
                    });
                };
                let mut dec = Vec::new();
                match decoded(old, &mut dec) {
                    None => out.extend_from_slice(b"\\N"),
                    Some(v) => key.pseudonym(*kind, v, out),
                }
            }
        }
        Ok(())
    }

    pub(super) fn clear_rewrite(&mut self) {
        for &src in &self.repl_vals {
            let c = match src {
                Repl::Fk(fk, j) => match &self.plan.fks[fk].effect {
                    Effect::Rewrite(cols) => cols[j].0,
                    _ => continue,
                },
                Repl::Policy(j) => match &self.plan.action {
                    Action::Redact(entries) => entries[j].0,
                    _ => continue,
                },
            };
            self.repl[c] = 0;
        }
        self.repl_vals.clear();
    }
}
