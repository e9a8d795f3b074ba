//! `kiln logs`, and the following of live output that `kiln trigger
//! --wait` shares.
//!
//! Stored output is read page by page (`GET …/logs?after=CURSOR`). Live
//! output comes from the Server-Sent Events stream, which starts from the
//! run's first line and ends with an `end` event once the run finished; a
//! run that has already finished is read from the pages instead, so nothing
//! depends on how the stream replays history. Lines print as `[job] text`
//! (with the workflow's name too when several runs are followed), stderr
//! dimmed and kiln's own messages in yellow on a terminal.

use crate::client::args::LogsArgs;
use crate::client::error::Error;
use crate::client::table::Style;
use crate::client::{Ctx, print, print_json};
use crate::exit;
use kiln_client::ClientError;
use kiln_client::api::{LogEvent, call};
use kiln_model::{InstanceId, JobStatus, RunId};
use kiln_proto::api::{LogEntry, LogStream, RunDetail, WaitingKind, WaitingReason};
use std::collections::{HashMap, HashSet};

/// The colours of job prefixes, in the order `kiln exec` uses them.
const PALETTE: [&str; 6] = ["36", "35", "33", "32", "34", "91"];

pub async fn logs(ctx: &Ctx, args: &LogsArgs) -> Result<i32, Error> {
    let detail = ctx.client.run(args.run).await?;
    let only = match &args.job {
        Some(j) => Some(select_jobs(&detail, j)?),
        None => None,
    };
    let watch = Watch { detail, only };
    if args.follow {
        follow(ctx, vec![watch], Sink::Stdout).await?;
        return Ok(exit::SUCCESS);
    }
    let id = watch.detail.summary.id;
    let mut printer = Printer::new(ctx.style, std::slice::from_ref(&watch.detail), Sink::Stdout);
    let mut json_entries = Vec::new();
    let mut after = None;
    let mut cursor = 0;
    loop {
        let raw = ctx
            .client
            .call_raw(&call::run_logs(id, watch.server_job(), after))
            .await?;
        let page = raw.value;
        let raw_entries = raw
            .json
            .get("entries")
            .and_then(|e| e.as_array())
            .cloned()
            .unwrap_or_default();
        if after.is_none() || !page.entries.is_empty() {
            cursor = page.cursor;
        }
        if page.entries.is_empty() || after == Some(page.cursor) {
            break;
        }
        for (entry, json) in page.entries.iter().zip(raw_entries) {
            if !watch.wants(entry.job) {
                continue;
            }
            if args.json {
                json_entries.push(json);
            } else {
                printer.entry(0, entry)?;
            }
        }
        after = Some(page.cursor);
    }
    if args.json {
        print_json(&serde_json::json!({ "entries": json_entries, "cursor": cursor }))?;
    }
    Ok(exit::SUCCESS)
}

/// One run to follow, and which of its jobs.
pub struct Watch {
    pub detail: RunDetail,
    /// `None`: every job.
    pub only: Option<Vec<InstanceId>>,
}

impl Watch {
    /// The one job the server can filter for; several are filtered here.
    fn server_job(&self) -> Option<InstanceId> {
        match self.only.as_deref() {
            Some([one]) => Some(*one),
            Some(_) | None => None,
        }
    }

    fn wants(&self, job: InstanceId) -> bool {
        match &self.only {
            Some(ids) => ids.contains(&job),
            None => true,
        }
    }
}

/// Where followed output goes: stdout, or stderr when stdout carries JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Stdout,
    Stderr,
}

enum Msg {
    Event(LogEvent),
    /// Why the run (`job: None`) or one of its queued jobs waits: sent when
    /// the wait starts and whenever its reason changes.
    Waiting {
        job: Option<InstanceId>,
        message: String,
    },
    /// The stream closed without an `end` event.
    Closed,
    Failed(ClientError),
}

/// Follow every run until it finishes; answers each run's final status, in
/// order.
pub async fn follow(ctx: &Ctx, watches: Vec<Watch>, sink: Sink) -> Result<Vec<JobStatus>, Error> {
    let details: Vec<RunDetail> = watches.iter().map(|w| w.detail.clone()).collect();
    let mut printer = Printer::new(ctx.style, &details, sink);
    let mut finals: Vec<Option<JobStatus>> = vec![None; watches.len()];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Msg)>();
    let mut watchers = Vec::new();
    for (i, w) in watches.iter().enumerate() {
        let run = w.detail.summary.id;
        if w.detail.summary.status.is_terminal() {
            // Finished already: print what was stored.
            let mut after = None;
            loop {
                let page = ctx.client.run_logs(run, w.server_job(), after).await?;
                if page.entries.is_empty() || after == Some(page.cursor) {
                    break;
                }
                for entry in page.entries.iter().filter(|e| w.wants(e.job)) {
                    printer.entry(i, entry)?;
                }
                after = Some(page.cursor);
            }
            finals[i] = Some(w.detail.summary.status);
            printer.end(i, w.detail.summary.status)?;
            continue;
        }
        watchers.push(tokio::spawn(watch_waiting(
            ctx.client.clone(),
            run,
            w.only.clone(),
            i,
            tx.clone(),
        )));
        let client = ctx.client.clone();
        let tx = tx.clone();
        let job = w.server_job();
        tokio::spawn(async move {
            let mut stream = match client.follow_logs(run, job).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send((i, Msg::Failed(e)));
                    return;
                }
            };
            loop {
                let msg = match stream.next().await {
                    Ok(Some(ev @ LogEvent::End(_))) => {
                        let _ = tx.send((i, Msg::Event(ev)));
                        return;
                    }
                    Ok(Some(ev @ LogEvent::Entry(_))) => Msg::Event(ev),
                    Ok(None) => Msg::Closed,
                    Err(e) => Msg::Failed(e),
                };
                let last = !matches!(msg, Msg::Event(_));
                if tx.send((i, msg)).is_err() || last {
                    return;
                }
            }
        });
    }
    drop(tx);
    while finals.iter().any(Option::is_none) {
        let Some((i, msg)) = rx.recv().await else {
            break;
        };
        let watch = &watches[i];
        match msg {
            Msg::Waiting { job, message } => {
                if finals[i].is_none() {
                    printer.waiting(i, job, &message)?;
                }
            }
            Msg::Event(LogEvent::Entry(entry)) => {
                if !watch.wants(entry.job) {
                    continue;
                }
                if printer.needs_names(i, entry.job) {
                    // A job the run did not have when we looked: look again.
                    if let Ok(detail) = ctx.client.run(watch.detail.summary.id).await {
                        printer.learn(i, &detail);
                    }
                }
                printer.entry(i, &entry)?;
            }
            Msg::Event(LogEvent::End(status)) => {
                finals[i] = Some(status);
                printer.end(i, status)?;
            }
            Msg::Closed => {
                let run = watch.detail.summary.id;
                let detail = ctx.client.run(run).await?;
                if !detail.summary.status.is_terminal() {
                    return Err(Error::StreamClosed(run));
                }
                finals[i] = Some(detail.summary.status);
                printer.end(i, detail.summary.status)?;
            }
            Msg::Failed(e) => return Err(e.into()),
        }
    }
    for w in watchers {
        w.abort();
    }
    finals
        .into_iter()
        .zip(&watches)
        .map(|(s, w)| s.ok_or(Error::StreamClosed(w.detail.summary.id)))
        .collect()
}

/// How often a followed run is asked why it waits.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Tell why `run` or its jobs wait: whenever a reason appears or changes
/// (a job that is ready for an agent is not news), until the run ends. The
/// server has no stream of waiting reasons, so this asks it twice a second.
async fn watch_waiting(
    client: kiln_client::Client,
    run: RunId,
    only: Option<Vec<InstanceId>>,
    i: usize,
    tx: tokio::sync::mpsc::UnboundedSender<(usize, Msg)>,
) {
    let mut told: HashMap<Option<InstanceId>, String> = HashMap::new();
    loop {
        if let Ok(detail) = client.run(run).await {
            if detail.summary.status.is_terminal() {
                return;
            }
            let mut now: Vec<(Option<InstanceId>, &WaitingReason)> = Vec::new();
            if let Some(r) = &detail.summary.waiting_reason {
                now.push((None, r));
            }
            for j in &detail.jobs {
                let wanted = only.as_ref().is_none_or(|ids| ids.contains(&j.id));
                if let (true, Some(r)) = (wanted, &j.waiting_reason) {
                    now.push((Some(j.id), r));
                }
            }
            told.retain(|k, _| now.iter().any(|(j, _)| j == k));
            for (job, reason) in now {
                if reason.kind == WaitingKind::Ready || told.get(&job) == Some(&reason.message) {
                    continue;
                }
                told.insert(job, reason.message.clone());
                let msg = Msg::Waiting {
                    job,
                    message: reason.message.clone(),
                };
                if tx.send((i, msg)).is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// The job ids a `--job` value names: an id, a display name, or a key
/// under `jobs:` (every matrix instance of it).
pub fn select_jobs(detail: &RunDetail, wanted: &str) -> Result<Vec<InstanceId>, Error> {
    let jobs = &detail.jobs;
    if let Ok(id) = wanted.parse::<i64>()
        && jobs.iter().any(|j| j.id == InstanceId(id))
    {
        return Ok(vec![InstanceId(id)]);
    }
    let by_name: Vec<InstanceId> = jobs
        .iter()
        .filter(|j| j.name == wanted)
        .map(|j| j.id)
        .collect();
    if !by_name.is_empty() {
        return Ok(by_name);
    }
    let by_key: Vec<InstanceId> = jobs
        .iter()
        .filter(|j| j.job == wanted)
        .map(|j| j.id)
        .collect();
    if !by_key.is_empty() {
        return Ok(by_key);
    }
    let mut keys: Vec<&str> = jobs.iter().map(|j| j.job.as_str()).collect();
    keys.dedup();
    let known = if keys.is_empty() {
        "it has no jobs yet".to_owned()
    } else {
        format!("its jobs: {}", keys.join(", "))
    };
    Err(Error::Usage(format!(
        "run {} has no job `{wanted}` ({known})",
        detail.summary.id
    )))
}

/// Prefixes and prints lines; knows each run's job names.
struct Printer {
    style: Style,
    sink: Sink,
    /// Label lines with the workflow too (several runs at once).
    label_runs: bool,
    runs: Vec<RunNames>,
}

struct RunNames {
    id: RunId,
    workflow: String,
    /// Display name and colour of each job.
    jobs: HashMap<InstanceId, (String, usize)>,
    /// Jobs already looked up again, so an unknown id costs one request.
    asked: HashSet<InstanceId>,
}

impl Printer {
    fn new(style: Style, runs: &[RunDetail], sink: Sink) -> Printer {
        let mut p = Printer {
            style,
            sink,
            label_runs: runs.len() > 1,
            runs: runs
                .iter()
                .map(|d| RunNames {
                    id: d.summary.id,
                    workflow: d.summary.workflow_name.clone(),
                    jobs: HashMap::new(),
                    asked: HashSet::new(),
                })
                .collect(),
        };
        for (i, d) in runs.iter().enumerate() {
            p.learn(i, d);
        }
        p
    }

    fn learn(&mut self, run: usize, detail: &RunDetail) {
        let offset: usize = self.runs[..run].iter().map(|r| r.jobs.len()).sum();
        let names = &mut self.runs[run];
        for (k, j) in detail.jobs.iter().enumerate() {
            names
                .jobs
                .entry(j.id)
                .or_insert_with(|| (j.name.clone(), offset + k));
        }
    }

    /// True the first time an unknown job shows up.
    fn needs_names(&mut self, run: usize, job: InstanceId) -> bool {
        let names = &mut self.runs[run];
        !names.jobs.contains_key(&job) && names.asked.insert(job)
    }

    fn entry(&mut self, run: usize, entry: &LogEntry) -> std::io::Result<()> {
        let names = &self.runs[run];
        let (name, colour) = match names.jobs.get(&entry.job) {
            Some((n, c)) => (n.clone(), *c),
            None => (
                format!("job {}", entry.job),
                entry.job.0.unsigned_abs() as usize,
            ),
        };
        let label = if self.label_runs {
            format!("{} / {name}", names.workflow)
        } else {
            name
        };
        let line = render_line(self.style, &label, colour, entry);
        self.emit(&line)
    }

    fn waiting(
        &mut self,
        run: usize,
        job: Option<InstanceId>,
        message: &str,
    ) -> std::io::Result<()> {
        let names = &self.runs[run];
        let who = match job.and_then(|j| names.jobs.get(&j)) {
            Some((name, _)) => name.clone(),
            None => match job {
                Some(j) => format!("job {j}"),
                None => format!("run {}", names.id),
            },
        };
        let line = self
            .style
            .paint("33", &format!("{who} is waiting: {message}"));
        self.emit(&line)
    }

    fn end(&mut self, run: usize, status: JobStatus) -> std::io::Result<()> {
        let names = &self.runs[run];
        let line = format!(
            "run {} ({}) finished: {}",
            names.id,
            names.workflow,
            self.style.status(status).shown()
        );
        self.emit(&line)
    }

    fn emit(&self, line: &str) -> std::io::Result<()> {
        match self.sink {
            Sink::Stdout => print(&format!("{line}\n")),
            Sink::Stderr => {
                eprintln!("{line}");
                Ok(())
            }
        }
    }
}

/// `[label] text`, the label coloured by `colour`, stderr dimmed and
/// kiln's own messages yellow (on a terminal).
fn render_line(style: Style, label: &str, colour: usize, entry: &LogEntry) -> String {
    let mut label = format!("[{label}");
    if entry.attempt > 1 {
        label.push_str(&format!(" #{}", entry.attempt));
    }
    label.push(']');
    let prefix = style.paint(PALETTE[colour % PALETTE.len()], &label);
    let text = entry.text.trim_end_matches(['\n', '\r']);
    let text = match entry.stream {
        LogStream::Stdout => text.to_owned(),
        LogStream::Stderr => style.dim(text),
        LogStream::System => style.paint("33", text),
    };
    format!("{prefix} {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_model::RunId;
    use kiln_proto::api::{JobSummary, RunSummary};

    fn entry(stream: LogStream, attempt: u32, text: &str) -> LogEntry {
        LogEntry {
            job: InstanceId(7),
            attempt,
            step: 1,
            stream,
            at: "2025-03-01T12:00:00Z".parse().expect("ts"),
            text: text.into(),
        }
    }

    #[test]
    fn lines_plain_and_coloured() {
        let plain = Style { color: false };
        assert_eq!(
            render_line(plain, "build", 0, &entry(LogStream::Stdout, 1, "ok\n")),
            "[build] ok"
        );
        assert_eq!(
            render_line(plain, "build", 0, &entry(LogStream::Stderr, 2, "warn")),
            "[build #2] warn"
        );
        let colour = Style { color: true };
        assert_eq!(
            render_line(colour, "build", 1, &entry(LogStream::Stderr, 1, "warn")),
            "\x1b[35m[build]\x1b[0m \x1b[2mwarn\x1b[0m"
        );
        assert_eq!(
            render_line(colour, "build", 0, &entry(LogStream::System, 1, "queued")),
            "\x1b[36m[build]\x1b[0m \x1b[33mqueued\x1b[0m"
        );
    }

    fn job(id: i64, key: &str, name: &str) -> JobSummary {
        JobSummary {
            waiting: None,
            waiting_reason: None,
            id: InstanceId(id),
            job: key.into(),
            name: name.into(),
            status: JobStatus::Queued,
            attempt: 1,
            agent: None,
            runs_on: vec![],
            weight: 1,
            priority: 0,
            reason: None,
            queued_at: None,
            started_at: None,
            finished_at: None,
        }
    }

    fn detail(jobs: Vec<JobSummary>) -> RunDetail {
        let t = "2025-03-01T12:00:00Z".parse().expect("ts");
        RunDetail {
            summary: RunSummary {
                waiting: None,
                waiting_reason: None,
                id: RunId(42),
                repo: "web".into(),
                workflow_name: "ci".into(),
                workflow_file: "ci.yml".into(),
                commit: "abc".into(),
                git_ref: None,
                event: "push".into(),
                status: JobStatus::Running,
                created_at: t,
                started_at: None,
                finished_at: None,
            },
            error: None,
            jobs,
            forge: None,
        }
    }

    #[test]
    fn job_selection_by_id_name_or_key() {
        let d = detail(vec![
            job(5, "build", "build"),
            job(6, "test", "test (linux)"),
            job(7, "test", "test (mac)"),
        ]);
        assert_eq!(select_jobs(&d, "6").ok(), Some(vec![InstanceId(6)]));
        assert_eq!(
            select_jobs(&d, "test (mac)").ok(),
            Some(vec![InstanceId(7)])
        );
        assert_eq!(
            select_jobs(&d, "test").ok(),
            Some(vec![InstanceId(6), InstanceId(7)])
        );
        let err = select_jobs(&d, "lint").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "run 42 has no job `lint` (its jobs: build, test)"
        );
        assert_eq!(err.exit_code(), exit::INVALID);
    }

    #[test]
    fn several_runs_are_labelled_with_the_workflow() {
        let mut a = detail(vec![job(5, "build", "build")]);
        a.summary.workflow_name = "ci".into();
        let mut b = detail(vec![job(9, "deploy", "deploy")]);
        b.summary.workflow_name = "cd".into();
        let mut p = Printer::new(Style { color: false }, &[a, b], Sink::Stderr);
        assert!(p.label_runs);
        assert_eq!(p.runs[1].jobs.get(&InstanceId(9)).map(|j| j.1), Some(1));
        assert!(p.needs_names(0, InstanceId(99)));
        assert!(!p.needs_names(0, InstanceId(99)), "asked once");
        assert!(!p.needs_names(0, InstanceId(5)));
    }
}
