//! A point of a point-in-time restore, as `lethe restore --at` takes it:
//! an RFC 3339 time, an LSN, or `latest`.

use super::Lsn;
use chrono::{DateTime, Utc};

/// Where `--at` asks to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    /// The last flushed commit.
    Latest,
    /// The last commit at or before this time.
    Time(DateTime<Utc>),
    /// The last commit at or before this LSN.
    Lsn(Lsn),
}

impl std::str::FromStr for Point {
    type Err = String;
    fn from_str(s: &str) -> Result<Point, String> {
        if s == "latest" {
            return Ok(Point::Latest);
        }
        if s.contains('/') {
            return s.parse::<Lsn>().map(Point::Lsn).map_err(|_| {
                format!("{s}: not an LSN such as 0/16B3748 (two hex numbers of at most 8 digits)")
            });
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Point::Time(t.with_timezone(&Utc)))
            .map_err(|e| {
                format!(
                    "{s}: not an RFC 3339 time ({e}); e.g. 2026-12-06T14:03:27Z, an LSN such as 0/16B3748, or `latest`"
                )
            })
    }
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Point::Latest => f.write_str("latest"),
            Point::Time(t) => f.write_str(&stamp(*t)),
            Point::Lsn(l) => write!(f, "LSN {l}"),
        }
    }
}

/// A time as `--at` messages show it: RFC 3339, microseconds when any.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        .replace(".000000Z", "Z")
}
