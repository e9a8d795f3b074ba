//! `kiln runs`, `kiln show`, `kiln cancel`, `kiln retry`.

use crate::client::args::{CancelArgs, RetryArgs, RunsArgs, ShowArgs};
use crate::client::error::Error;
use crate::client::table::{Align, Style, Table, ago, short_commit, took};
use crate::client::{Ctx, print, print_json};
use crate::exit;
use jiff::Timestamp;
use kiln_client::api::{RunsFilter, call};
use kiln_proto::api::{RetryRequest, RunDetail, RunSummary};

pub async fn list(ctx: &Ctx, args: &RunsArgs) -> Result<i32, Error> {
    let filter = RunsFilter {
        repo: args.repo.clone(),
        limit: Some(args.limit),
    };
    let raw = ctx.client.call_raw(&call::runs(&filter)).await?;
    if args.json {
        print_json(&raw.json)?;
    } else if raw.value.is_empty() {
        print("no runs yet: start one with `kiln trigger REPO`\n")?;
    } else {
        print(&runs_table(&raw.value, ctx.style, ctx.now))?;
    }
    Ok(exit::SUCCESS)
}

pub async fn show(ctx: &Ctx, args: &ShowArgs) -> Result<i32, Error> {
    if args.results {
        let raw = ctx.client.call_raw(&call::run_results(args.run)).await?;
        print_json(&raw.json)?;
        return Ok(exit::SUCCESS);
    }
    let raw = ctx.client.call_raw(&call::run(args.run)).await?;
    if args.json {
        print_json(&raw.json)?;
    } else {
        print(&render_run(&raw.value, ctx.style, ctx.now))?;
    }
    Ok(exit::SUCCESS)
}

pub async fn cancel(ctx: &Ctx, args: &CancelArgs) -> Result<i32, Error> {
    let raw = ctx.client.call_raw(&call::cancel_run(args.run)).await?;
    if args.json {
        print_json(&raw.json)?;
    } else {
        let r = &raw.value;
        print(&format!(
            "run {} ({}) is {}\n",
            r.id,
            r.workflow_name,
            ctx.style.status(r.status).shown()
        ))?;
    }
    Ok(exit::SUCCESS)
}

/// Prints the new run's id alone on stdout, like `kiln trigger`.
pub async fn retry(ctx: &Ctx, args: &RetryArgs) -> Result<i32, Error> {
    let req = RetryRequest {
        failed_only: args.failed_only,
    };
    let raw = ctx
        .client
        .call_raw(&call::retry_run(args.run, &req))
        .await?;
    if args.json {
        print_json(&raw.json)?;
    } else {
        print(&format!("{}\n", raw.value.id))?;
    }
    eprintln!(
        "retrying run {} as run {} ({}); follow it with `kiln logs {} -f`",
        args.run, raw.value.id, raw.value.workflow_name, raw.value.id
    );
    Ok(exit::SUCCESS)
}

/// `main`, `v1.2` for tags, or the ref as given when it is neither.
pub fn ref_name(git_ref: Option<&str>) -> &str {
    match git_ref {
        Some(r) => r
            .strip_prefix("refs/heads/")
            .or_else(|| r.strip_prefix("refs/tags/"))
            .unwrap_or(r),
        None => "",
    }
}

pub fn runs_table(runs: &[RunSummary], style: Style, now: Timestamp) -> String {
    let mut t = Table::new(&[
        ("ID", Align::Right),
        ("REPO", Align::Left),
        ("WORKFLOW", Align::Left),
        ("EVENT", Align::Left),
        ("REF", Align::Left),
        ("COMMIT", Align::Left),
        ("STATUS", Align::Left),
        ("CREATED", Align::Left),
        ("DURATION", Align::Right),
    ]);
    for r in runs {
        t.row(vec![
            r.id.to_string().into(),
            r.repo.as_str().into(),
            r.workflow_name.as_str().into(),
            r.event.as_str().into(),
            ref_name(r.git_ref.as_deref()).into(),
            short_commit(&r.commit).into(),
            style.status(r.status),
            ago(now, r.created_at).into(),
            took(now, r.started_at, r.finished_at).into(),
        ]);
    }
    t.render()
}

/// `kiln show`: the run, why it failed (if it failed before any job ran),
/// and its jobs.
/// `in 4s` (or `now`) until `at`.
fn until(now: Timestamp, at: Timestamp) -> String {
    let secs = at.duration_since(now).as_secs();
    if secs <= 0 {
        "now".to_owned()
    } else {
        format!("in {secs}s")
    }
}

pub fn render_run(run: &RunDetail, style: Style, now: Timestamp) -> String {
    let r = &run.summary;
    let mut s = format!(
        "{} {}  {}\n",
        style.bold(&format!("run {}", r.id)),
        r.workflow_name,
        style.status(r.status).shown()
    );
    let at = match r.git_ref.as_deref() {
        Some(git_ref) => format!("{} on {}", short_commit(&r.commit), ref_name(Some(git_ref))),
        None => short_commit(&r.commit).to_owned(),
    };
    let duration = took(now, r.started_at, r.finished_at);
    let mut fields = vec![
        ("repo", r.repo.clone()),
        ("workflow", r.workflow_file.clone()),
        ("commit", at),
        ("event", r.event.clone()),
        ("created", ago(now, r.created_at)),
    ];
    if !duration.is_empty() {
        fields.push(("duration", duration));
    }
    if let Some(w) = &r.waiting_reason {
        fields.push(("waiting", w.message.clone()));
    }
    for (k, v) in fields {
        s.push_str(&format!("  {k:<9} {v}\n"));
    }
    if let Some(f) = &run.forge {
        let line = match (&f.last_error, f.delivered) {
            (None, true) => "reported".to_owned(),
            (None, false) => "reporting…".to_owned(),
            (Some(e), _) => {
                let next = match f.next_attempt_at {
                    Some(at) if !f.delivered => format!("; next try {}", until(now, at)),
                    _ => String::new(),
                };
                format!(
                    "{} ({} failed tries{next}): {e}",
                    style.paint("33", "not reported yet"),
                    f.attempts
                )
            }
        };
        s.push_str(&format!("  {:<9} {line}\n", "forge"));
    }
    if let Some(error) = &run.error {
        s.push('\n');
        s.push_str(&style.paint("31", "the run failed before any job ran:"));
        s.push('\n');
        for line in error.lines() {
            s.push_str(&format!("  {line}\n").replace("  \n", "\n"));
        }
    }
    if !run.jobs.is_empty() {
        let mut t = Table::new(&[
            ("ID", Align::Right),
            ("JOB", Align::Left),
            ("STATUS", Align::Left),
            ("ATTEMPT", Align::Right),
            ("AGENT", Align::Left),
            ("DURATION", Align::Right),
            ("REASON", Align::Left),
        ]);
        for j in &run.jobs {
            t.row(vec![
                j.id.to_string().into(),
                j.name.as_str().into(),
                match &j.waiting {
                    Some(w) => w.status_word().into(),
                    None => style.status(j.status),
                },
                j.attempt.to_string().into(),
                j.agent.as_deref().unwrap_or("").into(),
                took(now, j.started_at, j.finished_at).into(),
                match (&j.waiting_reason, &j.waiting, &j.reason) {
                    (Some(why), _, _) => why.message.as_str().into(),
                    (None, Some(w), _) => w.to_string().into(),
                    (None, None, r) => r.as_deref().unwrap_or("").into(),
                },
            ]);
        }
        s.push('\n');
        s.push_str(&t.render());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_model::{InstanceId, JobStatus, RunId};
    use kiln_proto::api::JobSummary;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("ts")
    }

    fn summary(id: i64, status: JobStatus) -> RunSummary {
        RunSummary {
            waiting: None,
            waiting_reason: None,
            id: RunId(id),
            repo: "web".into(),
            workflow_name: "ci".into(),
            workflow_file: ".kiln/workflows/ci.yml".into(),
            commit: "4f2a9c1d8e7b".into(),
            git_ref: Some("refs/heads/main".into()),
            event: "push".into(),
            status,
            created_at: ts("2025-03-01T11:57:00Z"),
            started_at: Some(ts("2025-03-01T11:57:01Z")),
            finished_at: Some(ts("2025-03-01T11:58:03Z")),
        }
    }

    const NOW: &str = "2025-03-01T12:00:00Z";

    #[test]
    fn runs_table_columns() {
        let mut running = summary(43, JobStatus::Running);
        running.finished_at = None;
        running.git_ref = None;
        let runs = vec![running, summary(9, JobStatus::Success)];
        assert_eq!(
            runs_table(&runs, Style { color: false }, ts(NOW)),
            "ID  REPO  WORKFLOW  EVENT  REF   COMMIT   STATUS   CREATED  DURATION\n\
             43  web   ci        push         4f2a9c1  running  3m ago     2m59s…\n\
             \x209  web   ci        push   main  4f2a9c1  success  3m ago      1m02s\n"
        );
    }

    #[test]
    fn show_header_error_and_jobs() {
        let mut detail = RunDetail {
            summary: summary(42, JobStatus::Failure),
            error: None,
            jobs: vec![JobSummary {
                waiting: None,
                waiting_reason: None,
                id: InstanceId(7),
                job: "test".into(),
                name: "test (linux)".into(),
                status: JobStatus::Failure,
                attempt: 2,
                agent: Some("build-01".into()),
                runs_on: vec!["linux".into()],
                weight: 1,
                priority: 0,
                reason: Some("step `cargo test` exited with 101".into()),
                queued_at: None,
                started_at: Some(ts("2025-03-01T11:57:02Z")),
                finished_at: Some(ts("2025-03-01T11:57:32Z")),
            }],
            forge: None,
        };
        assert_eq!(
            render_run(&detail, Style { color: false }, ts(NOW)),
            "run 42 ci  failure\n  \
             repo      web\n  \
             workflow  .kiln/workflows/ci.yml\n  \
             commit    4f2a9c1 on main\n  \
             event     push\n  \
             created   3m ago\n  \
             duration  1m02s\n\
             \n\
             ID  JOB           STATUS   ATTEMPT  AGENT     DURATION  REASON\n\
             \x207  test (linux)  failure        2  build-01     30.0s  step `cargo test` exited with 101\n"
        );
        detail.jobs.clear();
        detail.error = Some("ci.yml:3:5: error: unknown key\n\n  | jobz:".into());
        let text = render_run(&detail, Style { color: false }, ts(NOW));
        assert!(
            text.ends_with(
                "\nthe run failed before any job ran:\n  ci.yml:3:5: error: unknown key\n\n    | jobz:\n"
            ),
            "{text}"
        );
    }
}
