//! Catalog queries, run inside the exported snapshot: which tables hold
//! rows to copy (with their COPY column lists), the foreign keys between
//! them, the sequences, and the features Lethe refuses (large objects,
//! row-level security the role cannot bypass).
//!
//! Tables copied: ordinary and unlogged tables (`relkind = 'r'`), which
//! includes every leaf partition; partitioned parents hold no rows and are
//! skipped, as are views, materialized views (post-data's `REFRESH` rebuilds
//! them), foreign tables, temporary tables, system schemas and objects that
//! belong to an extension (`CREATE EXTENSION` recreates them).

use super::{PgConn, SourceError, query_err, quote_qualified};
use crate::repo::manifest::{Column, FkAction, ForeignKey, Relation, SequenceValue};
use std::collections::HashMap;

/// Schemas and extension members excluded from everything below.
const USER_RELATION: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
    AND n.nspname !~ '^pg_(toast|temp_)' \
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                    AND d.objid = c.oid AND d.deptype = 'e')";

/// Extension configuration tables and sequences (`pg_extension_config_dump`,
/// as pg_cron's `cron.job` and pg_partman's `part_config` use it), with the
/// condition their own rows must meet (`WHERE …`, or empty for all rows):
/// `CREATE EXTENSION` recreates the table and the extension's own rows, the
/// snapshot carries the rows users added, as pg_dump does.
const EXTENSION_CONFIG: &str = "(SELECT x.oid, x.cond FROM pg_extension e, \
    unnest(e.extconfig, e.extcondition) AS x(oid, cond))";

/// A table whose rows are copied.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `pg_table_size` (heap + TOAST), to schedule the largest first.
    pub size: i64,
    /// COPY column order; generated columns are excluded.
    pub columns: Vec<Column>,
    /// Tables it is a partition of or inherits from (`schema.table`).
    pub parents: Vec<String>,
    /// An extension's configuration table: the condition (`WHERE …`) its
    /// user rows meet; `Some("")` for all rows.
    pub extension_rows: Option<String>,
    /// Not a table: the database's large objects, as rows of
    /// `(oid, offset, data)` in chunks of [`LO_CHUNK`] bytes.
    pub large_objects: bool,
    /// Row-level security would filter this role's reads.
    rls_applies: bool,
}

impl SourceTable {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// `COPY "s"."t" ("a", "b") TO STDOUT`: text format, explicit columns.
    /// A table with no copyable column gets no list (each row is an empty line).
    pub fn copy_out_sql(&self) -> String {
        if self.large_objects {
            // Each object's size from a read-only descriptor (closed at the
            // end of the transaction), then its chunks in order.
            return format!(
                "COPY (SELECT m.oid, g.off, lo_get(m.oid, g.off, {LO_CHUNK}) \
                 FROM pg_largeobject_metadata m \
                 CROSS JOIN LATERAL (SELECT lo_lseek64(lo_open(m.oid, 262144), 0, 2) AS size) s \
                 CROSS JOIN LATERAL generate_series(0::bigint, greatest(s.size - 1, 0), {LO_CHUNK}) g(off)) \
                 TO STDOUT"
            );
        }
        let names: Vec<String> = self
            .columns
            .iter()
            .map(|c| super::quote_ident(&c.name))
            .collect();
        let table = quote_qualified(&self.schema, &self.name);
        // COPY cannot name a generated column, nor filter rows: a query can.
        if self.extension_rows.is_some() || self.columns.iter().any(|c| c.generated) {
            return format!(
                "COPY (SELECT {} FROM ONLY {table} {}) TO STDOUT",
                if names.is_empty() {
                    "*".to_string()
                } else {
                    names.join(", ")
                },
                self.extension_rows.as_deref().unwrap_or("")
            );
        }
        let cols = if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        };
        format!("COPY {table}{cols} TO STDOUT")
    }
}

/// Bytes of a large object per row of the large-object stream.
pub const LO_CHUNK: i64 = 256 * 1024;

/// The pseudo-table that carries the large objects (`large_objects`).
fn large_objects_table(size: i64) -> SourceTable {
    let col = |name: &str, t: &str| Column {
        name: name.into(),
        type_name: t.into(),
        default: None,
        base_type: None,
        nondeterministic: false,
        generated: false,
    };
    SourceTable {
        oid: 0,
        schema: "pg_catalog".into(),
        name: "pg_largeobject".into(),
        size,
        columns: vec![
            col("oid", "oid"),
            col("off", "bigint"),
            col("data", "bytea"),
        ],
        parents: Vec::new(),
        extension_rows: None,
        large_objects: true,
        rls_applies: false,
    }
}

/// What the snapshot needs to know about the source.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub server_version_num: i32,
    pub server_version: String,
    pub database: String,
    pub role: String,
    pub tables: Vec<SourceTable>,
    /// Partitioned tables (no rows of their own), with their parents.
    pub partitioned: Vec<Relation>,
    /// Declared keys between copied or partitioned tables; see `read`.
    pub foreign_keys: Vec<ForeignKey>,
    /// `pg_database.datctype`: how `lower()` (and `citext`) folds case.
    pub ctype: String,
    /// `(schema, name)` of every user sequence.
    pub sequences: Vec<(String, String)>,
}

/// Reads the catalog. Foreign keys are recorded as declared
/// (`conparentid = 0`), between copied tables and partitioned tables: a key
/// declared on a partitioned table, or referencing one, stands for all its
/// partitions at any depth (PostgreSQL's clones on each partition are not
/// recorded, and for a key between two partitioned tables it keeps no
/// leaf-to-leaf constraint at all). The restore plan expands them with the
/// `parents` of every table.
///
/// # Errors
/// Query failures, a server older than 12, large objects present, or
/// row-level security the role does not bypass.
pub async fn read(conn: &PgConn) -> Result<Catalog, SourceError> {
    let row = conn
        .query_one(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version'), \
                    current_database()::text, current_user::text, r.rolsuper, r.rolbypassrls \
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| query_err("reading the server version and role", &e))?;
    let server_version_num: i32 = row.get(0);
    let server_version: String = row.get(1);
    let database: String = row.get(2);
    let role: String = row.get(3);
    let bypass_rls = row.get::<_, bool>(4) || row.get::<_, bool>(5);
    if server_version_num < super::MIN_SERVER_VERSION_NUM {
        return Err(SourceError::ServerTooOld {
            found: server_version,
        });
    }

    let lo: i64 = conn
        .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
        .await
        .map_err(|e| query_err("counting large objects", &e))?
        .get(0);

    let mut tables = read_tables(conn).await?;
    if !bypass_rls {
        let filtered: Vec<String> = tables
            .iter()
            .filter(|t| t.rls_applies)
            .map(SourceTable::qualified)
            .collect();
        if !filtered.is_empty() {
            let more = if filtered.len() > 5 {
                format!(" and {} more", filtered.len() - 5)
            } else {
                String::new()
            };
            return Err(SourceError::RowSecurity {
                role,
                tables: format!("{}{more}", filtered[..filtered.len().min(5)].join(", ")),
            });
        }
    }
    let generated = read_columns(conn, &mut tables).await?;
    let mut partitioned = read_partitioned(conn).await?;
    read_parents(conn, &mut tables, &mut partitioned).await?;
    let foreign_keys = read_foreign_keys(conn, &tables, &partitioned, server_version_num).await?;
    add_generated_keys(&mut tables, &generated, &foreign_keys);
    if lo > 0 {
        tables.push(large_objects_table(lo));
    }
    let ctype: String = conn
        .query_one(
            "SELECT datctype::text FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| query_err("reading the database's LC_CTYPE", &e))?
        .get(0);
    let sequences = conn
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'S' \
                   AND (({USER_RELATION}) OR c.oid IN (SELECT oid FROM {EXTENSION_CONFIG} x)) \
                 ORDER BY 1, 2"
            ),
            &[],
        )
        .await
        .map_err(|e| query_err("listing sequences", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(Catalog {
        server_version_num,
        server_version,
        database,
        role,
        tables,
        partitioned: partitioned.into_iter().map(|(_, r)| r).collect(),
        foreign_keys,
        ctype,
        sequences,
    })
}

/// Partitioned tables, by oid.
async fn read_partitioned(conn: &PgConn) -> Result<Vec<(u32, Relation)>, SourceError> {
    let rows = conn
        .query(
            &format!(
                "SELECT c.oid, n.nspname::text, c.relname::text \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'p' AND {USER_RELATION} ORDER BY 2, 3"
            ),
            &[],
        )
        .await
        .map_err(|e| query_err("listing partitioned tables", &e))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Relation {
                    schema: r.get(1),
                    name: r.get(2),
                    parents: Vec::new(),
                },
            )
        })
        .collect())
}

/// Fills in each table's and partitioned table's parents (`pg_inherits`:
/// partitions and inheritance children alike).
async fn read_parents(
    conn: &PgConn,
    tables: &mut [SourceTable],
    partitioned: &mut [(u32, Relation)],
) -> Result<(), SourceError> {
    let rows = conn
        .query(
            "SELECT inhrelid, inhparent FROM pg_inherits ORDER BY inhrelid, inhseqno",
            &[],
        )
        .await
        .map_err(|e| query_err("listing partitions and inheritance", &e))?;
    let mut names: HashMap<u32, String> = tables.iter().map(|t| (t.oid, t.qualified())).collect();
    names.extend(partitioned.iter().map(|(oid, r)| (*oid, r.qualified())));
    for r in &rows {
        let (child, parent): (u32, u32) = (r.get(0), r.get(1));
        let Some(parent) = names.get(&parent).cloned() else {
            continue;
        };
        if let Some(t) = tables.iter_mut().find(|t| t.oid == child) {
            t.parents.push(parent);
        } else if let Some((_, p)) = partitioned.iter_mut().find(|(oid, _)| *oid == child) {
            p.parents.push(parent);
        }
    }
    Ok(())
}

async fn read_tables(conn: &PgConn) -> Result<Vec<SourceTable>, SourceError> {
    let rows = conn
        .query(
            &format!(
                "SELECT c.oid, n.nspname::text, c.relname::text, pg_table_size(c.oid), \
                        c.relrowsecurity AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')), \
                        x.cond \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN {EXTENSION_CONFIG} x ON x.oid = c.oid \
                 WHERE c.relkind = 'r' AND c.relpersistence IN ('p', 'u') \
                   AND (({USER_RELATION}) OR x.oid IS NOT NULL) \
                 ORDER BY 2, 3"
            ),
            &[],
        )
        .await
        .map_err(|e| query_err("listing tables", &e))?;
    Ok(rows
        .iter()
        .map(|r| SourceTable {
            oid: r.get(0),
            schema: r.get(1),
            name: r.get(2),
            size: r.get::<_, Option<i64>>(3).unwrap_or(0),
            columns: Vec::new(),
            parents: Vec::new(),
            extension_rows: r.get(5),
            large_objects: false,
            rls_applies: r.get(4),
        })
        .collect())
}

/// Appends to each table, after its other columns, the stored generated
/// columns a foreign key uses (on either side, under any name the key's
/// relations give it): the restore filter needs their values.
fn add_generated_keys(
    tables: &mut [SourceTable],
    generated: &[(usize, Column)],
    fks: &[ForeignKey],
) {
    let used: std::collections::HashSet<&str> = fks
        .iter()
        .flat_map(|f| f.columns.iter().chain(&f.ref_columns))
        .map(String::as_str)
        .collect();
    for (i, c) in generated {
        if used.contains(c.name.as_str()) {
            tables[*i].columns.push(Column {
                generated: true,
                ..c.clone()
            });
        }
    }
}

/// Reads every table's copyable columns; returns the stored generated ones
/// (table index and column) for `add_generated_keys`.
async fn read_columns(
    conn: &PgConn,
    tables: &mut [SourceTable],
) -> Result<Vec<(usize, Column)>, SourceError> {
    let rows = conn
        .query(
            &"SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                        pg_get_expr(ad.adbin, ad.adrelid), a.attgenerated <> '', \
                        (WITH RECURSIVE b(t, m, d) AS ( \
                            SELECT a.atttypid, a.atttypmod, 0 \
                            UNION ALL SELECT ty.typbasetype, ty.typtypmod, b.d + 1 \
                            FROM b JOIN pg_type ty ON ty.oid = b.t WHERE ty.typtype = 'd') \
                         SELECT format_type(t, m) FROM b ORDER BY d DESC LIMIT 1), \
                        COALESCE((SELECT NOT co.collisdeterministic FROM pg_collation co \
                                  WHERE co.oid = a.attcollation), false) \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
                 WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attrelid, a.attnum"
                .to_string(),
            &[&tables.iter().map(|t| t.oid).collect::<Vec<u32>>()],
        )
        .await
        .map_err(|e| query_err("listing columns", &e))?;
    let index: HashMap<u32, usize> = tables.iter().enumerate().map(|(i, t)| (t.oid, i)).collect();
    let mut generated = Vec::new();
    for r in &rows {
        let Some(&i) = index.get(&r.get::<_, u32>(0)) else {
            continue;
        };
        let column = Column {
            name: r.get(1),
            type_name: r.get(2),
            default: r.get(3),
            base_type: r.get(5),
            nondeterministic: r.get(6),
            generated: false,
        };
        if r.get::<_, bool>(4) {
            generated.push((i, column));
        } else {
            tables[i].columns.push(column);
        }
    }
    Ok(generated)
}

async fn read_foreign_keys(
    conn: &PgConn,
    tables: &[SourceTable],
    partitioned: &[(u32, Relation)],
    server_version_num: i32,
) -> Result<Vec<ForeignKey>, SourceError> {
    let names = |arr: &str, rel: &str| {
        format!(
            "ARRAY(SELECT a.attname::text FROM unnest({arr}) WITH ORDINALITY AS k(num, ord) \
             JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.num ORDER BY k.ord)"
        )
    };
    let set_cols = if server_version_num >= 150000 {
        names("con.confdelsetcols", "con.conrelid")
    } else {
        "ARRAY[]::text[]".to_string()
    };
    let sql = format!(
        "SELECT con.conname::text, con.conrelid, con.confrelid, con.confdeltype::text, {}, {}, {set_cols}, \
                con.confupdtype::text \
         FROM pg_constraint con WHERE con.contype = 'f' AND con.conparentid = 0 \
         ORDER BY con.conrelid, con.conname, con.confrelid",
        names("con.conkey", "con.conrelid"),
        names("con.confkey", "con.confrelid"),
    );
    let rows = conn
        .query(&sql, &[])
        .await
        .map_err(|e| query_err("listing foreign keys", &e))?;
    let mut by_oid: HashMap<u32, String> = tables.iter().map(|t| (t.oid, t.qualified())).collect();
    by_oid.extend(partitioned.iter().map(|(oid, r)| (*oid, r.qualified())));
    let mut out = Vec::new();
    for r in &rows {
        let (Some(table), Some(ref_table)) = (
            by_oid.get(&r.get::<_, u32>(1)),
            by_oid.get(&r.get::<_, u32>(2)),
        ) else {
            continue;
        };
        let name: String = r.get(0);
        let code: String = r.get(3);
        let on_delete = code
            .chars()
            .next()
            .and_then(FkAction::from_pg)
            .ok_or_else(|| SourceError::Query {
                what: format!("reading foreign key {name} on {table}"),
                message: format!("unknown ON DELETE action {code:?}"),
            })?;
        out.push(ForeignKey {
            name,
            table: table.clone(),
            columns: r.get(4),
            ref_table: ref_table.clone(),
            ref_columns: r.get(5),
            on_delete,
            set_columns: r.get(6),
            on_update: r
                .get::<_, String>(7)
                .chars()
                .next()
                .and_then(FkAction::from_pg),
        });
    }
    Ok(out)
}

/// Current values of the given sequences, in the given order, read in
/// batches (one `UNION ALL` per 200 sequences).
///
/// # Errors
/// Query failures, e.g. no SELECT privilege on a sequence.
pub async fn sequence_values(
    conn: &PgConn,
    seqs: &[(String, String)],
) -> Result<Vec<SequenceValue>, SourceError> {
    let mut out = Vec::with_capacity(seqs.len());
    for batch in seqs.chunks(200) {
        let parts: Vec<String> = batch
            .iter()
            .enumerate()
            .map(|(i, (s, n))| {
                format!(
                    "SELECT {i} AS i, last_value, is_called FROM {}",
                    quote_qualified(s, n)
                )
            })
            .collect();
        let sql = format!(
            "SELECT i, last_value, is_called FROM ({}) q ORDER BY i",
            parts.join(" UNION ALL ")
        );
        let rows = conn
            .query(&sql, &[])
            .await
            .map_err(|e| query_err("reading sequence values", &e))?;
        for r in rows {
            let i: i32 = r.get(0);
            let Some((schema, name)) = usize::try_from(i).ok().and_then(|i| batch.get(i)) else {
                continue;
            };
            out.push(SequenceValue {
                schema: schema.clone(),
                name: name.clone(),
                last_value: r.get(1),
                is_called: r.get(2),
            });
        }
    }
    Ok(out)
}
