//! `kiln deploy`, `kiln envs`, `kiln approve` and `kiln reject`.

use crate::client::args::{DeployArgs, EnvsArgs};
use crate::client::error::Error;
use crate::client::table::{Align, Table, ago, short_commit};
use crate::client::{Ctx, print, print_json};
use crate::exit;
use jiff::Timestamp;
use kiln_client::api::call;
use kiln_model::RunId;
use kiln_proto::api::{ApproveRequest, DeployRequest, EnvironmentInfo};

/// Prints the new runs' ids alone on stdout, like `kiln trigger`.
pub async fn deploy(ctx: &Ctx, args: &DeployArgs) -> Result<i32, Error> {
    let req = DeployRequest {
        environment: args.env.clone(),
        commit: args.commit.clone(),
        force: args.force,
    };
    let raw = ctx.client.call_raw(&call::deploy(&args.repo, &req)).await?;
    if args.json {
        print_json(&raw.json)?;
        return Ok(exit::SUCCESS);
    }
    let ids: String = raw
        .value
        .runs
        .iter()
        .map(|r| format!("{}\n", r.id))
        .collect();
    print(&ids)?;
    for r in &raw.value.runs {
        eprintln!(
            "run {} ({}) deploys {} to {}{}: follow it with `kiln logs {} -f`",
            r.id,
            r.workflow_name,
            short_commit(&r.commit),
            args.env,
            if args.force { " (forced)" } else { "" },
            r.id
        );
    }
    Ok(exit::SUCCESS)
}

pub async fn envs(ctx: &Ctx, args: &EnvsArgs) -> Result<i32, Error> {
    let raw = ctx.client.call_raw(&call::environments(&args.repo)).await?;
    if args.json {
        print_json(&raw.json)?;
    } else if raw.value.is_empty() {
        print(&format!(
            "{} has no environments yet: a job with `environment: NAME` creates one\n",
            args.repo
        ))?;
    } else {
        print(&envs_text(&raw.value, ctx.now))?;
    }
    Ok(exit::SUCCESS)
}

fn envs_text(envs: &[EnvironmentInfo], now: Timestamp) -> String {
    let mut s = String::new();
    for e in envs {
        let at = match &e.commit {
            Some(c) => format!(
                "at {}{} (run {}, by {}, {})",
                short_commit(c),
                if e.healthy { "" } else { ", UNHEALTHY" },
                e.run.map(|r| r.to_string()).unwrap_or_default(),
                e.deployed_by.as_deref().unwrap_or("?"),
                e.deployed_at.map(|t| ago(now, t)).unwrap_or_default()
            ),
            None => "never deployed".to_owned(),
        };
        s.push_str(&format!("{}  {at}\n", e.name));
        let mut t = Table::new(&[
            ("RUN", Align::Right),
            ("COMMIT", Align::Left),
            ("STATE", Align::Left),
            ("BY", Align::Left),
            ("WHEN", Align::Left),
        ]);
        for d in &e.history {
            let by = match (&d.approver, d.forced) {
                (Some(a), _) => format!("{} (approved by {a})", d.actor),
                (None, true) => format!("{} (forced)", d.actor),
                (None, false) => d.actor.clone(),
            };
            t.row(vec![
                d.run.to_string().into(),
                short_commit(&d.commit).to_string().into(),
                d.state.as_str().into(),
                by.into(),
                ago(now, d.created_at).into(),
            ]);
        }
        for line in t.render().lines() {
            s.push_str(&format!("  {line}\n"));
        }
    }
    s
}

pub async fn approve(
    ctx: &Ctx,
    run: RunId,
    job: Option<String>,
    reject: bool,
    json: bool,
) -> Result<i32, Error> {
    let req = ApproveRequest {
        job: job.clone(),
        reject,
    };
    let raw = ctx.client.call_raw(&call::approve(run, &req)).await?;
    if json {
        print_json(&raw.json)?;
    } else {
        let what = match &job {
            Some(j) => format!("job {j} of run {run}"),
            None => format!("run {run}"),
        };
        print(&format!(
            "{} {what}\n",
            if reject { "rejected" } else { "approved" }
        ))?;
    }
    Ok(exit::SUCCESS)
}
