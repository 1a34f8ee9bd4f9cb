//! `[drill]`: when the daemon runs restore drills and where they restore
//! to (see `restore::drill` for the drill itself). Here, below `config`,
//! so the config can validate the section without knowing restores.

use serde::{Deserialize, Serialize};

/// The comment a drill's scratch database carries.
pub const MARK_PREFIX: &str = "lethe-drill:";

/// `[drill]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrillConfig {
    /// How often the daemon drills: a duration (`"24h"`) or a cron line
    /// (`"0 3 * * *"`, UTC). Absent: never on its own (`lethe drill` still
    /// runs one).
    pub every: Option<String>,
    /// `postgres://…/<name>`: the scratch database the drill creates (it
    /// must not exist, or be a marked leftover of an earlier drill); the
    /// user needs CREATEDB.
    pub target: Option<String>,
    /// Allow a target on the source's PostgreSQL server (a drill then loads
    /// the production server with a full restore).
    pub allow_same_server: bool,
}

impl DrillConfig {
    /// The schedule `every` describes.
    ///
    /// # Errors
    /// Neither a duration nor a cron line.
    pub fn schedule(&self) -> Result<Option<crate::schedule::Schedule>, String> {
        let Some(every) = &self.every else {
            return Ok(None);
        };
        if let Ok(d) = humantime::parse_duration(every.trim()) {
            if d < std::time::Duration::from_secs(60) && !cfg!(feature = "test-hooks") {
                return Err("must be at least 1m (a drill restores the whole database)".into());
            }
            return chrono::Duration::from_std(d)
                .map(|d| Some(crate::schedule::Schedule::Every(d)))
                .map_err(|e| format!("too long ({e})"));
        }
        crate::schedule::Schedule::cron(every)
            .map(Some)
            .map_err(|e| {
                format!(
                    "neither a duration such as \"24h\" nor a cron line such as \"0 3 * * *\" ({e})"
                )
            })
    }

    /// Every problem, as (key, message).
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Err(e) = self.schedule() {
            out.push(("drill.every", e));
        }
        match &self.target {
            Some(t) => {
                if let Err(e) = Target::parse(t) {
                    out.push(("drill.target", e));
                }
            }
            None if self.every.is_some() => out.push((
                "drill.target",
                "drill.every is set but drill.target is not: name the scratch database the drill creates, e.g. \"postgres://lethe@scratch-db/lethe_drill\"".into(),
            )),
            None => {}
        }
        out
    }
}

/// A parsed `drill.target`.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) url: url::Url,
    pub(crate) database: String,
}

impl Target {
    pub(crate) fn parse(s: &str) -> Result<Target, String> {
        let url = url::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err("must be a postgres:// URL naming the scratch database".into());
        }
        let database = url.path().trim_start_matches('/').to_string();
        let database = percent_decode(&database);
        if database.is_empty() {
            return Err(
                "names no database: add the scratch database's name, e.g. postgres://…/lethe_drill"
                    .into(),
            );
        }
        if matches!(database.as_str(), "postgres" | "template0" | "template1") {
            return Err(format!(
                "names {database}, a database every server needs: name a scratch database the drill may create and drop, e.g. lethe_drill"
            ));
        }
        Ok(Target { url, database })
    }

    /// The same server's `postgres` database, to create and drop from.
    pub(crate) fn maintenance(&self) -> String {
        let mut u = self.url.clone();
        u.set_path("/postgres");
        u.to_string()
    }

    pub(crate) fn host_port(&self) -> (String, u16) {
        (
            normal_host(self.url.host_str().unwrap_or("localhost")),
            self.url.port().unwrap_or(5432),
        )
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// Loopback names compare equal.
pub(crate) fn normal_host(h: &str) -> String {
    let h = h.trim_matches(['[', ']']).to_ascii_lowercase();
    match h.as_str() {
        "localhost" | "127.0.0.1" | "::1" | "" => "localhost".into(),
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_name_a_scratch_database() {
        assert!(Target::parse("postgres://u@h/lethe_drill").is_ok());
        for bad in [
            "postgres://u@h/",
            "postgres://u@h",
            "postgres://u@h/postgres",
            "postgres://u@h/template1",
            "mysql://u@h/x",
            "not a url",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let t =
            Target::parse("postgres://u:pw@db.example:6543/scratch?sslmode=require").expect("ok");
        assert_eq!(t.database, "scratch");
        assert_eq!(t.host_port(), ("db.example".to_string(), 6543));
        assert_eq!(
            t.maintenance(),
            "postgres://u:pw@db.example:6543/postgres?sslmode=require"
        );
    }

    #[test]
    fn every_takes_a_duration_or_a_cron_line_and_needs_a_target() {
        let mut c = DrillConfig {
            every: Some("24h".into()),
            target: None,
            allow_same_server: false,
        };
        assert_eq!(c.check().len(), 1, "{:?}", c.check());
        c.target = Some("postgres://h/lethe_drill".into());
        assert!(c.check().is_empty());
        c.every = Some("0 3 * * *".into());
        assert!(c.check().is_empty(), "{:?}", c.check());
        c.every = Some("sometimes".into());
        assert_eq!(c.check()[0].0, "drill.every");
    }

    #[test]
    fn loopback_names_are_one_server() {
        assert_eq!(normal_host("127.0.0.1"), normal_host("localhost"));
        assert_eq!(normal_host("[::1]"), normal_host("LOCALHOST"));
        assert_ne!(normal_host("db1"), normal_host("localhost"));
    }
}
