//! The agent against a fake server: claim, run, logs, heartbeat replies,
//! failures of the server, and checkout from a real git repository.

mod support;

use kiln_agent::{Event, JobEnd};
use kiln_model::{InstanceId, JobStatus, StepStatus};
use kiln_proto::api::LogStream;
use kiln_proto::results::PhaseKind;
use std::time::{Duration, Instant};
use support::*;
use tokio_util::sync::CancellationToken;

/// A running agent and what it needs to be stopped.
struct Agent {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), kiln_agent::AgentError>>,
    events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    _dir: tempfile::TempDir,
    work_dir: std::path::PathBuf,
}

impl Agent {
    fn start(server: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let work_dir = dir.path().join("work");
        let shutdown = CancellationToken::new();
        let (sink, events) = events();
        let task = tokio::spawn(kiln_agent::run_with(
            config(server, &work_dir),
            shutdown.clone(),
            sink,
        ));
        Agent {
            shutdown,
            task,
            events,
            _dir: dir,
            work_dir,
        }
    }

    async fn ended(&mut self, job: InstanceId) -> JobEnd {
        wait_event(&mut self.events, "job ended", |e| match e {
            Event::JobEnded { job: j, end, .. } if *j == job => Some(end.clone()),
            _ => None,
        })
        .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(LIMIT, self.task)
            .await
            .expect("the agent stops after shutdown");
        r.unwrap().unwrap();
    }
}

fn assert_contiguous(chunks: &[(u64, Vec<kiln_proto::agent::WireLine>)]) {
    let seqs: Vec<u64> = chunks.iter().map(|(s, _)| *s).collect();
    let want: Vec<u64> = (0..seqs.len() as u64).collect();
    assert_eq!(seqs, want, "chunks are numbered 0, 1, 2, …");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_job_and_reports_logs_and_result() {
    let mut fake = Fake::start().await;
    let mut agent = Agent::start(&fake.url);
    fake.wait("register", |s| matches!(s, Seen::Registered).then_some(()))
        .await;

    let wf = workflow(
        r#"
on: push
jobs:
  build:
    runs-on: linux
    outputs:
      greeting: ${{ steps.hello.outputs.greeting }}
    steps:
      - id: hello
        run: |
          echo "hello from step one"
          echo "greeting=hi" >> "$KILN_OUTPUT"
      - name: count
        run: |
          for i in 1 2 3; do echo "line $i"; done
          echo "runner ${{ runner.name }} in $RUNNER_TEMP"
      - if: false
        run: echo never
"#,
    );
    let job = InstanceId(7);
    fake.queue(assignment(7, 1, wf));
    let c = fake.wait_completed(job).await;
    assert_eq!(agent.ended(job).await, JobEnd::Reported(JobStatus::Success));

    // The result, built like kiln exec builds it.
    let r = &c.result;
    assert_eq!(c.attempt, 1);
    assert_eq!((r.job.as_str(), r.name.as_str()), ("build", "build"));
    assert_eq!(r.status, JobStatus::Success, "{r:#?}");
    assert_eq!((r.attempt, r.agent.as_deref()), (1, Some("test-agent")));
    assert_eq!(r.outputs.get("greeting").map(String::as_str), Some("hi"));
    let statuses: Vec<StepStatus> = r.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Success,
            StepStatus::Success,
            StepStatus::Skipped
        ]
    );
    let kinds: Vec<PhaseKind> = r.phases.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            PhaseKind::Workspace,
            PhaseKind::Step,
            PhaseKind::Step,
            PhaseKind::Cleanup
        ]
    );
    assert!(r.started_at.is_some() && r.finished_at.is_some());

    // Logs: numbered from 0, all stored before the completion, in order.
    let chunks = fake.chunks(job, 1);
    assert_contiguous(&chunks);
    assert_eq!(fake.inner().chunks_at_completion, [chunks.len()]);
    let lines = fake.lines(job, 1);
    let out = output(&lines);
    assert_eq!(out[0], (1, LogStream::Stdout, "hello from step one".into()));
    assert_eq!(
        out[1..4],
        [
            (2, LogStream::Stdout, "line 1".into()),
            (2, LogStream::Stdout, "line 2".into()),
            (2, LogStream::Stdout, "line 3".into()),
        ]
    );
    assert!(
        out[4].2.starts_with("runner test-agent in ") && out[4].2.contains("/work/jobs/7-1/tmp"),
        "{:?}",
        out[4]
    );
    assert_eq!(out.len(), 5);
    let started = lines
        .iter()
        .position(|l| l.stream == LogStream::System && l.step == 1)
        .unwrap();
    assert!(
        started
            < lines
                .iter()
                .position(|l| l.text == "hello from step one")
                .unwrap()
    );

    // The claim asked for the whole capacity; the workspace is gone.
    assert_eq!(fake.inner().claims[0].free_capacity, 2);
    assert_eq!(
        std::fs::read_dir(agent.work_dir.join("jobs"))
            .unwrap()
            .count(),
        0
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_jobs_side_by_side_within_capacity() {
    let fake = Fake::start().await;
    let mut agent = Agent::start(&fake.url);
    // Two jobs of weight 1 on capacity 2: both run at once; they meet on
    // two FIFOs (opening one blocks until the other side opens it), so
    // they finish only if both run.
    let dir = tempfile::tempdir().unwrap();
    let (there, back) = (fifo(dir.path(), "there"), fifo(dir.path(), "back"));
    let scripts = [
        format!("echo hello > {there}\n          read _ < {back}"),
        format!("read _ < {there}\n          echo hello > {back}"),
    ];
    for (id, script) in [(1, &scripts[0]), (2, &scripts[1])] {
        let wf = workflow(&format!(
            r#"
on: push
jobs:
  j{id}:
    runs-on: linux
    steps:
      - run: |
          {script}
"#
        ));
        fake.queue(assignment(id, 1, wf));
    }
    let mut ended = Vec::new();
    while ended.len() < 2 {
        let (job, end) = wait_event(&mut agent.events, "jobs ended", |e| match e {
            Event::JobEnded { job, end, .. } => Some((*job, end.clone())),
            _ => None,
        })
        .await;
        assert_eq!(end, JobEnd::Reported(JobStatus::Success));
        ended.push(job);
    }
    ended.sort();
    assert_eq!(ended, [InstanceId(1), InstanceId(2)]);
    for (_, c) in &fake.inner().completions {
        assert_eq!(c.result.status, JobStatus::Success);
    }
    // A claim went out with the capacity left after the first job; none
    // went out at full capacity use.
    let claims = fake.inner().claims.clone();
    assert!(claims.iter().any(|c| c.free_capacity == 1));
    assert!(claims.iter().all(|c| c.free_capacity >= 1));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_from_the_heartbeat_stops_the_step() {
    let mut fake = Fake::start().await;
    let mut agent = Agent::start(&fake.url);
    let wf = workflow(
        r#"
on: push
jobs:
  slow:
    runs-on: linux
    steps:
      - run: |
          echo started
          sleep 120
      - if: always()
        run: echo cleanup-ran
"#,
    );
    let job = InstanceId(3);
    let clock = Instant::now();
    fake.queue(assignment(3, 2, wf));
    fake.wait_line(job, "started").await;
    fake.inner().beats.insert(job, Beat::Cancel);
    let c = fake.wait_completed(job).await;
    assert!(clock.elapsed() < Duration::from_secs(60));
    assert_eq!(c.attempt, 2);
    assert_eq!(c.result.status, JobStatus::Cancelled, "{:#?}", c.result);
    assert_eq!(c.result.steps[0].status, StepStatus::Cancelled);
    assert_eq!(c.result.steps[1].status, StepStatus::Success);
    let out = output(&fake.lines(job, 2));
    assert!(out.iter().any(|(s, _, t)| *s == 2 && t == "cleanup-ran"));
    assert_eq!(
        agent.ended(job).await,
        JobEnd::Reported(JobStatus::Cancelled)
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_heartbeat_kills_the_job_and_reports_nothing() {
    let mut fake = Fake::start().await;
    let mut agent = Agent::start(&fake.url);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let wf = workflow(&format!(
        r#"
on: push
jobs:
  slow:
    runs-on: linux
    steps:
      - run: |
          echo $$ > {pid}
          echo started
          sleep 120
      - if: always()
        run: echo must-not-run
"#,
        pid = pid_file.display()
    ));
    let job = InstanceId(4);
    let clock = Instant::now();
    fake.queue(assignment(4, 1, wf));
    fake.wait_line(job, "started").await;
    fake.inner().beats.insert(job, Beat::Stale);
    assert_eq!(agent.ended(job).await, JobEnd::LeaseLost);
    assert!(clock.elapsed() < Duration::from_secs(60));
    assert!(fake.inner().completions.is_empty());
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the step's shell was killed"
    );
    let out = output(&fake.lines(job, 1));
    assert!(!out.iter().any(|(_, _, t)| t == "must-not-run"));
    agent.stop().await;
    assert!(fake.inner().completions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_silent_for_the_lease_gets_the_job_killed_and_nothing_reported() {
    let mut fake = Fake::start().await;
    let mut agent = Agent::start(&fake.url);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let wf = workflow(&format!(
        r#"
on: push
jobs:
  slow:
    runs-on: linux
    steps:
      - run: |
          echo $$ > {pid}
          echo started
          sleep 120
"#,
        pid = pid_file.display()
    ));
    let job = InstanceId(8);
    fake.queue(assignment(8, 1, wf));
    fake.wait_line(job, "started").await;
    // Cut off (or down: the agent cannot tell) for longer than the lease
    // (1 s here): the server may run the job elsewhere by now.
    fake.inner().down = true;
    let silent = wait_event(&mut agent.events, "the fence", |e| match e {
        Event::LeaseExpired { job: j, silent, .. } if *j == job => Some(*silent),
        _ => None,
    })
    .await;
    assert!(silent < Duration::from_secs(1), "{silent:?}");
    assert_eq!(agent.ended(job).await, JobEnd::LeaseLost);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the step's shell was killed"
    );
    fake.inner().down = false;
    agent.stop().await;
    assert!(fake.inner().completions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_completion_survive_503s_exactly_once_in_order() {
    let mut fake = Fake::start().await;
    {
        let mut inner = fake.inner();
        inner.fail_logs = [
            Fail::Drop,
            Fail::StoreThenDrop,
            Fail::Drop,
            Fail::StoreThenDrop,
            Fail::StoreThenDrop,
        ]
        .into();
        inner.fail_complete = 3;
    }
    let mut agent = Agent::start(&fake.url);
    // More lines than one chunk holds: several chunks, each failing first.
    let wf = workflow(
        r#"
on: push
jobs:
  chatty:
    runs-on: linux
    steps:
      - run: seq 1 2500
      - run: seq 2501 3000
"#,
    );
    let job = InstanceId(5);
    fake.queue(assignment(5, 1, wf));
    let c = fake.wait_completed(job).await;
    assert_eq!(c.result.status, JobStatus::Success);
    assert_eq!(agent.ended(job).await, JobEnd::Reported(JobStatus::Success));

    let chunks = fake.chunks(job, 1);
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    assert_contiguous(&chunks);
    let texts: Vec<String> = output(&fake.lines(job, 1))
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    let want: Vec<String> = (1..=3000).map(|n| n.to_string()).collect();
    assert_eq!(texts, want);
    {
        let inner = fake.inner();
        assert!(inner.fail_logs.is_empty() && inner.fail_complete == 0);
        assert_eq!(inner.completions.len(), 1);
        assert_eq!(inner.chunks_at_completion, [chunks.len()]);
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_the_server_and_rides_out_its_restart() {
    // Nothing listens yet: registration retries.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut agent = Agent::start(&format!("http://{addr}"));
    wait_event(&mut agent.events, "a failed registration", |e| {
        matches!(e, Event::Retrying { .. }).then_some(())
    })
    .await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mut fake = Fake::serve(listener);

    let dir = tempfile::tempdir().unwrap();
    let go = fifo(dir.path(), "go");
    let wf = workflow(&format!(
        r#"
on: push
jobs:
  long:
    runs-on: linux
    steps:
      - run: |
          echo before
          read _ < {go}
          echo after
"#,
        go = go
    ));
    let job = InstanceId(6);
    fake.queue(assignment(6, 1, wf));
    fake.wait_line(job, "before").await;

    // The server goes away: heartbeats fail, the job keeps running.
    fake.inner().down = true;
    fake.wait("a heartbeat while down", |s| {
        matches!(s, Seen::Failed("heartbeat")).then_some(())
    })
    .await;
    // The step is blocked reading the FIFO: this lets it go on.
    tokio::fs::write(&go, "go\n").await.unwrap();
    // Its last lines ride with its result, which fails to go through.
    fake.wait("a report while down", |s| {
        matches!(s, Seen::Failed("complete")).then_some(())
    })
    .await;
    fake.inner().down = false;

    let c = fake.wait_completed(job).await;
    assert_eq!(c.result.status, JobStatus::Success);
    let texts: Vec<String> = output(&fake.lines(job, 1))
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(texts, ["before", "after"]);
    assert_contiguous(&fake.chunks(job, 1));
    agent.stop().await;
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=kiln",
            "-c",
            "user.email=kiln@example.invalid",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn commit(src: &std::path::Path, content: &str) -> String {
    std::fs::write(src.join("a.txt"), content).unwrap();
    git(src, &["add", "a.txt"]);
    git(src, &["commit", "-q", "-m", content]);
    git(src, &["rev-parse", "HEAD"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_out_from_a_mirror_and_fetches_only_when_needed() {
    let repos = tempfile::tempdir().unwrap();
    let src = repos.path().join("src");
    let bare = repos.path().join("repo.git");
    std::fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    let one = commit(&src, "one");
    let two = commit(&src, "two");
    let status = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&src)
        .arg(&bare)
        .status()
        .unwrap();
    assert!(status.success());
    let url = format!("file://{}", bare.display());

    let mut fake = Fake::start().await;
    let mut agent = Agent::start(&fake.url);
    let wf = workflow(
        r#"
on: push
jobs:
  read:
    runs-on: linux
    outputs:
      content: ${{ steps.r.outputs.content }}
      head: ${{ steps.r.outputs.head }}
    steps:
      - uses: actions/checkout@v4
      - id: r
        run: |
          echo "content=$(cat a.txt)" >> "$KILN_OUTPUT"
          echo "head=$(git rev-parse HEAD)" >> "$KILN_OUTPUT"
          git status --porcelain
"#,
    );
    let at = |id: i64, commit: &str| {
        let mut a = assignment(id, 1, wf.clone());
        a.repo_url = url.clone();
        a.commit = commit.to_owned();
        a
    };

    // First job: the mirror is cloned; the older commit is checked out.
    fake.queue(at(11, &one));
    let c = fake.wait_completed(InstanceId(11)).await;
    assert_eq!(c.result.status, JobStatus::Success, "{:#?}", c.result);
    assert_eq!(c.result.outputs["content"], "one");
    assert_eq!(c.result.outputs["head"], one);
    let log = fake.lines(InstanceId(11), 1);
    assert!(
        log.iter()
            .any(|l| l.step == 1 && l.text.starts_with("cloning "))
    );

    // A new commit: the second job fetches into the existing mirror.
    let three = commit(&src, "three");
    git(&src, &["push", "-q", bare.to_str().unwrap(), "main"]);
    fake.queue(at(12, &three));
    let c = fake.wait_completed(InstanceId(12)).await;
    assert_eq!(c.result.status, JobStatus::Success, "{:#?}", c.result);
    assert_eq!(c.result.outputs["content"], "three");
    let log = fake.lines(InstanceId(12), 1);
    assert!(
        log.iter()
            .any(|l| l.step == 1 && l.text.starts_with("fetching "))
    );
    assert!(!log.iter().any(|l| l.text.starts_with("cloning ")));

    // A commit the mirror has: no fetch.
    fake.queue(at(13, &two));
    let c = fake.wait_completed(InstanceId(13)).await;
    assert_eq!(c.result.outputs["content"], "two");
    let log = fake.lines(InstanceId(13), 1);
    assert!(
        log.iter()
            .any(|l| l.text.contains("already has the commit"))
    );
    assert!(!log.iter().any(|l| l.text.starts_with("fetching ")));

    let mirrors: Vec<_> = std::fs::read_dir(agent.work_dir.join("mirrors"))
        .unwrap()
        .collect();
    assert_eq!(mirrors.len(), 1);
    for id in [11, 12, 13] {
        assert_eq!(
            agent.ended(InstanceId(id)).await,
            JobEnd::Reported(JobStatus::Success)
        );
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_commit_fails_the_checkout_step() {
    let repos = tempfile::tempdir().unwrap();
    let src = repos.path().join("src");
    std::fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    commit(&src, "one");
    let mut fake = Fake::start().await;
    let agent = Agent::start(&fake.url);
    let wf = workflow(
        r#"
on: push
jobs:
  read:
    runs-on: linux
    steps:
      - uses: actions/checkout@v4
      - run: echo must-not-run
"#,
    );
    let mut a = assignment(21, 1, wf);
    a.repo_url = format!("file://{}", src.display());
    a.commit = "1234567890abcdef1234567890abcdef12345678".into();
    fake.queue(a);
    let c = fake.wait_completed(InstanceId(21)).await;
    assert_eq!(c.result.status, JobStatus::Failure);
    let reason = c.result.steps[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("is not in"), "{reason}");
    assert_eq!(c.result.steps[1].status, StepStatus::Skipped);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_claiming_and_lets_running_jobs_finish() {
    let mut fake = Fake::start().await;
    let mut agent = Agent::start(&fake.url);
    let dir = tempfile::tempdir().unwrap();
    let go = fifo(dir.path(), "go");
    let wf = workflow(&format!(
        r#"
on: push
jobs:
  long:
    runs-on: linux
    steps:
      - run: |
          echo waiting
          read _ < {go}
          echo finishing
"#,
        go = go
    ));
    let job = InstanceId(31);
    fake.queue(assignment(31, 1, wf.clone()));
    fake.wait_line(job, "waiting").await;

    agent.shutdown.cancel();
    let running = wait_event(&mut agent.events, "shutting down", |e| match e {
        Event::ShuttingDown { running } => Some(*running),
        _ => None,
    })
    .await;
    assert_eq!(running, 1);
    // The open claim (for the capacity left) is abandoned, and the server
    // sees it go: a job queued from then on must stay queued.
    fake.wait("the open claim abandoned", |s| {
        matches!(s, Seen::ClaimAbandoned).then_some(())
    })
    .await;
    fake.queue(assignment(32, 1, wf));
    // The step is blocked reading the FIFO: this lets it go on.
    tokio::fs::write(&go, "go\n").await.unwrap();
    let c = fake.wait_completed(job).await;
    assert_eq!(c.result.status, JobStatus::Success);
    let out = output(&fake.lines(job, 1));
    assert_eq!(out.last().map(|l| l.2.as_str()), Some("finishing"));
    let queue_left = fake.inner().queue.len();
    agent.stop().await;
    assert_eq!(queue_left, 1);
    assert_eq!(fake.inner().queue.len(), 1);
}

/// A FIFO in `dir`, for a step to block on until the test writes to it;
/// its path as the step's shell sees it.
fn fifo(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    path.display().to_string()
}
