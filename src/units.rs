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

/// A byte size as people write it: a whole number of bytes, optionally
/// followed by a binary unit `B`, `KiB`, `MiB`, `GiB` or `TiB` (case-
/// insensitive, space allowed): `"8GiB"`, `"512 MiB"`, `"1048576"`.
///
/// # Errors
/// Not a whole number, an unknown unit, or a size past `u64`: the message
/// says what is accepted.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let hint = "use a whole number with a unit, e.g. \"8GiB\", \"512MiB\"";
    if digits.is_empty() {
        return Err(format!("invalid size {s:?}: {hint}"));
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kib" => 10,
        "mib" => 20,
        "gib" => 30,
        "tib" => 40,
        other => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {other:?} (B, KiB, MiB, GiB or TiB); {hint}"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {s:?}: too large"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// `bytes` in the largest binary unit that divides it exactly (`"8GiB"`):
/// what [`parse_bytes`] reads back to the same value.
pub fn format_bytes(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// A byte size in config: a string for [`parse_bytes`] or a bare integer.
pub mod bytes_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(b: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_bytes(*b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(n),
            Raw::Text(t) => super::parse_bytes(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
#[path = "units_tests.rs"]
mod tests;
