//! A fault-injecting [`Storage`] wrapper: a test tool, compiled into every
//! build so the real `lethe` binary can be driven into failures by
//! CLI-level tests.
//!
//! In library tests: `FaultyStorage::new(inner, FaultPlan::parse("put:transient@3")?)`.
//! In the binary: `LETHE_FAULTS=<plan>` is read by [`super::open`], which then
//! logs a `storage.faults_injected` warning naming the plan at every start.
//! Nothing else enables it; an unset or empty variable costs one lookup.
//!
//! A plan is rules separated by `,`; `seed=<u64>` seeds the probabilities.
//! A rule is `<call>:<fault>[@<when>][~<key-substring>]`:
//! - call: `put get head list delete list_incomplete abort_incomplete`, or `*`;
//! - fault: `transient` (alias `error`), `permanent`, `notfound`,
//!   `delay=<duration>` (then the real call), `stall[=<duration>]` (sleep,
//!   default 1 h, then a transient timeout: cancel by dropping the call),
//!   `flip[=<offset>]` (put/get: invert one byte of the body, default offset
//!   200, the last byte if the body is shorter), `truncate[=<keep>]`
//!   (put/get: keep `keep` bytes, default all but the last 16),
//!   `reset=<bytes>` (put/get: the body stream fails, transiently, after
//!   that many bytes), `lost_ack` (put/delete: the real call succeeds, then
//!   a transient error is returned, as when a response is lost);
//! - when: `N` (only the Nth matching call, 1-based), `N+` (the Nth and every
//!   later one), `N-M` (calls N to M), `p<prob>` (each call with that
//!   probability), omitted: every call;
//! - key substring: only calls whose key (or list prefix) contains it count.
//!
//! Example: `seed=7,put:transient@p0.2~/data/,get:flip@1~manifest.json,list:delay=300ms`.

use super::{ByteStream, IncompleteUpload, ObjectMeta, Storage, StorageError};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The environment variable [`super::open`] reads.
pub const ENV_VAR: &str = "LETHE_FAULTS";

/// A storage call kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Put,
    Get,
    Head,
    List,
    Delete,
    ListIncomplete,
    AbortIncomplete,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Put => "put",
            Call::Get => "get",
            Call::Head => "head",
            Call::List => "list",
            Call::Delete => "delete",
            Call::ListIncomplete => "list_incomplete",
            Call::AbortIncomplete => "abort_incomplete",
        }
    }

    fn parse(s: &str) -> Option<Option<Call>> {
        Some(Some(match s {
            "*" => return Some(None),
            "put" => Call::Put,
            "get" => Call::Get,
            "head" => Call::Head,
            "list" => Call::List,
            "delete" => Call::Delete,
            "list_incomplete" => Call::ListIncomplete,
            "abort_incomplete" => Call::AbortIncomplete,
            _ => return None,
        }))
    }
}

/// What happens to a call a rule fires on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Transient,
    Permanent,
    NotFound,
    Delay(Duration),
    Stall(Duration),
    Flip(u64),
    Truncate(Option<u64>),
    Reset(u64),
    LostAck,
}

/// Which matching calls a rule fires on.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    Always,
    Nth(u64),
    From(u64),
    Range(u64, u64),
    Probability(f64),
}

/// One rule of a plan.
#[derive(Debug)]
pub struct Rule {
    /// `None`: every call kind.
    pub call: Option<Call>,
    pub fault: Fault,
    pub when: When,
    pub key_contains: Option<String>,
    seen: AtomicU64,
    fired: AtomicU64,
    text: String,
}

/// A parsed fault plan: rules and the seed of their probabilities.
#[derive(Debug)]
pub struct FaultPlan {
    rules: Vec<Rule>,
    rng: Mutex<SplitMix64>,
    text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("bad fault rule {rule:?}: {message}; see the grammar in src/storage/faulty.rs")]
pub struct PlanError {
    pub rule: String,
    pub message: String,
}

impl FaultPlan {
    /// Parses a plan (grammar in the module docs).
    ///
    /// # Errors
    /// The first rule that does not parse, named.
    pub fn parse(text: &str) -> Result<FaultPlan, PlanError> {
        let mut rules = Vec::new();
        let mut seed = 0x5eed_u64;
        for raw in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let bad = |message: &str| PlanError {
                rule: raw.to_string(),
                message: message.to_string(),
            };
            if let Some(s) = raw.strip_prefix("seed=") {
                seed = s
                    .parse()
                    .map_err(|_| bad("seed must be an unsigned integer"))?;
                continue;
            }
            let (rest, key_contains) = match raw.split_once('~') {
                Some((r, k)) if !k.is_empty() => (r, Some(k.to_string())),
                Some(_) => return Err(bad("empty key substring after ~")),
                None => (raw, None),
            };
            let (rest, when) = match rest.split_once('@') {
                Some((r, w)) => (
                    r,
                    parse_when(w).ok_or_else(|| bad("`when` must be N, N+, N-M or p<0..1>"))?,
                ),
                None => (rest, When::Always),
            };
            let (call, fault) = rest
                .split_once(':')
                .ok_or_else(|| bad("expected <call>:<fault>"))?;
            let call = Call::parse(call).ok_or_else(|| bad("unknown call kind"))?;
            let fault = parse_fault(fault).ok_or_else(|| bad("unknown fault or bad argument"))?;
            let body_only = matches!(fault, Fault::Flip(_) | Fault::Truncate(_) | Fault::Reset(_));
            if body_only && !matches!(call, Some(Call::Put | Call::Get)) {
                return Err(bad("flip, truncate and reset apply to put or get only"));
            }
            if fault == Fault::LostAck && !matches!(call, Some(Call::Put | Call::Delete)) {
                return Err(bad("lost_ack applies to put or delete only"));
            }
            rules.push(Rule {
                call,
                fault,
                when,
                key_contains,
                seen: AtomicU64::new(0),
                fired: AtomicU64::new(0),
                text: raw.to_string(),
            });
        }
        Ok(FaultPlan {
            rules,
            rng: Mutex::new(SplitMix64(seed)),
            text: text.to_string(),
        })
    }

    /// True when the plan has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// `(rule text, matching calls seen, faults injected)` per rule.
    pub fn counts(&self) -> Vec<(String, u64, u64)> {
        self.rules
            .iter()
            .map(|r| {
                (
                    r.text.clone(),
                    r.seen.load(Ordering::SeqCst),
                    r.fired.load(Ordering::SeqCst),
                )
            })
            .collect()
    }

    /// Faults injected so far, over all rules.
    pub fn injected(&self) -> u64 {
        self.rules
            .iter()
            .map(|r| r.fired.load(Ordering::SeqCst))
            .sum()
    }

    /// The faults that fire on this call, in rule order.
    fn decide(&self, call: Call, key: &str) -> Vec<Fault> {
        let mut out = Vec::new();
        for r in &self.rules {
            if r.call.is_some_and(|c| c != call)
                || r.key_contains.as_deref().is_some_and(|k| !key.contains(k))
            {
                continue;
            }
            let n = r.seen.fetch_add(1, Ordering::SeqCst) + 1;
            let fire = match r.when {
                When::Always => true,
                When::Nth(k) => n == k,
                When::From(k) => n >= k,
                When::Range(a, b) => (a..=b).contains(&n),
                When::Probability(p) => {
                    let mut rng = self
                        .rng
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    rng.next_f64() < p
                }
            };
            if fire {
                r.fired.fetch_add(1, Ordering::SeqCst);
                tracing::debug!(event = "storage.fault", call = call.name(), key, rule = %r.text);
                out.push(r.fault.clone());
            }
        }
        out
    }
}

fn parse_when(w: &str) -> Option<When> {
    if let Some(p) = w.strip_prefix('p') {
        let p: f64 = p.parse().ok()?;
        return (0.0..=1.0).contains(&p).then_some(When::Probability(p));
    }
    if let Some(n) = w.strip_suffix('+') {
        return n.parse().ok().filter(|&n| n > 0).map(When::From);
    }
    if let Some((a, b)) = w.split_once('-') {
        let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
        return (a > 0 && a <= b).then_some(When::Range(a, b));
    }
    w.parse().ok().filter(|&n| n > 0).map(When::Nth)
}

fn parse_fault(f: &str) -> Option<Fault> {
    let (name, arg) = match f.split_once('=') {
        Some((n, a)) => (n, Some(a)),
        None => (f, None),
    };
    let dur = |a: &str| humantime::parse_duration(a).ok();
    Some(match (name, arg) {
        ("transient" | "error", None) => Fault::Transient,
        ("permanent", None) => Fault::Permanent,
        ("notfound", None) => Fault::NotFound,
        ("delay", Some(a)) => Fault::Delay(dur(a)?),
        ("stall", None) => Fault::Stall(Duration::from_secs(3600)),
        ("stall", Some(a)) => Fault::Stall(dur(a)?),
        ("flip", None) => Fault::Flip(200),
        ("flip", Some(a)) => Fault::Flip(a.parse().ok()?),
        ("truncate", None) => Fault::Truncate(None),
        ("truncate", Some(a)) => Fault::Truncate(Some(a.parse().ok()?)),
        ("reset", Some(a)) => Fault::Reset(a.parse().ok()?),
        ("lost_ack", None) => Fault::LostAck,
        _ => return None,
    })
}

/// A small deterministic generator (SplitMix64): seeded faults replay exactly.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Wraps a storage and injects the faults of a plan.
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    plan: Arc<FaultPlan>,
}

impl FaultyStorage {
    pub fn new(inner: Arc<dyn Storage>, plan: FaultPlan) -> FaultyStorage {
        FaultyStorage {
            inner,
            plan: Arc::new(plan),
        }
    }

    /// The plan, to read its counters after a run.
    pub fn plan(&self) -> &Arc<FaultPlan> {
        &self.plan
    }

    /// Applies the call-level faults; returns the body faults (flip,
    /// truncate, reset) and whether the ack is to be lost.
    async fn before(&self, call: Call, key: &str) -> Result<(Vec<Fault>, bool), StorageError> {
        let mut body = Vec::new();
        let mut lost_ack = false;
        for f in self.plan.decide(call, key) {
            let op = call.name();
            match f {
                Fault::Transient => {
                    return Err(StorageError::Transient {
                        op,
                        key: key.into(),
                        message: "injected transient fault".into(),
                    });
                }
                Fault::Permanent => {
                    return Err(StorageError::Permanent {
                        op,
                        key: key.into(),
                        message: "injected permanent fault".into(),
                    });
                }
                Fault::NotFound => return Err(StorageError::NotFound { key: key.into() }),
                Fault::Delay(d) => tokio::time::sleep(d).await,
                Fault::Stall(d) => {
                    tokio::time::sleep(d).await;
                    return Err(StorageError::Transient {
                        op,
                        key: key.into(),
                        message: "timed out (injected stall)".into(),
                    });
                }
                Fault::LostAck => lost_ack = true,
                b @ (Fault::Flip(_) | Fault::Truncate(_) | Fault::Reset(_)) => body.push(b),
            }
        }
        Ok((body, lost_ack))
    }
}

/// Applies body faults to a stream, holding back one chunk so "the last
/// byte" and "all but the last 16" are known without buffering the body.
fn damage(stream: ByteStream, faults: Vec<Fault>, op: &'static str, key: &str) -> ByteStream {
    if faults.is_empty() {
        return stream;
    }
    struct St {
        inner: ByteStream,
        faults: Vec<Fault>,
        held: Option<Bytes>,
        pos: u64,
        flipped: bool,
        done: bool,
        key: String,
        op: &'static str,
    }
    let st = St {
        inner: stream,
        faults,
        held: None,
        pos: 0,
        flipped: false,
        done: false,
        key: key.to_string(),
        op,
    };
    Box::pin(futures::stream::unfold(st, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let next = st.inner.next().await;
            let last = match &next {
                Some(Ok(_)) => false,
                Some(Err(_)) => {
                    st.done = true;
                    return next.map(move |r| (r, st));
                }
                None => true,
            };
            let prev = st.held.take();
            if let Some(Ok(b)) = next {
                st.held = Some(b);
            }
            let Some(chunk) = prev else {
                if last {
                    return None;
                }
                continue;
            };
            let start = st.pos;
            st.pos += chunk.len() as u64;
            let total_if_last = if last { Some(st.pos) } else { None };
            let mut out = BytesMut::from(&chunk[..]);
            let mut cut: Option<usize> = None;
            let faults = st.faults.clone();
            for f in &faults {
                match *f {
                    Fault::Flip(at) if !st.flipped => {
                        let target = if at >= start && at < st.pos {
                            Some((at - start) as usize)
                        } else if last && at >= st.pos && !out.is_empty() {
                            Some(out.len() - 1)
                        } else {
                            None
                        };
                        if let Some(i) = target {
                            out[i] ^= 0xff;
                            st.flipped = true;
                        }
                    }
                    Fault::Truncate(keep) => {
                        let keep = match (keep, total_if_last) {
                            (Some(k), _) => Some(k),
                            (None, Some(total)) => Some(total.saturating_sub(16)),
                            (None, None) => None,
                        };
                        if let Some(k) = keep
                            && k < st.pos
                        {
                            let c = k.saturating_sub(start) as usize;
                            cut = Some(cut.map_or(c, |x: usize| x.min(c)));
                        }
                    }
                    Fault::Reset(after) if after < st.pos => {
                        let c = after.saturating_sub(start) as usize;
                        st.done = true;
                        out.truncate(c);
                        let err = StorageError::Transient {
                            op: st.op,
                            key: st.key.clone(),
                            message: format!("connection reset after {after} bytes (injected)"),
                        };
                        // The bytes before the reset, then the error on the next poll.
                        let stream_err: ByteStream =
                            Box::pin(futures::stream::once(async move { Err(err) }));
                        st.inner = stream_err;
                        st.done = false;
                        st.faults.clear();
                        st.held = None;
                        if out.is_empty() {
                            continue;
                        }
                        return Some((Ok(out.freeze()), st));
                    }
                    _ => {}
                }
            }
            if let Some(c) = cut {
                out.truncate(c);
                st.done = true;
            }
            if last {
                st.done = true;
            }
            if out.is_empty() {
                if st.done {
                    return None;
                }
                continue;
            }
            return Some((Ok(out.freeze()), st));
        }
    }))
}

#[async_trait]
impl Storage for FaultyStorage {
    async fn put(&self, key: &str, body: ByteStream) -> Result<ObjectMeta, StorageError> {
        let (faults, lost_ack) = self.before(Call::Put, key).await?;
        let meta = self
            .inner
            .put(key, damage(body, faults, "put", key))
            .await?;
        if lost_ack {
            return Err(StorageError::Transient {
                op: "put",
                key: key.into(),
                message: "response lost (injected)".into(),
            });
        }
        Ok(meta)
    }

    async fn get(&self, key: &str) -> Result<ByteStream, StorageError> {
        let (faults, _) = self.before(Call::Get, key).await?;
        Ok(damage(self.inner.get(key).await?, faults, "get", key))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        self.before(Call::Head, key).await?;
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        self.before(Call::List, prefix).await?;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let (_, lost_ack) = self.before(Call::Delete, key).await?;
        self.inner.delete(key).await?;
        if lost_ack {
            return Err(StorageError::Transient {
                op: "delete",
                key: key.into(),
                message: "response lost (injected)".into(),
            });
        }
        Ok(())
    }

    async fn list_incomplete(&self, prefix: &str) -> Result<Vec<IncompleteUpload>, StorageError> {
        self.before(Call::ListIncomplete, prefix).await?;
        self.inner.list_incomplete(prefix).await
    }

    async fn abort_incomplete(&self, upload: &IncompleteUpload) -> Result<(), StorageError> {
        self.before(Call::AbortIncomplete, &upload.key).await?;
        self.inner.abort_incomplete(upload).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Wraps `inner` when `LETHE_FAULTS` is set and not empty, logging a loud
/// warning; otherwise returns it unchanged.
///
/// # Errors
/// A plan that does not parse (the process must not run with a half-read plan).
pub fn from_env(inner: Arc<dyn Storage>) -> Result<Arc<dyn Storage>, StorageError> {
    let Ok(text) = std::env::var(ENV_VAR) else {
        return Ok(inner);
    };
    if text.trim().is_empty() {
        return Ok(inner);
    }
    let plan = FaultPlan::parse(&text).map_err(|e| StorageError::Permanent {
        op: "open",
        key: ENV_VAR.to_string(),
        message: e.to_string(),
    })?;
    tracing::warn!(
        event = "storage.faults_injected",
        plan = %plan.text,
        storage = %inner.describe(),
        "{ENV_VAR} is set: storage faults are being injected on purpose (a test tool; unset it in production)"
    );
    Ok(Arc::new(FaultyStorage::new(inner, plan)))
}

#[cfg(test)]
#[path = "faulty_tests.rs"]
mod tests;
