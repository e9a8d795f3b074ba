//! Scenario tests of concurrency groups and deploys (docs/deploys.md):
//! the real server and agents on loopback, a real git remote, and deploy
//! steps that append what they do to a log outside the workspace, so the
//! test sees what actually happened and in which order.
//!
//! Each scenario is data: a workflow, a script of pushes and triggers, and
//! the expected outcome, checked through `kiln show`, `kiln envs` and the
//! deploy log.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::world::{World, job_by_key};

/// What the deploy scenarios do with a world, beyond the shared harness.
trait Deploys {
    fn start_deploys(&mut self, n: usize) -> Vec<String>;
    fn register(&mut self);
    fn commit(&self, i: usize) -> String;
    fn log(&self) -> PathBuf;
    fn lines(&self) -> Vec<String>;
    fn trigger_at(&self, commit: &str) -> String;
    fn deploy(&self, commit: &str, force: bool) -> String;
    fn job(&self, run: &str, key: &str) -> Value;
    fn env(&self) -> Value;
}

fn world() -> World {
    World::builder().prefix("kiln-deploys-").start()
}

impl Deploys for World {
    /// Push `n` commits (`c1`…, each changing `n.txt`) on top of what is
    /// in the work tree, register the repository and start the agent.
    /// Returns the commits, oldest first.
    fn start_deploys(&mut self, n: usize) -> Vec<String> {
        let commits = (1..=n).map(|i| self.commit(i)).collect();
        self.register();
        commits
    }

    /// Register the repository without polling (the script triggers every
    /// run itself) and start one agent with room for several jobs at
    /// once, so only the deploy rules (not capacity) keep deploys apart.
    fn register(&mut self) {
        self.add_repo(&["--poll-interval", "0"]);
        self.keep_agent("a1", "", 6);
    }

    /// Commit number `i`: `n.txt` holds `i` (c1 keeps the tree as it is).
    fn commit(&self, i: usize) -> String {
        if i > 1 {
            self.remote.file("n.txt", &i.to_string());
        }
        self.remote.push(&format!("c{i}"))
    }

    fn log(&self) -> PathBuf {
        self.scratch("deploy.log")
    }

    /// The deploy log's lines.
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn trigger_at(&self, commit: &str) -> String {
        self.trigger(&["--commit", commit])
    }

    fn deploy(&self, commit: &str, force: bool) -> String {
        let mut args = vec!["deploy", "app", "production", "--commit", commit];
        if force {
            args.push("--force");
        }
        let v = self.server.json(&args);
        v["runs"][0]["id"].to_string()
    }

    fn job(&self, run: &str, key: &str) -> Value {
        job_by_key(&self.show(run), key).clone()
    }

    fn env(&self) -> Value {
        let v = self.server.json(&["envs", "app"]);
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "production")
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// A workflow whose `deploy` job logs `start SHA` / `end SHA` around a
/// pause, and extra YAML under its `environment:` and job.
fn deploy_workflow(log: &Path, pause: &str, environment_extra: &str, job_extra: &str) -> String {
    format!(
        r#"
on: push
jobs:
  deploy:
    runs-on: self-hosted
    environment:
      name: production
{environment_extra}
    steps:
      - run: |
          echo "start $GITHUB_SHA" >> {log}
          sleep {pause}
          echo "end $GITHUB_SHA" >> {log}
{job_extra}
"#,
        log = log.display()
    )
}

/// Deploys never overlap: every `start` is followed by its own `end`.
fn assert_serial(lines: &[String]) {
    let mut open: Option<&str> = None;
    for l in lines {
        match l.split_once(' ') {
            Some(("start", sha)) => {
                assert!(open.is_none(), "two deploys at once: {lines:?}");
                open = Some(sha);
            }
            Some(("end", sha)) => {
                assert_eq!(open, Some(sha), "unbalanced deploy log: {lines:?}");
                open = None;
            }
            _ => {}
        }
    }
}

fn deployed(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("end ").map(str::to_owned))
        .collect()
}

#[test]
fn five_quick_pushes_deploy_one_at_a_time_and_the_newest_wins() {
    let mut w = world();
    let wf = deploy_workflow(&w.log(), "1", "", "");
    w.remote.file(".kiln/workflows/deploy.yml", &wf);
    let commits = w.start_deploys(5);
    let runs: Vec<String> = commits.iter().map(|c| w.trigger_at(c)).collect();
    for r in &runs {
        w.finished(r);
    }
    let lines = w.lines();
    assert_serial(&lines);
    let done = deployed(&lines);
    assert_eq!(done.last(), Some(&commits[4]), "{lines:?}");
    assert_eq!(w.env()["commit"], commits[4].as_str());
    // Every middle commit either deployed before the newer ones arrived or
    // was superseded by a newer one, never left waiting.
    let mut superseded = 0;
    for (run, commit) in runs.iter().zip(&commits).skip(1).take(3) {
        let j = w.job(run, "deploy");
        if done.contains(commit) {
            assert_eq!(j["status"], "success", "{j}");
        } else {
            superseded += 1;
            assert_eq!(j["status"], "skipped", "{j}");
            let reason = j["reason"].as_str().unwrap();
            assert!(reason.starts_with("superseded by "), "{reason}");
        }
    }
    assert!(
        superseded >= 1,
        "the middle commits all deployed: {lines:?}"
    );
    let history = w.env()["history"].as_array().unwrap().len();
    assert_eq!(history, 5, "{}", w.env());
}

#[test]
fn an_older_commit_is_stale_unless_forced() {
    let mut w = world();
    let wf = deploy_workflow(&w.log(), "0", "", "");
    w.remote.file(".kiln/workflows/deploy.yml", &wf);
    let [c1, c2]: [String; 2] = w.start_deploys(2).try_into().unwrap();
    let r = w.trigger_at(&c2);
    assert_eq!(w.finished(&r)["status"], "success");
    assert_eq!(w.env()["commit"], c2.as_str());

    let stale = w.deploy(&c1, false);
    let run = w.finished(&stale);
    let j = w.job(&stale, "deploy");
    assert_eq!(j["status"], "skipped", "{run}");
    assert_eq!(
        j["reason"],
        format!("stale: production is at newer {}", &c2[..12])
    );
    assert_eq!(w.env()["commit"], c2.as_str());
    assert_eq!(run["event"], "deploy");

    let forced = w.deploy(&c1, true);
    assert_eq!(w.finished(&forced)["status"], "success");
    assert_eq!(w.env()["commit"], c1.as_str());
    assert_eq!(deployed(&w.lines()), vec![c2.clone(), c1.clone()]);
}

#[test]
fn approval_granted_rejected_and_superseded_while_waiting() {
    let mut w = world();
    let wf = deploy_workflow(&w.log(), "0", "      approval: true", "");
    w.remote.file(".kiln/workflows/deploy.yml", &wf);
    let [c1]: [String; 1] = w.start_deploys(1).try_into().unwrap();

    // Granted.
    let r1 = w.trigger_at(&c1);
    let j = w.wait_job(&r1, "deploy", "waiting for approval", |j| {
        j["waiting"]["kind"] == "approval"
    });
    assert_eq!(j["status"], "queued");
    assert!(w.lines().is_empty(), "ran before approval");
    let approved_at = jiff::Timestamp::now();
    w.server.kiln(&["approve", &r1, "deploy"]).code(0);
    assert_eq!(w.finished(&r1)["status"], "success");
    // By the server's own clock, the deploy's one attempt started after
    // the approval, not while it waited.
    let results = w.results(&r1);
    let attempts = results["jobs"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{results}");
    let started: jiff::Timestamp = attempts[0]["started_at"].as_str().unwrap().parse().unwrap();
    assert!(started >= approved_at, "ran before approval: {results}");
    assert_eq!(w.env()["commit"], c1.as_str());
    let approver = w.env()["history"][0]["approver"].clone();
    assert!(approver.is_string(), "approver recorded: {}", w.env());

    // Rejected.
    let c2 = w.commit(2);
    let r2 = w.trigger_at(&c2);
    w.wait_job(&r2, "deploy", "waiting for approval", |j| {
        j["waiting"]["kind"] == "approval"
    });
    w.server.kiln(&["reject", &r2, "deploy"]).code(0);
    w.finished(&r2);
    let j = w.job(&r2, "deploy");
    assert_eq!(j["status"], "cancelled");
    assert!(
        j["reason"].as_str().unwrap().starts_with("rejected by "),
        "{j}"
    );
    assert_eq!(w.env()["commit"], c1.as_str());

    // Superseded while waiting: a newer commit's deploy replaces it.
    let c3 = w.commit(3);
    let r3 = w.trigger_at(&c3);
    w.wait_job(&r3, "deploy", "waiting for approval", |j| {
        j["waiting"]["kind"] == "approval"
    });
    let c4 = w.commit(4);
    let r4 = w.trigger_at(&c4);
    w.finished(&r3);
    let j = w.job(&r3, "deploy");
    assert_eq!(j["status"], "skipped");
    assert_eq!(j["reason"], format!("superseded by {}", &c4[..12]));
    w.wait_job(&r4, "deploy", "waiting for approval", |j| {
        j["waiting"]["kind"] == "approval"
    });
    w.server.kiln(&["approve", &r4, "deploy"]).code(0);
    assert_eq!(w.finished(&r4)["status"], "success");
    assert_eq!(deployed(&w.lines()), vec![c1, c4.clone()]);
    assert_eq!(w.env()["commit"], c4.as_str());
}

#[test]
fn a_failing_health_check_rolls_back_and_the_environment_stays_at_the_last_good_commit() {
    let mut w = world();
    let rollback_file = w.tmp.path().join("rolled-back-to");
    let wf = deploy_workflow(
        &w.log(),
        "0",
        "      health-check:\n        run: grep -q yes healthy.txt\n        retries: 1\n        interval: 0.1\n",
        &format!(
            "    rollback:\n      - run: echo \"$KILN_ROLLBACK_TO\" > {}\n",
            rollback_file.display()
        ),
    )
    .replace(
        "    steps:\n",
        "    steps:\n      - uses: actions/checkout@v4\n",
    );
    w.remote.file(".kiln/workflows/deploy.yml", &wf);
    w.remote.file("healthy.txt", "yes");
    let good = w.remote.push("good");
    w.register();
    assert_eq!(w.finished(&w.trigger_at(&good))["status"], "success");
    assert_eq!(w.env()["commit"], good.as_str());

    w.remote.file("healthy.txt", "no");
    let bad = w.remote.push("bad");
    let r = w.trigger_at(&bad);
    assert_eq!(w.finished(&r)["status"], "failure");
    let j = w.job(&r, "deploy");
    assert_eq!(
        j["reason"],
        format!("health check failed; rolled back to {}", &good[..12])
    );
    assert_eq!(
        std::fs::read_to_string(&rollback_file).unwrap().trim(),
        good
    );
    let env = w.env();
    assert_eq!(env["commit"], good.as_str(), "{env}");
    assert_eq!(env["healthy"], true);
    assert_eq!(env["history"][0]["state"], "rolled back");
}

#[test]
fn cancel_in_progress_cancels_older_tests_but_not_a_running_deploy() {
    let mut w = world();
    let log = w.log();
    let wf = format!(
        r#"
on: push
concurrency:
  group: pr-${{{{ github.ref }}}}
  cancel-in-progress: true
jobs:
  test:
    runs-on: self-hosted
    steps:
      - uses: actions/checkout@v4
      - run: sleep "$(cat pause.txt)"
  deploy:
    runs-on: self-hosted
    environment: preview
    steps:
      - uses: actions/checkout@v4
      - run: |
          echo "start $GITHUB_SHA" >> {log}
          sleep "$(cat pause.txt)"
          echo "end $GITHUB_SHA" >> {log}
"#,
        log = log.display()
    );
    w.remote.file(".kiln/workflows/pr.yml", &wf);
    w.remote.file("pause.txt", "3");
    let c1 = w.remote.push("c1");
    w.remote.file("pause.txt", "0");
    let c2 = w.remote.push("c2");
    w.register();
    let r1 = w.trigger_at(&c1);
    w.wait_job(&r1, "deploy", "the deploy to run", |j| {
        j["status"] == "running"
    });
    w.wait_job(&r1, "test", "the tests to run", |j| {
        j["status"] == "running"
    });
    let r2 = w.trigger_at(&c2);
    let run1 = w.finished(&r1);
    assert_eq!(w.job(&r1, "test")["status"], "cancelled", "{run1}");
    assert_eq!(w.job(&r1, "deploy")["status"], "success", "{run1}");
    assert_eq!(run1["status"], "cancelled");
    let why = run1["error"].as_str().unwrap_or_default();
    assert!(why.starts_with(&format!("cancelled by run {r2}")), "{run1}");
    assert_eq!(w.finished(&r2)["status"], "success");
    let lines = w.lines();
    assert_serial(&lines);
    assert_eq!(deployed(&lines), vec![c1, c2]);
}

#[test]
fn a_restarted_server_keeps_the_environment_held_by_the_running_deploy() {
    let mut w = world();
    let wf = deploy_workflow(&w.log(), "3", "", "");
    w.remote.file(".kiln/workflows/deploy.yml", &wf);
    let [c1, c2]: [String; 2] = w.start_deploys(2).try_into().unwrap();
    let r1 = w.trigger_at(&c1);
    w.wait_job(&r1, "deploy", "the deploy to run", |j| {
        j["status"] == "running"
    });
    let r2 = w.trigger_at(&c2);
    w.wait_job(&r2, "deploy", "the second deploy to wait", |j| {
        j["waiting"]["kind"] == "environment"
    });
    w.server.kill();
    w.server.restart();
    // The first deploy still holds production: the second keeps waiting.
    let j = w.job(&r2, "deploy");
    assert_eq!(j["waiting"]["kind"], "environment", "{j}");
    assert_eq!(w.job(&r1, "deploy")["status"], "running");
    assert_eq!(w.finished(&r1)["status"], "success");
    assert_eq!(w.finished(&r2)["status"], "success");
    let lines = w.lines();
    assert_serial(&lines);
    assert_eq!(deployed(&lines), vec![c1, c2.clone()]);
    assert_eq!(w.env()["commit"], c2.as_str());
}

#[test]
fn a_group_runs_every_waiting_run_in_order_and_a_waiting_run_can_be_cancelled() {
    let mut w = world();
    let log = w.log();
    let wf = format!(
        r#"
on: push
concurrency: ci-${{{{ github.ref }}}}
jobs:
  test:
    runs-on: self-hosted
    steps:
      - run: |
          echo "start $GITHUB_SHA" >> {log}
          sleep 1
          echo "end $GITHUB_SHA" >> {log}
"#,
        log = log.display()
    );
    w.remote.file(".kiln/workflows/ci.yml", &wf);
    let commits = w.start_deploys(4);
    let runs: Vec<String> = commits.iter().map(|c| w.trigger_at(c)).collect();
    let held = w.server.json(&["show", &runs[3]]);
    assert_eq!(held["waiting"]["kind"], "group", "{held}");
    w.server.kiln(&["cancel", &runs[3]]).code(0);
    let cancelled = w.finished(&runs[3]);
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(
        cancelled["jobs"].as_array().unwrap().is_empty(),
        "{cancelled}"
    );
    for r in &runs[..3] {
        assert_eq!(w.finished(r)["status"], "success");
    }
    let lines = w.lines();
    assert_serial(&lines);
    // Nothing waiting was dropped, and they ran in the order they came.
    assert_eq!(deployed(&lines), commits[..3].to_vec());
}
