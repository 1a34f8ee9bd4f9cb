//! Durations and times as people write and read them: the serde forms of
//! config durations (`"1h"`, `"24h"`), ages (`3h 12m`, `3 h 12 min`) and
//! times for log fields (`2026-11-22T13:00:00Z`).

use chrono::{DateTime, Utc};

/// `2026-11-22T13:00:00Z`: a time in log fields and messages, to the second.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How an age is spelled: `3h 12m` (`lethe status`) or `3 h 12 min`
/// (messages in sentences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeStyle {
    Compact,
    Spaced,
}

/// `seconds` (negative counts as 0) as days and hours, hours and minutes,
/// minutes, or seconds: the two largest units that apply.
pub fn human_age(seconds: i64, style: AgeStyle) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    let [ud, uh, um, us] = match style {
        AgeStyle::Compact => ["d", "h", "m", "s"],
        AgeStyle::Spaced => [" d", " h", " min", " s"],
    };
    match (d, h, m) {
        (0, 0, 0) => format!("{s}{us}"),
        (0, 0, m) => format!("{m}{um}"),
        (0, h, m) => format!("{h}{uh} {m}{um}"),
        (d, h, _) => format!("{d}{ud} {h}{uh}"),
    }
}

/// A `Duration` as humantime text (`"24h"`).
pub mod humantime_serde_dur {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?} ({e}); use e.g. \"12h\", \"7d\""
            ))
        })
    }
}

/// An optional `Duration` as humantime text.
pub mod humantime_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Some).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?} ({e}); use e.g. \"30s\", \"15m\", \"1h\""
            ))
        })
    }
}
