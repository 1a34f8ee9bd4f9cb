//! Who holds a lease, precisely enough to tell that it is gone.
//!
//! A lease records the holder's host name, pid, the process's start time
//! (`/proc/<pid>/stat` field 22, clock ticks since boot), the kernel boot id
//! (`/proc/sys/kernel/random/boot_id`) and its pid namespace
//! (`/proc/self/ns/pid`). A later taker on the *same* host, boot and pid
//! namespace can then see that the holder's process no longer exists, or
//! that its pid now belongs to a process started at another time, and take
//! the lease over at once instead of waiting for it to expire (a `kill -9`-ed
//! `lethe snapshot` otherwise blocks the next run for ~3 min).
//!
//! Anything less certain is respected: another host name, another boot id
//! (a reboot, or another machine that happens to share the host name),
//! another pid namespace (a container on the same kernel), a running
//! process with the recorded start time, a process that exists but cannot
//! be inspected, and a record written by an older lethe without these
//! fields. Off Linux the identity cannot be read, none is written, and
//! leases are only taken over when they expire.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The identity of the process that wrote a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ProcessIdentity {
    pub host: String,
    pub pid: u32,
    /// `/proc/<pid>/stat` field 22: start time in clock ticks after boot.
    pub start_ticks: u64,
    pub boot_id: String,
    /// `/proc/self/ns/pid`'s link target, e.g. `pid:[4026531836]`.
    pub pid_ns: String,
}

impl ProcessIdentity {
    /// All fields present: a record missing any is never judged gone.
    fn is_complete(&self) -> bool {
        !self.host.is_empty()
            && self.pid > 0
            && self.start_ticks > 0
            && !self.boot_id.is_empty()
            && !self.pid_ns.is_empty()
    }
}

/// What the process table says about a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    /// No such process.
    Absent,
    /// Exited, not yet reaped by its parent: it holds nothing any more.
    Zombie,
    /// Running, started at `start_ticks`.
    Running { start_ticks: u64 },
    /// It exists but could not be inspected (permissions, a race).
    Unknown,
}

/// Whether a live lease's holder may be taken over right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Respect the lease; the reason is for logs and tests.
    Respect(&'static str),
    /// The holder is gone for certain; the reason names how we know
    /// (`process_gone`, `process_exited`, `pid_reused`).
    Gone(&'static str),
}

/// Decides whether the holder recorded in a lease is certainly gone, as seen
/// by `me` with `probe` looking pids up in the local process table.
pub fn judge(
    recorded: Option<&ProcessIdentity>,
    me: Option<&ProcessIdentity>,
    probe: &dyn Fn(u32) -> ProcState,
) -> Verdict {
    let Some(rec) = recorded.filter(|r| r.is_complete()) else {
        return Verdict::Respect("no_process_identity");
    };
    let Some(me) = me.filter(|m| m.is_complete()) else {
        return Verdict::Respect("own_identity_unknown");
    };
    if rec.host != me.host {
        return Verdict::Respect("another_host");
    }
    if rec.boot_id != me.boot_id {
        // A reboot since, or another machine with the same host name: the
        // two cannot be told apart, so wait for the expiry.
        return Verdict::Respect("another_boot");
    }
    if rec.pid_ns != me.pid_ns {
        return Verdict::Respect("another_pid_namespace");
    }
    if rec.pid == me.pid && rec.start_ticks == me.start_ticks {
        return Verdict::Respect("this_process");
    }
    match probe(rec.pid) {
        ProcState::Absent => Verdict::Gone("process_gone"),
        ProcState::Zombie => Verdict::Gone("process_exited"),
        ProcState::Running { start_ticks } if start_ticks != rec.start_ticks => {
            Verdict::Gone("pid_reused")
        }
        ProcState::Running { .. } => Verdict::Respect("holder_running"),
        ProcState::Unknown => Verdict::Respect("holder_not_inspectable"),
    }
}

/// This process's identity, read once; `None` off Linux (or without /proc).
pub fn current() -> Option<&'static ProcessIdentity> {
    static ME: OnceLock<Option<ProcessIdentity>> = OnceLock::new();
    ME.get_or_init(read_current).as_ref()
}

fn read_current() -> Option<ProcessIdentity> {
    let pid = std::process::id();
    let (_, start_ticks) = read_stat(pid)?;
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let pid_ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let id = ProcessIdentity {
        host: super::holder::host_name(),
        pid,
        start_ticks,
        boot_id: boot_id.trim().to_string(),
        pid_ns: pid_ns.to_string_lossy().into_owned(),
    };
    id.is_complete().then_some(id)
}

/// The state letter (field 3) and start time (field 22) of `/proc/<pid>/stat`.
fn read_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // fields[0] is field 3 (state); field 22 is 19 further on.
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Looks `pid` up in this host's process table. `kill(pid, 0)` decides
/// existence (it sees processes that `/proc` hides with `hidepid`); `/proc`
/// gives the state and start time.
pub fn probe(pid: u32) -> ProcState {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return ProcState::Unknown;
    };
    if p <= 0 {
        return ProcState::Unknown;
    }
    // SAFETY: signal 0 only checks that the pid exists and may be signalled.
    let rc = unsafe { libc::kill(p, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return ProcState::Absent;
    }
    match read_stat(pid) {
        Some(('Z' | 'X', _)) => ProcState::Zombie,
        Some((_, start_ticks)) => ProcState::Running { start_ticks },
        None => ProcState::Unknown,
    }
}

/// This host's name: recorded in leases (who holds them) and as the origin
/// of the erasure ids a host acknowledges.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // (or truncates) within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Ok(s) = std::str::from_utf8(&buf[..end])
            && !s.is_empty()
        {
            return s.to_string();
        }
    }
    "unknown".into()
}

#[cfg(test)]
#[path = "holder_tests.rs"]
mod tests;
