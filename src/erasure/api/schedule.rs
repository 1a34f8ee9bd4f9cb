//! `GET /v1/schedule`, `POST /v1/schedule/pause`, `POST /v1/schedule/resume`:
//! pausing a daemon's scheduled snapshots without stopping erasure intake.
//! Every answer also carries what the daemon's last snapshot found in its
//! leak check (`lethe status` reports a leak as degraded).
//! Served only by a daemon (a server given a [`PauseSwitch`]); `lethe erase
//! serve` answers 404, naming why. The daemon's loop watches the switch and
//! logs `daemon.paused` / `daemon.resumed`.

use super::{ApiError, Shared};
use crate::leak_state::{LeakReport, LeakState};
use crate::pause_switch::PauseSwitch;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The answer of every schedule route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    pub paused: bool,
    /// Since when, if paused.
    pub paused_since: Option<DateTime<Utc>>,
    /// Whether this request changed anything (false for a second pause).
    #[serde(default)]
    pub changed: bool,
    /// Always false: the pause is in the daemon's memory only.
    #[serde(default)]
    pub survives_restart: bool,
    /// The leak check of the last snapshot this daemon took since it
    /// started; `null` before its first one (or from a daemon older than
    /// this field).
    #[serde(default)]
    pub last_leak_check: Option<LeakReport>,
}

fn switch(st: &Shared) -> Result<&PauseSwitch, ApiError> {
    st.pause.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this API server runs no scheduler (it is `lethe erase serve`, not `lethe daemon`): there are no scheduled snapshots to pause or resume",
        )
    })
}

fn state(st: &Shared, s: &PauseSwitch, changed: bool) -> axum::Json<ScheduleState> {
    let since = s.paused_since();
    axum::Json(ScheduleState {
        paused: since.is_some(),
        paused_since: since,
        changed,
        survives_restart: false,
        last_leak_check: st.leaks.as_ref().and_then(LeakState::last),
    })
}

pub(super) async fn get(st: Shared) -> Result<axum::Json<ScheduleState>, ApiError> {
    Ok(state(&st, switch(&st)?, false))
}

pub(super) async fn pause(st: Shared) -> Result<axum::Json<ScheduleState>, ApiError> {
    let s = switch(&st)?;
    let changed = s.pause(Utc::now());
    Ok(state(&st, s, changed))
}

pub(super) async fn resume(st: Shared) -> Result<axum::Json<ScheduleState>, ApiError> {
    let s = switch(&st)?;
    let changed = s.resume().is_some();
    Ok(state(&st, s, changed))
}
