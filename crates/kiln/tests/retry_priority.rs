//! End-to-end: retry by failure class and priorities, through the real
//! binary (server, agents, a bare git remote, the SQLite store).
//! Synchronised by polling `kiln show` and by a FIFO the test writes to,
//! never by sleeping.

mod support;

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use support::world::World;

fn world() -> World {
    World::builder().prefix("kiln-e2e-retry-").start()
}

/// (attempt, status, failure class, exit code) of every attempt listed.
fn attempts(results: &Value) -> Vec<(u64, String, Option<String>, Option<i64>)> {
    results["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["attempt"].as_u64().unwrap(),
                j["status"].as_str().unwrap().to_owned(),
                j["failure"]["class"].as_str().map(str::to_owned),
                j["failure"]["exit_code"].as_i64(),
            )
        })
        .collect()
}

#[test]
fn a_step_that_fails_once_is_retried_by_exit_code_and_succeeds_at_attempt_two() {
    let w = world();
    let marker = w.scratch("tried-once");
    w.remote.file(
        ".kiln/workflows/ci.yml",
        &format!(
            r#"
on: push
jobs:
  flaky:
    runs-on: self-hosted
    retry: {{max: 2, on: [exit-code]}}
    steps:
      - run: |
          if [ -e "{m}" ]; then echo "second time lucky"; else touch "{m}"; exit 3; fi
"#,
            m = marker.display()
        ),
    );
    w.remote.push("flaky");
    w.add_repo(&[]);
    let _a = w.agent("a1", "", 1);
    let run = w.trigger(&[]);
    let done = w.finished(&run);
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["jobs"][0]["status"], "success", "{done}");
    assert_eq!(done["jobs"][0]["attempt"], 2, "{done}");

    let results = w.results(&run);
    assert_eq!(
        attempts(&results),
        vec![
            (1, "failure".into(), Some("exit-code".into()), Some(3)),
            (2, "success".into(), None, None),
        ],
        "{results}"
    );
    let logs = w.server.kiln(&["logs", &run]);
    logs.code(0);
    assert!(logs.stdout.contains("second time lucky"), "{}", logs.stdout);
}

#[test]
fn a_job_without_retry_that_exits_1_is_not_retried() {
    let w = world();
    w.remote.file(
        ".kiln/workflows/ci.yml",
        "on: push\njobs:\n  broken:\n    runs-on: self-hosted\n    steps:\n      - run: exit 1\n",
    );
    w.remote.push("broken");
    w.add_repo(&[]);
    let _a = w.agent("a1", "", 1);
    let run = w.trigger(&[]);
    let done = w.finished(&run);
    assert_eq!(done["status"], "failure", "{done}");
    assert_eq!(done["jobs"][0]["attempt"], 1, "{done}");
    let results = w.results(&run);
    assert_eq!(
        attempts(&results),
        vec![(1, "failure".into(), Some("exit-code".into()), Some(1))],
        "{results}"
    );
}

/// Make a FIFO at `path` (the blocking job reads it until the test writes).
fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(ok.success(), "mkfifo {}", path.display());
}

#[test]
fn a_high_priority_job_queued_later_runs_before_a_low_priority_one() {
    let w = world();
    let gate = w.scratch("gate.fifo");
    mkfifo(&gate);
    let order = w.scratch("order.txt");
    let append = |name: &str| format!("echo {name} >> \"{}\"", order.display());
    w.remote.file(
        ".kiln/workflows/block.yml",
        &format!(
            "on: push\njobs:\n  block:\n    runs-on: self-hosted\n    steps:\n      - run: cat \"{}\"\n",
            gate.display()
        ),
    );
    // The repository's default (3) for `high`; `low` says -2 for its workflow.
    w.remote.file(
        ".kiln/workflows/low.yml",
        &format!(
            "on: workflow_dispatch\npriority: -2\njobs:\n  low:\n    runs-on: self-hosted\n    steps:\n      - run: {}\n",
            append("low")
        ),
    );
    w.remote.file(
        ".kiln/workflows/high.yml",
        &format!(
            "on: workflow_dispatch\njobs:\n  high:\n    runs-on: self-hosted\n    steps:\n      - run: {}\n",
            append("high")
        ),
    );
    w.remote.push("three workflows");
    w.add_repo(&["--priority", "3"]);
    let _a = w.agent("a1", "", 1);

    let blocker = w.trigger(&["--workflow", "block"]);
    w.server.wait_run(&blocker, "the blocking job to run", |v| {
        v["jobs"][0]["status"] == "running"
    });
    let low = w.trigger(&["--workflow", "low", "--event", "workflow_dispatch"]);
    let high = w.trigger(&["--workflow", "high", "--event", "workflow_dispatch"]);
    for run in [&low, &high] {
        w.server.wait_run(run, "the job to be queued", |v| {
            v["jobs"][0]["status"] == "queued"
        });
    }
    let queue = w.server.json(&["queue"]);
    let listed: Vec<(String, i64)> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["name"].as_str().unwrap().to_owned(),
                j["priority"].as_i64().unwrap(),
            )
        })
        .collect();
    // `kiln queue` lists in claim order: the higher priority first.
    assert_eq!(
        listed,
        vec![("high".to_owned(), 3), ("low".to_owned(), -2)],
        "{queue}"
    );
    let shown = w.server.json(&["show", &high]);
    assert_eq!(shown["jobs"][0]["priority"], 3, "{shown}");

    // Release the agent: the blocking job reads one line and ends.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&gate)
        .and_then(|mut f| f.write_all(b"go\n"))
        .expect("write the gate");
    for run in [&blocker, &low, &high] {
        assert_eq!(w.finished(run)["status"], "success");
    }
    assert_eq!(
        std::fs::read_to_string(&order).unwrap(),
        "high\nlow\n",
        "the high-priority job ran first"
    );
}
