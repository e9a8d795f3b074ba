//! `kiln trigger`: start runs, print their ids (one a line, alone on
//! stdout, so `RUN=$(kiln trigger web)` works), and with `--wait` follow
//! them to the end: exit 0 only if every run succeeded.

use crate::client::args::TriggerArgs;
use crate::client::error::Error;
use crate::client::logs::{Sink, Watch, follow};
use crate::client::runs::ref_name;
use crate::client::table::short_commit;
use crate::client::{Ctx, print, print_json};
use crate::exit;
use kiln_client::api::call;
use kiln_model::JobStatus;
use kiln_proto::api::TriggerRequest;

pub async fn trigger(ctx: &Ctx, args: &TriggerArgs) -> Result<i32, Error> {
    let req = request(args)?;
    let raw = ctx
        .client
        .call_raw(&call::trigger(&args.repo, &req))
        .await?;
    let runs = raw.value.runs;
    if args.json {
        print_json(&raw.json)?;
    } else {
        let ids: String = runs.iter().map(|r| format!("{}\n", r.id)).collect();
        print(&ids)?;
    }
    for r in &runs {
        let at = match r.git_ref.as_deref() {
            Some(g) => format!("{} on {}", short_commit(&r.commit), ref_name(Some(g))),
            None => short_commit(&r.commit).to_owned(),
        };
        eprintln!(
            "run {}: {} ({}) at {at}, event {}",
            r.id, r.workflow_name, r.workflow_file, r.event
        );
    }
    if runs.is_empty() {
        eprintln!(
            "no workflow of {} runs on `{}`; nothing started",
            args.repo,
            req.event.as_deref().unwrap_or("push")
        );
        return Ok(exit::SUCCESS);
    }
    if !args.wait {
        if let [only] = runs.as_slice() {
            eprintln!("follow it with `kiln logs {} -f`", only.id);
        }
        return Ok(exit::SUCCESS);
    }
    let mut watches = Vec::with_capacity(runs.len());
    for r in &runs {
        watches.push(Watch {
            detail: ctx.client.run(r.id).await?,
            only: None,
        });
    }
    let sink = if args.json {
        Sink::Stderr
    } else {
        Sink::Stdout
    };
    let finals = follow(ctx, watches, sink).await?;
    Ok(outcome(&finals))
}

/// 0 when every run succeeded, 1 otherwise.
fn outcome(finals: &[JobStatus]) -> i32 {
    let all_ok = finals.iter().all(|s| match s {
        JobStatus::Success => true,
        JobStatus::Failure
        | JobStatus::Cancelled
        | JobStatus::Skipped
        | JobStatus::Queued
        | JobStatus::Running => false,
    });
    if all_ok { exit::SUCCESS } else { exit::FAILURE }
}

fn request(args: &TriggerArgs) -> Result<TriggerRequest, Error> {
    let inputs = kiln_pipeline::inputs::parse_pairs(&args.inputs)
        .map_err(|e| Error::Usage(format!("--input: {e}")))?;
    Ok(TriggerRequest {
        git_ref: args.git_ref.clone(),
        commit: args.commit.clone(),
        workflow: args.workflow.clone(),
        event: args.event.clone(),
        inputs: inputs.into_iter().collect(),
        flags: args.flags.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_all_success_is_success() {
        assert_eq!(outcome(&[JobStatus::Success, JobStatus::Success]), 0);
        assert_eq!(outcome(&[JobStatus::Success, JobStatus::Failure]), 1);
        assert_eq!(outcome(&[JobStatus::Cancelled]), 1);
        assert_eq!(outcome(&[]), 0);
    }
}
