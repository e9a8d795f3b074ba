//! Why queued jobs wait, end to end: `kiln show`, `kiln queue` and
//! `kiln trigger --wait` say it in words a person can act on; a job no
//! agent can run stands in no one's way; GitHub-hosted labels reach
//! self-hosted agents through the server's label aliases.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::world::{World, job_by_key as job};

/// A world with `workflow` as `ci.yml`, pushed and registered.
fn world(workflow: &str) -> World {
    World::builder()
        .prefix("kiln-waiting-")
        .workflow("ci.yml", workflow)
        .push("ci")
        .repo(&[])
        .start()
}

#[test]
fn a_job_no_agent_can_run_says_why_and_stands_in_no_ones_way() {
    let w = world(
        "on: push\njobs:\n  train:\n    runs-on: [self-hosted, gpu]\n    steps:\n      - run: echo trained\n  lint:\n    runs-on: [self-hosted, cpu]\n    steps:\n      - run: echo linted\n",
    );
    let _cpu = w.agent("cpu-box", "cpu", 2);
    let run = w.trigger(&[]);
    // The cpu job runs and finishes although the gpu job was queued first.
    let v = w.server.wait_run(&run, "the cpu job to finish", |v| {
        job(v, "lint")["status"] == "success"
    });
    let train = job(&v, "train");
    assert_eq!(train["status"], "queued", "{v}");
    assert_eq!(train["waiting_reason"]["kind"], "no-matching-agent", "{v}");
    let message = train["waiting_reason"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "no online agent has labels [self-hosted, gpu] (online agents have: cpu-box ["
        ) && message.contains("cpu"),
        "{message}"
    );
    let show = w.server.kiln(&["show", &run]);
    assert!(
        show.stdout
            .contains("no online agent has labels [self-hosted, gpu]"),
        "{}",
        show.stdout
    );

    // `kiln queue` lists it, with the reason.
    let queue = w.server.json(&["queue"]);
    let listed = queue
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == train["id"])
        .unwrap_or_else(|| panic!("not in the queue: {queue}"));
    assert_eq!(listed["waiting_reason"]["kind"], "no-matching-agent");
    let table = w.server.kiln(&["queue"]);
    assert!(table.stdout.contains("WAITING FOR"), "{}", table.stdout);
    assert!(
        table.stdout.contains("no online agent has labels"),
        "{}",
        table.stdout
    );

    // `kiln trigger --wait` says why its job waits, once, and goes on when
    // an agent that can run it comes.
    let mut wait = Command::new(support::KILN)
        .args(["trigger", "app", "--wait"])
        .env("KILN_SERVER", w.server.url())
        .env("KILN_TOKEN", w.server.admin_token())
        .env("KILN_COLOR", "never")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(wait.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let told = loop {
        let line = out
            .next()
            .unwrap_or_else(|| panic!("trigger --wait ended without saying why: {seen:?}"))
            .unwrap();
        seen.push(line.clone());
        if line.contains("is waiting:") {
            break line;
        }
    };
    assert!(
        told.starts_with("train is waiting: no online agent has labels [self-hosted, gpu]"),
        "{told}"
    );
    let _gpu = w.agent("gpu-box", "gpu", 1);
    let rest: Vec<String> = out.map(|l| l.unwrap()).collect();
    let status = wait.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("trained")), "{rest:?}");
    assert!(
        !rest.iter().any(|l| l.contains("is waiting:")),
        "a reason is told once, not again while it holds: {rest:?}"
    );
    let first = w.server.wait_run(&run, "the first run's gpu job", |v| {
        v["status"] == "success"
    });
    assert_eq!(job(&first, "train")["agent"], "gpu-box");
}

#[test]
fn a_busy_agent_is_named_with_its_load() {
    // The first job holds the only slot until the test writes to a FIFO.
    let fifo_dir = tempfile::tempdir().unwrap();
    let gate = fifo_dir.path().join("gate.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&gate)
            .status()
            .unwrap()
            .success()
    );
    let w = world(&format!(
        "on: push\njobs:\n  hold:\n    runs-on: [self-hosted, one]\n    steps:\n      - run: read go < {}\n  next:\n    runs-on: [self-hosted, one]\n    steps:\n      - run: echo next\n",
        gate.display()
    ));
    let _one = w.agent("solo", "one", 1);
    let run = w.trigger(&[]);
    let v = w
        .server
        .wait_run(&run, "one job running, one waiting for room", |v| {
            v["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|j| j["status"] == "running")
                && v["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|j| j["waiting_reason"]["kind"] == "agents-busy")
        });
    let busy = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["status"] == "queued")
        .unwrap();
    assert_eq!(
        busy["waiting_reason"]["message"], "all matching agent busy (`solo`, capacity 1/1)",
        "{v}"
    );
    std::fs::write(&gate, "go\n").unwrap();
    let done = w.server.wait_run(&run, "the run to finish", |v| {
        v["status"] == "success" || v["status"] == "failure"
    });
    assert_eq!(done["status"], "success", "{done}");
}

#[test]
fn ubuntu_latest_runs_on_a_self_hosted_agent_through_the_default_alias() {
    let w = world(
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo built\n",
    );
    let _agent = w.agent("plain", "", 1);
    let run = w.trigger(&[]);
    let done = w.server.wait_run(&run, "the run to finish", |v| {
        !matches!(v["status"].as_str(), Some("queued") | Some("running"))
    });
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(job(&done, "build")["agent"], "plain");
}
