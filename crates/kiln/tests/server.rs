//! End-to-end tests of the server, agents and client commands: real
//! processes on loopback, a real bare git remote, the real SQLite store.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::world::{World, job};

#[test]
fn a_pushed_workflow_runs_on_an_agent_with_logs_and_results() {
    let w = World::start();
    w.remote.file(
        ".kiln/workflows/ci.yml",
        r#"
on: push
jobs:
  build:
    runs-on: self-hosted
    outputs:
      v: ${{ steps.s.outputs.v }}
    steps:
      - uses: actions/checkout@v4
      - id: s
        run: |
          cat hello.txt
          echo "v=42" >> "$KILN_OUTPUT"
  test:
    needs: build
    runs-on: self-hosted
    steps:
      - run: echo "got ${{ needs.build.outputs.v }} at ${{ github.sha }}"
"#,
    );
    w.remote.file("hello.txt", "hello from the commit\n");
    let sha = w.remote.push("first");
    w.add_repo(&[]);
    let _a = w.agent("a1", "", 2);
    let run = w.trigger(&[]);
    let done = w.finished(&run);
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["commit"], sha.as_str());

    let logs = w.server.kiln(&["logs", &run]);
    logs.code(0);
    assert!(
        logs.stdout.contains("hello from the commit"),
        "{}",
        logs.stdout
    );
    assert!(
        logs.stdout.contains(&format!("got 42 at {sha}")),
        "{}",
        logs.stdout
    );

    let results = w.server.kiln(&["show", &run, "--results"]);
    results.code(0);
    let results: Value = serde_json::from_str(&results.stdout).unwrap();
    let jobs = results["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{results}");
    assert!(jobs.iter().all(|j| j["agent"] == "a1"), "{results}");
    let kinds: Vec<&str> = jobs[0]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"queue-wait"), "{results}");
    assert!(
        kinds.contains(&"workspace") && kinds.contains(&"step"),
        "{results}"
    );
    assert_eq!(jobs[0]["outputs"]["v"], "42");
}

#[test]
fn trigger_wait_follows_logs_and_sets_the_exit_code() {
    let w = World::start();
    w.remote.file(".kiln/workflows/ci.yml", "on: push\njobs:\n  j:\n    runs-on: self-hosted\n    steps:\n      - run: echo streaming-line\n      - run: exit 3\n");
    w.remote.push("fails");
    w.add_repo(&[]);
    let _a = w.agent("a1", "", 1);
    let run = w.server.kiln(&["trigger", "app", "--wait"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("streaming-line"), "{}", run.stdout);
}

#[test]
fn dag_across_two_agents_with_labels_and_weights() {
    let w = World::start();
    w.remote.file(
        ".kiln/workflows/ci.yml",
        r#"
on: push
jobs:
  red:
    runs-on: [self-hosted, red]
    steps: [{run: echo red}]
  blue:
    needs: red
    runs-on: [self-hosted, blue]
    steps: [{run: echo blue}]
  heavy:
    needs: red
    runs-on: [self-hosted, red]
    weight: 2
    steps: [{run: sleep 0.3}]
  light1:
    needs: red
    runs-on: [self-hosted, red]
    steps: [{run: sleep 0.3}]
  light2:
    needs: red
    runs-on: [self-hosted, red]
    steps: [{run: sleep 0.3}]
"#,
    );
    w.remote.push("dag");
    w.add_repo(&[]);
    let _r = w.agent("red-agent", "red", 2);
    let _b = w.agent("blue-agent", "blue", 1);
    let run = w.trigger(&[]);
    let done = w.finished(&run);
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(job(&done, "red")["agent"], "red-agent");
    assert_eq!(job(&done, "blue")["agent"], "blue-agent");
    // The heavy job (weight 2 on a capacity-2 agent) never overlapped another job there.
    let span = |n: &str| {
        let j = job(&done, n);
        (
            j["started_at"].as_str().unwrap().to_owned(),
            j["finished_at"].as_str().unwrap().to_owned(),
        )
    };
    let (hs, he) = span("heavy");
    for l in ["light1", "light2"] {
        let (s, e) = span(l);
        assert!(e <= hs || s >= he, "{l} overlapped heavy: {done}");
    }
}

#[test]
fn cancel_stops_a_running_job_and_retry_runs_again() {
    let w = World::start();
    w.remote.file(".kiln/workflows/ci.yml", "on: push\njobs:\n  long:\n    runs-on: self-hosted\n    steps:\n      - run: echo started && sleep 60\n");
    w.remote.push("long");
    w.add_repo(&[]);
    let _a = w.agent("a1", "", 1);
    let run = w.trigger(&[]);
    w.server.wait_run(&run, "the job to run", |v| {
        v["jobs"][0]["status"] == "running"
    });
    w.server.kiln(&["cancel", &run]).code(0);
    let done = w.finished(&run);
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(done["jobs"][0]["status"], "cancelled");

    let retried = w.server.json(&["retry", &run]);
    let new = retried["id"].to_string();
    assert_ne!(new, run);
    w.server.wait_run(&new, "the retried job to run", |v| {
        v["jobs"][0]["status"] == "running"
    });
    w.server.kiln(&["cancel", &new]).code(0);
    assert_eq!(w.finished(&new)["status"], "cancelled");
}

#[test]
fn a_malformed_workflow_fails_the_run_with_diagnostics() {
    let w = World::start();
    w.remote.file(
        ".kiln/workflows/ci.yml",
        "on: push\njobs:\n  a:\n    runs_on: x\n    steps: [{run: echo}]\n",
    );
    w.remote.push("bad");
    w.add_repo(&[]);
    let run = w.trigger(&[]);
    let done = w.finished(&run);
    assert_eq!(done["status"], "failure");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains(".kiln/workflows/ci.yml:4:5"), "{error}");
    let show = w.server.kiln(&["show", &run]);
    assert!(
        show.stdout.contains("did you mean `runs-on`?")
            || show.stderr.contains("did you mean `runs-on`?"),
        "{}",
        show.stdout
    );
}

#[test]
fn tokens_401_and_403_are_distinct() {
    let w = World::start();
    let viewer = w.server.kiln(&["token", "create", "--role", "viewer"]);
    viewer.code(0);
    let viewer = viewer.stdout.trim().to_owned();
    w.server.kiln_as(&viewer, &["runs"]).code(0);
    let denied = w
        .server
        .kiln_as(&viewer, &["repo", "add", "x", "file:///nowhere"]);
    assert_eq!(denied.code, 3, "{}", denied.stderr);
    assert!(
        denied.stderr.contains("403") || denied.stderr.contains("role"),
        "{}",
        denied.stderr
    );
    let bad = w.server.kiln_as("kiln_not_a_token", &["runs"]);
    assert_eq!(bad.code, 3);
    assert!(
        bad.stderr.contains("401") || bad.stderr.contains("token"),
        "{}",
        bad.stderr
    );
    // Agent tokens reach only agent endpoints.
    let agent = std::fs::read_to_string(&w.token_file).unwrap();
    let agent_denied = w.server.kiln_as(agent.trim(), &["runs"]);
    assert_eq!(agent_denied.code, 3);
}

#[test]
fn a_killed_agent_loses_its_lease_and_another_agent_finishes_the_job() {
    let w = World::builder().lease(2.0).start();
    w.remote.file(
        ".kiln/workflows/ci.yml",
        "on: push\njobs:\n  j:\n    runs-on: [self-hosted, first]\n    steps:\n      - run: echo attempt-$KILN_RUN_ID && sleep 2\n",
    );
    w.remote.push("j");
    w.add_repo(&[]);
    let mut first = w.agent("first", "first", 1);
    let run = w.trigger(&[]);
    w.server.wait_run(&run, "the first attempt", |v| {
        v["jobs"][0]["status"] == "running"
    });
    first.kill();
    let _second = w.agent("second", "first", 1);
    let done = w.finished(&run);
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["jobs"][0]["attempt"], 2);
    assert_eq!(done["jobs"][0]["agent"], "second");
    // The results show both attempts: the lost one and the one that finished.
    let results = w.server.kiln(&["show", &run, "--results"]);
    let results: Value = serde_json::from_str(&results.stdout).unwrap();
    let attempts: Vec<(u64, String, String)> = results["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["attempt"].as_u64().unwrap(),
                j["agent"].as_str().unwrap().to_owned(),
                j["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (1, "first".to_string(), "failure".to_string()),
            (2, "second".to_string(), "success".to_string())
        ]
    );
    assert_eq!(results["jobs"][0]["reason"], "agent-lost");
    // The lost agent shows as lost, with when it was last seen, at once and
    // after a server restart (the verdict is in the store).
    let lost = |agents: Value| {
        let first = agents
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "first")
            .cloned()
            .unwrap_or_else(|| panic!("no agent `first`: {agents}"));
        assert_eq!(first["online"], false, "{first}");
        assert!(first["lost_at"].is_string(), "{first}");
        assert!(first["last_seen"].is_string(), "{first}");
        first["lost_at"].clone()
    };
    let before = lost(w.server.json(&["agents"]));
    let mut w = w;
    w.server.restart();
    assert_eq!(lost(w.server.json(&["agents"])), before);
    let table = w.server.kiln(&["agents"]);
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("first") && l.contains("lost")),
        "{}",
        table.stdout
    );
}

/// A killed agent's step dies with it: when the retry starts on another
/// agent, the first attempt's processes (the step's shell and a child it
/// left running) are gone. A deploy, so that two at once would mean two
/// deploys of one environment.
#[test]
fn a_killed_agents_step_is_dead_before_the_retry_starts() {
    let w = World::builder().lease(2.0).start();
    let dir = w.remote.dir.path();
    let (pids, verdict, fifo) = (dir.join("pids"), dir.join("verdict"), dir.join("handshake"));
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // The retry finds the pid file and records every pid of attempt 1
    // that is still alive. A zombie (state Z: dead, waiting to be reaped,
    // which `kill -0` would call alive) counts as dead.
    w.remote.file(
        ".kiln/workflows/deploy.yml",
        &format!(
            r#"on: push
jobs:
  deploy:
    runs-on: self-hosted
    environment: production
    steps:
      - run: |
          if [ -e {pids} ]; then
            for p in $(cat {pids}); do
              if read -r _ _ state _ 2>/dev/null < /proc/$p/stat && [ "$state" != Z ]; then
                echo "alive $p" >> {verdict}
              fi
            done
            echo checked >> {verdict}
            exit 0
          fi
          sleep 120 &
          echo "$$ $!" > {pids}
          echo first-attempt-started
          echo started > {fifo}
          wait
"#,
            pids = pids.display(),
            verdict = verdict.display(),
            fifo = fifo.display(),
        ),
    );
    w.remote.push("deploy");
    w.add_repo(&[]);
    let mut first = w.agent("first", "", 1);
    // The handshake: opening the FIFO waits for the step to write to it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn({
        let fifo = fifo.clone();
        move || {
            let _ = tx.send(std::fs::read_to_string(&fifo));
        }
    });
    let run = w.trigger(&[]);
    let said = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the first attempt's step did not start");
    assert_eq!(said.unwrap().trim(), "started");
    first.kill();
    let _second = w.agent("second", "", 1);
    let done = w.finished(&run);
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["jobs"][0]["attempt"], 2);
    assert_eq!(done["jobs"][0]["agent"], "second");
    assert_eq!(
        std::fs::read_to_string(&verdict).unwrap(),
        "checked\n",
        "attempt 1's processes ({}) outlived their agent",
        std::fs::read_to_string(&pids).unwrap().trim()
    );
    let results = w.server.kiln(&["show", &run, "--results"]);
    let results: Value = serde_json::from_str(&results.stdout).unwrap();
    assert_eq!(results["jobs"][0]["attempt"], 1, "{results}");
    assert_eq!(results["jobs"][0]["agent"], "first");
    assert_eq!(results["jobs"][0]["reason"], "agent-lost");
}

#[test]
fn a_killed_server_restarts_and_the_run_completes() {
    let mut w = World::start();
    // Two handshakes: the step waits for `go` (written once the server is
    // dead) and says on `done` that it finished while the server was down.
    let go = w.fifo("go.fifo");
    let done_fifo = w.fifo("done.fifo");
    w.remote.file(
        ".kiln/workflows/ci.yml",
        &format!(
            "on: push\njobs:\n  j:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          echo before-crash\n          read go < {go}\n          echo after-crash\n          echo finished > {done}\n  k:\n    needs: j\n    runs-on: self-hosted\n    steps: [{{run: echo second-job}}]\n",
            go = go.path.display(),
            done = done_fifo.path.display(),
        ),
    );
    w.remote.push("crash");
    w.add_repo(&[]);
    let _a = w.agent("a1", "", 1);
    let run = w.trigger(&[]);
    w.server.wait_run(&run, "the job to run", |v| {
        v["jobs"][0]["status"] == "running"
    });
    w.server.kill();
    let finished = done_fifo.reader();
    go.write("go\n", "the step to read the go-ahead");
    assert_eq!(
        finished
            .wait("the step to finish while the server is down")
            .trim(),
        "finished"
    );
    w.server.restart();
    let done = w.finished(&run);
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["jobs"].as_array().unwrap().len(), 2);
    let logs = w.server.kiln(&["logs", &run]);
    for line in ["before-crash", "after-crash", "second-job"] {
        assert!(
            logs.stdout.contains(line),
            "missing {line}: {}",
            logs.stdout
        );
    }
}

#[test]
fn retry_failed_only_reuses_what_succeeded() {
    let w = World::start();
    let flag = w.remote.dir.path().join("pass-now");
    w.remote.file(
        ".kiln/workflows/ci.yml",
        &format!(
            r#"
on: push
jobs:
  build:
    runs-on: self-hosted
    outputs:
      n: ${{{{ steps.s.outputs.n }}}}
    steps:
      - id: s
        run: echo "n=$RANDOM-built" >> "$KILN_OUTPUT" && echo building
  test:
    needs: build
    runs-on: self-hosted
    steps:
      - run: echo "testing ${{{{ needs.build.outputs.n }}}}" && test -e {flag}
"#,
            flag = flag.display()
        ),
    );
    w.remote.push("flaky");
    w.add_repo(&[]);
    let _a = w.agent("a1", "", 1);
    let run = w.trigger(&[]);
    let first = w.finished(&run);
    assert_eq!(first["status"], "failure", "{first}");
    std::fs::write(&flag, "").unwrap();
    let retried = w.server.json(&["retry", &run, "--failed-only"]);
    let new = retried["id"].to_string();
    let done = w.finished(&new);
    assert_eq!(done["status"], "success", "{done}");
    assert!(
        job(&done, "build")["reason"]
            .as_str()
            .unwrap()
            .starts_with("reused from run"),
        "{done}"
    );
    // The reused job's output reached the rerun job unchanged.
    let old_logs = w.server.kiln(&["logs", &run]).stdout;
    let new_logs = w.server.kiln(&["logs", &new]).stdout;
    let testing = |logs: &str| {
        logs.lines()
            .find(|l| l.contains("testing "))
            .map(|l| l.to_owned())
    };
    assert!(testing(&old_logs).is_some(), "{old_logs}");
    assert_eq!(testing(&old_logs), testing(&new_logs));
    assert!(
        !new_logs.contains("building"),
        "build ran again: {new_logs}"
    );
}

#[test]
fn a_run_is_pinned_to_the_commit_asked_for() {
    let w = World::start();
    w.remote.file(".kiln/workflows/ci.yml", "on: push\njobs:\n  j:\n    runs-on: self-hosted\n    steps:\n      - uses: actions/checkout@v4\n      - run: cat version.txt\n");
    w.remote.file("version.txt", "one\n");
    let first = w.remote.push("one");
    w.add_repo(&[]);
    let _a = w.agent("a1", "", 1);
    let latest = w.trigger(&[]);
    assert_eq!(w.finished(&latest)["commit"], first.as_str());
    w.remote.file("version.txt", "two\n");
    let second = w.remote.push("two");
    // The mirror already has `first`: no fetch needed, and the run uses it, not the tip.
    let pinned = w.trigger(&["--commit", &first]);
    let done = w.finished(&pinned);
    assert_eq!(done["commit"], first.as_str());
    assert!(w.server.kiln(&["logs", &pinned]).stdout.contains("one"));
    // A commit the mirror does not have yet is fetched.
    let fetched = w.trigger(&["--commit", &second]);
    assert_eq!(w.finished(&fetched)["commit"], second.as_str());
    assert!(w.server.kiln(&["logs", &fetched]).stdout.contains("two"));
    let unknown = w.server.kiln(&[
        "trigger",
        "app",
        "--commit",
        "0123456789abcdef0123456789abcdef01234567",
    ]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("is not in"), "{}", unknown.stderr);
}

/// A report on a job is accepted only from the agent holding the attempt's
/// lease: another registered agent, with a valid agent token and the right
/// attempt number, is refused (403, `not-lease-holder`) on heartbeat, logs
/// and completion, and the run goes on to the real agent's result.
#[test]
fn an_agent_cannot_report_on_another_agents_attempt() {
    use kiln_client::{Client, ClientError};
    use kiln_proto::agent::{Completion, Heartbeat, LogChunk, RegisterRequest, WireLine};
    use kiln_proto::results::JobResult;

    let w = World::start();
    // The step blocks on a FIFO until the test writes to it.
    let gate = w.tmp.path().join("go.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&gate)
        .status()
        .unwrap();
    assert!(made.success());
    w.remote.file(
        ".kiln/workflows/ci.yml",
        &format!(
            "on: push\njobs:\n  j:\n    runs-on: [self-hosted, holder]\n    steps:\n      \
             - run: echo started && read go < {} && echo real-end\n",
            gate.display()
        ),
    );
    w.remote.push("j");
    w.add_repo(&[]);
    let _holder = w.agent("holder", "holder", 1);
    let run = w.trigger(&[]);
    let running = w.server.wait_run(&run, "the job to run", |v| {
        v["jobs"][0]["status"] == "running"
    });
    let job: kiln_model::InstanceId =
        serde_json::from_value(running["jobs"][0]["id"].clone()).unwrap();

    let token = std::fs::read_to_string(&w.token_file).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let impostor = Client::new(&w.server.url(), token.trim()).unwrap();
        impostor
            .register(&RegisterRequest {
                name: "impostor".into(),
                labels: vec!["holder".into()],
                capacity: 1,
                version: "test".into(),
            })
            .await
            .unwrap();
        let refused = |r: Result<(), ClientError>, call: &str| match r {
            Err(ClientError::NotLeaseHolder(_)) => {}
            other => panic!("{call} by another agent: expected not-lease-holder, got {other:?}"),
        };
        refused(
            impostor
                .heartbeat(job, &Heartbeat { attempt: 1 })
                .await
                .map(|_| ()),
            "heartbeat",
        );
        refused(
            impostor
                .send_logs(
                    job,
                    &LogChunk {
                        attempt: 1,
                        seq: 99,
                        lines: vec![WireLine {
                            step: 0,
                            stream: kiln_proto::api::LogStream::Stdout,
                            at: jiff::Timestamp::now(),
                            text: "forged line".into(),
                        }],
                    },
                )
                .await,
            "logs",
        );
        let mut forged: JobResult = serde_json::from_value(serde_json::json!({
            "job": "j", "name": "j", "matrix": null, "status": "success",
            "reason": null, "attempt": 1, "agent": "impostor", "queued_at": null,
            "started_at": null, "finished_at": null, "duration_ms": 0,
            "phases": [], "outputs": {}, "steps": []
        }))
        .unwrap();
        forged.status = kiln_model::JobStatus::Success;
        refused(
            impostor
                .complete(
                    job,
                    &Completion {
                        attempt: 1,
                        result: forged,
                    },
                )
                .await,
            "complete",
        );
    });
    let still = w.server.json(&["show", &run]);
    assert_eq!(still["jobs"][0]["status"], "running", "{still}");

    std::fs::write(&gate, "go\n").unwrap();
    let done = w.finished(&run);
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["jobs"][0]["agent"], "holder");
    let logs = w.server.kiln(&["logs", &run]);
    assert!(logs.stdout.contains("real-end"), "{}", logs.stdout);
    assert!(!logs.stdout.contains("forged line"), "{}", logs.stdout);
}
