//! `lethe erasure map`

use super::Ctx;
use crate::restore::map::ErasureMap;
use crate::restore::plan::{RestorePlan, Rules};
use anyhow::Context;
use std::path::Path;

pub async fn run(
    ctx: &Ctx,
    snapshot: Option<&str>,
    source: bool,
    json: bool,
    dot: Option<&Path>,
) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let m = if source {
        crate::restore::policy_check::source_manifest(&cfg)
            .await
            .map_err(anyhow::Error::msg)?
            .0
    } else {
        let storage = ctx.storage(&cfg).await?;
        let scope = crate::restore::source_scope(&cfg)?;
        crate::repo::layout::resolve_in(storage.as_ref(), snapshot.unwrap_or("latest"), &scope)
            .await?
    };
    let plan = RestorePlan::build_rules(&m, &Rules::of(&cfg.erasure))?;
    let map = ErasureMap::build(&m, &plan, &cfg.erasure.reference);
    if let Some(path) = dot {
        std::fs::write(path, map.dot())
            .with_context(|| format!("cannot write --dot {}", path.display()))?;
    }
    if json {
        println!("{}", map.to_json());
    } else {
        print!("{}", map.human());
    }
    Ok(crate::exit::OK)
}
