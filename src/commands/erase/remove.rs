//! `lethe erase remove <SUBJECT>... --reason TEXT`: undo a mistyped add,
//! through the daemon's API when one answers, else on the store.

use super::{Writer, blocking, client_err, push_now, state_line, writer};
use crate::config::Config;
use crate::erasure::api;
use crate::erasure::client::ClientError;
use std::sync::Arc;

pub(super) async fn remove(
    ctx: &super::Ctx,
    cfg: &Config,
    subjects: Vec<String>,
    reason: &str,
) -> anyhow::Result<i32> {
    if reason.trim().is_empty() {
        return Err(super::UsageError(
            "--reason must say why the ids are removed (it is journaled and logged)".into(),
        )
        .into());
    }
    // Same message as `erase add` for an id that cannot be one.
    super::validate(cfg, &subjects)?;
    let out = match writer(cfg).await? {
        // 404: an id is not listed; the message names it (exit 1, not usage).
        Writer::Remote(c) => c.remove(&subjects, reason).await.map_err(|e| match e {
            ClientError::Rejected {
                status: 404,
                message,
            } => anyhow::anyhow!(message),
            other => client_err(other),
        })?,
        Writer::Local(store) => {
            let s = Arc::clone(&store);
            let r = reason.to_string();
            let out = blocking(move || s.remove(&subjects, &r)).await?;
            api::log_removed(&out, reason, "cli");
            push_now(ctx, cfg, &store).await;
            out
        }
    };
    println!(
        "removed {}; {}",
        out.removed,
        state_line(out.count, &out.digest)
    );
    Ok(crate::exit::OK)
}
