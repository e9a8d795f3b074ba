//! Which workflows and jobs `kiln exec` runs, and the contexts they get.

use crate::cli::ExecArgs;
use crate::error::CliError;
use crate::repo::Repo;
use kiln_model::Value;
use kiln_model::workflow::Workflow;
use std::sync::Arc;

/// Job indices of `wf` to run: all of them, or the named ones and,
/// transitively, the jobs they need, in file order.
/// With `strict`, every wanted job must be in `wf`; without, jobs of other
/// workflows are ignored here (`workflows` checked that each exists somewhere).
pub fn jobs(wf: &Workflow, wanted: &[String], strict: bool) -> Result<Vec<usize>, CliError> {
    if wanted.is_empty() {
        return Ok((0..wf.jobs.len()).collect());
    }
    let mut keep = vec![false; wf.jobs.len()];
    let mut stack: Vec<usize> = Vec::new();
    for w in wanted {
        match wf.jobs.iter().position(|j| j.id.as_str() == w) {
            Some(i) => stack.push(i),
            None if !strict => {}
            None => {
                let ids: Vec<&str> = wf.jobs.iter().map(|j| j.id.as_str()).collect();
                let hint = ids
                    .iter()
                    .map(|id| (strsim::jaro_winkler(id, w), id))
                    .filter(|(s, _)| *s > 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, id)| format!("; did you mean `{id}`?"))
                    .unwrap_or_default();
                return Err(CliError::Usage(format!(
                    "workflow `{}` has no job `{w}`{hint} (jobs: {})",
                    wf.display_name(),
                    ids.join(", ")
                )));
            }
        }
    }
    while let Some(i) = stack.pop() {
        if keep[i] {
            continue;
        }
        keep[i] = true;
        for need in &wf.jobs[i].needs {
            if let Some(n) = wf.jobs.iter().position(|j| &j.id == need) {
                stack.push(n);
            }
        }
    }
    Ok((0..wf.jobs.len()).filter(|i| keep[*i]).collect())
}

/// The `github` context of a local run (without `job`, set per job).
pub fn github_context(
    repo: &Repo,
    wf: &Workflow,
    args: &ExecArgs,
    inputs: &Value,
    run_id: &str,
) -> Value {
    let git_ref = repo.branch.as_ref().map(|b| format!("refs/heads/{b}"));
    let actor = std::env::var("USER").unwrap_or_else(|_| "local".into());
    let mut g = kiln_pipeline::contexts::github(kiln_pipeline::contexts::RunFacts {
        repository: &repo.name,
        sha: repo.head.as_deref().unwrap_or(""),
        git_ref: git_ref.as_deref(),
        event: &args.event,
        workflow: wf.display_name(),
        actor: &actor,
        run_id,
        inputs,
    });
    if let Value::Object(m) = &mut g {
        m.insert(
            "workspace".into(),
            Value::str(repo.root.display().to_string()),
        );
    }
    g
}

/// The workflows `kiln exec` runs.
pub fn workflows(all: &[Arc<Workflow>], args: &ExecArgs) -> Result<Vec<Arc<Workflow>>, CliError> {
    let chosen: Vec<Arc<Workflow>> = match &args.workflow {
        Some(name) => all.iter().filter(|w| w.is_named(name)).cloned().collect(),
        None if !args.jobs.is_empty() => {
            for want in &args.jobs {
                if !all
                    .iter()
                    .any(|w| w.jobs.iter().any(|j| j.id.as_str() == want))
                {
                    let ids: Vec<&str> = all
                        .iter()
                        .flat_map(|w| w.jobs.iter().map(|j| j.id.as_str()))
                        .collect();
                    let hint = ids
                        .iter()
                        .map(|id| (strsim::jaro_winkler(id, want), id))
                        .filter(|(s, _)| *s > 0.8)
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|(_, id)| format!("; did you mean `{id}`?"))
                        .unwrap_or_default();
                    return Err(CliError::Usage(format!(
                        "no workflow has a job `{want}`{hint}"
                    )));
                }
            }
            all.iter()
                .filter(|w| {
                    w.jobs
                        .iter()
                        .any(|j| args.jobs.iter().any(|a| a == j.id.as_str()))
                })
                .cloned()
                .collect()
        }
        None => all
            .iter()
            .filter(|w| w.runs_on_event(&args.event))
            .cloned()
            .collect(),
    };
    if chosen.is_empty() {
        let list: Vec<String> = all
            .iter()
            .map(|w| format!("`{}` ({})", w.display_name(), w.file))
            .collect();
        let what = match (&args.workflow, args.jobs.is_empty()) {
            (Some(n), _) => format!("no workflow is named `{n}`"),
            (None, false) => format!("no workflow has a job named {}", args.jobs.join(", ")),
            (None, true) => format!(
                "no workflow runs on `{}`; pass --workflow NAME or --event EVENT",
                args.event
            ),
        };
        return Err(CliError::Usage(format!(
            "{what} (workflows: {})",
            list.join(", ")
        )));
    }
    Ok(chosen)
}
