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
    /// `replay`, `unreplayable` or `other`.
    pub change: String,
    /// For `replay`: the statement that makes the change again.
    pub sql: Option<String>,
}

/// What a captured command means for capture and restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// A point restore past it runs this statement after post-data.
    Replay(String),
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
}
