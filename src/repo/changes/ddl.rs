//! The `lethe.ddl` messages lethe's event triggers put into the stream
//! (`pg::ddl_capture`), as a segment stores them (`Record::Message`): one
//! per DDL command, at its place in its transaction.

use serde::Deserialize;

/// The messages' prefix.
pub const PREFIX: &str = "lethe.ddl";

/// One captured command.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ddl {
    /// `end` (ddl_command_end) or `drop` (sql_drop).
    pub event: String,
    /// The command tag (`CREATE INDEX`, `ALTER VIEW` …).
    pub tag: String,
    /// The object's type as PostgreSQL names it (`index`, `view` …).
    #[serde(rename = "type")]
    pub object_type: String,
    /// The object's qualified identity.
    pub identity: Option<String>,
    /// `replay`, `add_columns`, `unreplayable` or `other`.
    pub change: String,
    /// For `replay`: the statement that makes the change again; for
    /// `add_columns`, the `ALTER TABLE` that adds the columns (`ONLY` a
    /// plain table, or a partitioned one with its partitions).
    pub sql: Option<String>,
    /// For `add_columns`: the table.
    pub table: Option<TableName>,
    /// For `add_columns`: the table's oid (as pgoutput names it).
    pub relid: Option<u32>,
    /// For `add_columns`: the columns appended, in order.
    pub columns: Option<Vec<AddedColumn>>,
    /// For `add_columns` on a partitioned table: the columns each of its
    /// partitions gained (at its own end).
    pub partitions: Option<Vec<PartitionColumns>>,
    /// For `add_columns`: what the columns add to the schema digest (a
    /// sum of its lines' hashes, mod 2^64, in decimal).
    pub digest_delta: Option<String>,
}

/// A table, by its names as the catalog spells them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

/// A column an `ALTER TABLE … ADD COLUMN` appended.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AddedColumn {
    pub name: String,
    /// `format_type(atttypid, atttypmod)`.
    #[serde(rename = "type")]
    pub type_name: String,
    pub type_oid: u32,
    pub typmod: i32,
    pub not_null: bool,
    /// The default's expression, as `pg_get_expr` renders it.
    pub default: Option<String>,
    /// `format_type` of the type under any domains.
    pub base_type: Option<String>,
    /// Its collation is nondeterministic.
    #[serde(default)]
    pub nondeterministic: bool,
    /// The value rows stored before the command read in this column
    /// (`attmissingval`, as the type's output renders it); `None`: NULL.
    pub missing: Option<String>,
}

impl AddedColumn {
    /// As a manifest records a column.
    pub fn column(&self) -> crate::repo::manifest::Column {
        crate::repo::manifest::Column {
            name: self.name.clone(),
            type_name: self.type_name.clone(),
            default: self.default.clone(),
            base_type: self.base_type.clone(),
            nondeterministic: self.nondeterministic,
            generated: false,
        }
    }

    /// The value rows stored before the column was added hold in it, as
    /// a COPY text field.
    pub fn missing_field(&self) -> Vec<u8> {
        self.missing.as_ref().map_or_else(
            || b"\\N".to_vec(),
            |v| crate::copytext::escape::encode_copy_text(v.as_bytes()),
        )
    }
}

/// A partition's columns added with its partitioned table's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PartitionColumns {
    pub table: TableName,
    pub relid: u32,
    pub columns: Vec<AddedColumn>,
}

/// The table and columns of an `add_columns` message, checked whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddColumns {
    pub table: TableName,
    pub relid: u32,
    pub columns: Vec<AddedColumn>,
    /// The statements that add them in a restore (before the rows load).
    pub sql: String,
    /// What they add to the schema digest (`pg::digest`).
    pub digest_delta: u64,
    /// A partitioned table's partitions, each with the columns it gained;
    /// empty for a plain table.
    pub partitions: Vec<PartitionColumns>,
}

/// What a captured command means for capture and restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// A point restore past it runs this statement after post-data.
    Replay(String),
    /// Columns appended to a table: a point restore past it adds them
    /// after pre-data and fills rows stored before it from `missing`.
    AddColumns(AddColumns),
    /// A change the stream cannot carry: the capture takes a base, and no
    /// point restore replays past it.
    Unreplayable,
    /// Tables, columns, keys, types …: the schema digest's to judge.
    Other,
}

impl Ddl {
    /// Reads a message's content.
    ///
    /// # Errors
    /// Content that is not lethe's message (named in the error).
    pub fn parse(content: &[u8]) -> Result<Ddl, String> {
        serde_json::from_slice(content).map_err(|e| {
            format!(
                "a {PREFIX} message lethe cannot read ({e}): {}",
                String::from_utf8_lossy(&content[..content.len().min(200)])
            )
        })
    }

    /// What it means; a `replay` without its statement, or a change lethe
    /// does not know, is unreplayable.
    pub fn meaning(&self) -> Meaning {
        match (self.change.as_str(), &self.sql) {
            ("replay", Some(sql)) if !sql.trim().is_empty() => Meaning::Replay(sql.clone()),
            ("add_columns", Some(sql)) if !sql.trim().is_empty() => {
                let delta = self.digest_delta.as_deref().and_then(|d| d.parse().ok());
                match (&self.table, self.relid, &self.columns, delta) {
                    (Some(table), Some(relid), Some(columns), Some(digest_delta))
                        if !columns.is_empty()
                            && self
                                .partitions
                                .iter()
                                .flatten()
                                .all(|p| p.columns.len() == columns.len()) =>
                    {
                        Meaning::AddColumns(AddColumns {
                            table: table.clone(),
                            relid,
                            columns: columns.clone(),
                            sql: sql.clone(),
                            digest_delta,
                            partitions: self.partitions.clone().unwrap_or_default(),
                        })
                    }
                    _ => Meaning::Unreplayable,
                }
            }
            ("other", _) => Meaning::Other,
            _ => Meaning::Unreplayable,
        }
    }

    /// `CREATE INDEX public.t_v`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            self.tag,
            self.identity.as_deref().unwrap_or(&self.object_type)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ddl(json: &str) -> Ddl {
        Ddl::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn each_kind_of_message_means_what_the_trigger_says() {
        let created = ddl(
            r#"{"v" : 1, "event" : "end", "tag" : "CREATE INDEX", "type" : "index", "identity" : "public.t_v", "change" : "replay", "sql" : "CREATE INDEX t_v ON public.t USING btree (v)"}"#,
        );
        assert_eq!(
            created.meaning(),
            Meaning::Replay("CREATE INDEX t_v ON public.t USING btree (v)".into())
        );
        assert_eq!(created.describe(), "CREATE INDEX public.t_v");
        let renamed = ddl(
            r#"{"v":1,"event":"end","tag":"ALTER INDEX","type":"index","identity":"public.t_w","change":"unreplayable","sql":null}"#,
        );
        assert_eq!(renamed.meaning(), Meaning::Unreplayable);
        let table = ddl(
            r#"{"v":1,"event":"end","tag":"ALTER TABLE","type":"table","identity":"public.t","change":"other","sql":null}"#,
        );
        assert_eq!(table.meaning(), Meaning::Other);
    }

    #[test]
    fn a_replay_without_its_statement_or_an_unknown_change_is_unreplayable() {
        for json in [
            r#"{"event":"end","tag":"CREATE VIEW","type":"view","identity":"public.v","change":"replay","sql":null}"#,
            r#"{"event":"end","tag":"CREATE VIEW","type":"view","identity":"public.v","change":"replay","sql":"  "}"#,
            r#"{"event":"end","tag":"CREATE VIEW","type":"view","identity":null,"change":"rewrite","sql":"x"}"#,
        ] {
            assert_eq!(ddl(json).meaning(), Meaning::Unreplayable, "{json}");
        }
    }

    #[test]
    fn content_that_is_not_lethes_message_is_an_error_naming_it() {
        let e = Ddl::parse(b"not json").unwrap_err();
        assert!(e.contains("lethe.ddl") && e.contains("not json"), "{e}");
        assert!(Ddl::parse(br#"{"tag":"CREATE INDEX"}"#).is_err());
    }

    /// As `capture_ddl` writes it (oids as strings).
    const ADDED: &str = r#"{"v" : 1, "event" : "end", "tag" : "ALTER TABLE", "type" : "table", "identity" : "public.u", "change" : "add_columns", "sql" : "ALTER TABLE ONLY public.u ADD COLUMN email text, ADD COLUMN n integer DEFAULT 7 NOT NULL", "table" : {"schema" : "public", "name" : "u"}, "relid" : 16410, "columns" : [{"name" : "email", "type" : "text", "type_oid" : 25, "typmod" : -1, "not_null" : false, "default" : null, "base_type" : "text", "nondeterministic" : false, "missing" : null}, {"name" : "n", "type" : "integer", "type_oid" : 23, "typmod" : -1, "not_null" : true, "default" : "7", "base_type" : "integer", "nondeterministic" : false, "missing" : "7"}], "digest_delta" : "18446744073709551615"}"#;

    #[test]
    fn appended_columns_carry_the_table_the_columns_and_the_digest() {
        let Meaning::AddColumns(a) = ddl(ADDED).meaning() else {
            panic!("not add_columns");
        };
        assert_eq!(
            (a.table.schema.as_str(), a.table.name.as_str(), a.relid),
            ("public", "u", 16410)
        );
        assert_eq!(a.digest_delta, u64::MAX);
        assert_eq!(a.columns.len(), 2);
        assert_eq!(a.columns[1].type_oid, 23);
        assert_eq!(a.columns[0].missing_field(), b"\\N");
        assert_eq!(a.columns[1].missing_field(), b"7");
        assert_eq!(a.columns[1].column().default.as_deref(), Some("7"));
        // A value with a tab and a backslash, as COPY text.
        let mut c = a.columns[0].clone();
        c.missing = Some("a\tb\\".into());
        assert_eq!(c.missing_field(), b"a\\tb\\\\");
    }

    #[test]
    fn appended_columns_without_their_table_digest_or_columns_are_unreplayable() {
        for (from, to) in [
            (
                r#""digest_delta" : "18446744073709551615""#,
                r#""digest_delta" : null"#,
            ),
            (
                r#""digest_delta" : "18446744073709551615""#,
                r#""digest_delta" : "-1""#,
            ),
            (r#""relid" : 16410"#, r#""relid" : null"#),
            (
                r#""table" : {"schema" : "public", "name" : "u"}"#,
                r#""table" : null"#,
            ),
        ] {
            let json = ADDED.replace(from, to);
            assert_ne!(json, ADDED);
            assert_eq!(ddl(&json).meaning(), Meaning::Unreplayable, "{to}");
        }
        let empty = ADDED[..ADDED.find(r#""columns""#).unwrap()].to_string()
            + r#""columns" : [], "digest_delta" : "1"}"#;
        assert_eq!(ddl(&empty).meaning(), Meaning::Unreplayable);
    }
}
