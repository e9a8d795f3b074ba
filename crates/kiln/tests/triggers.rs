//! End-to-end tests of triggers: real `kiln server` processes, real bare
//! git remotes over file://, signed webhook deliveries over HTTP, and a
//! schedule across a server restart. Runs are only created here (no
//! agent is needed to see that a trigger started one).
//!
//! Comment commands, polled pull requests and the statuses of skipped
//! runs, against the fake forge, are in `forge_triggers.rs`.

mod support;

use serde_json::Value;

use std::time::{Duration, Instant};
use support::hooks::fixture;
use support::world::World;

const SECRET: &str = "kiln-test-secret";

fn world() -> World {
    World::builder()
        .prefix("kiln-triggers-")
        .trace_git()
        // The trigger module's decisions ("event already handled") are
        // debug lines: the tests wait on them.
        .env("KILN_LOG", "warn,kiln_engine::triggers=debug")
        .start()
}

/// Webhook deliveries and run lookups, beyond the shared harness.
trait Triggers {
    fn hook(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String);
    fn github_hook(&self, event: &str, delivery: &str, body: &[u8], secret: &str) -> (u16, String);
    fn show_run(&self, run: &Value) -> Value;
}

impl Triggers for World {
    /// POST a webhook body; (status, body).
    fn hook(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
        support::hooks::post(self.server.port, path, headers, body)
    }

    fn github_hook(&self, event: &str, delivery: &str, body: &[u8], secret: &str) -> (u16, String) {
        support::hooks::github(self.server.port, event, delivery, body, secret)
    }

    /// `kiln show` of a run listed by `kiln runs`.
    fn show_run(&self, run: &Value) -> Value {
        self.show(&run["id"].to_string())
    }
}

const ON_PUSH: &str =
    "on: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: echo hi\n";

#[test]
fn polling_picks_up_a_push_within_an_interval_and_registering_replays_nothing() {
    let w = world();
    w.remote.file(".kiln/workflows/ci.yml", ON_PUSH);
    w.remote.push("first");
    w.remote.file("a.txt", "a\n");
    w.remote.push("second");
    w.add_repo(&["--poll-interval", "1"]);
    // Several polls later, the history that existed at registration has
    // started nothing.
    w.wait_polls(2);
    assert_eq!(w.runs(), Vec::<Value>::new());

    w.remote.file("b.txt", "b\n");
    let sha = w.remote.push("third");
    let pushed = Instant::now();
    let runs = w.wait_runs("the polled push", |r| !r.is_empty());
    assert!(
        pushed.elapsed() < Duration::from_secs(5),
        "{:?}",
        pushed.elapsed()
    );
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["commit"], sha.as_str());
    assert_eq!(runs[0]["event"], "push");
    assert_eq!(runs[0]["git_ref"], "refs/heads/main");
    // Later polls of the same commit start nothing more.
    w.wait_polls(2);
    assert_eq!(w.runs().len(), 1);

    let repos = w.server.json(&["repo", "list"]);
    assert_eq!(repos[0]["triggers"]["poll_interval_secs"], 1);
    assert_eq!(repos[0]["triggers"]["webhook_secret_set"], false);
}

#[test]
fn a_path_filtered_workflow_is_recorded_skipped() {
    let w = world();
    w.remote.file(".kiln/workflows/ci.yml", ON_PUSH);
    w.remote.file(
        ".kiln/workflows/docs.yml",
        "on:\n  push:\n    paths: ['docs/**']\njobs:\n  docs:\n    runs-on: self-hosted\n    steps:\n      - run: echo docs\n",
    );
    w.remote.push("first");
    w.add_repo(&["--poll-interval", "1"]);
    w.remote.file("src/main.rs", "fn main() {}\n");
    let sha = w.remote.push("code only");
    // A run is created queued and started right after (its graph's first
    // step): wait for the started state, not only for the two rows.
    let runs = w.wait_runs("two runs, the ci one started", |r| {
        r.len() >= 2
            && r.iter()
                .any(|x| x["workflow_name"] == "ci" && x["status"] != "queued")
    });
    assert_eq!(runs.len(), 2, "{runs:?}");
    let docs = runs.iter().find(|r| r["workflow_name"] == "docs").unwrap();
    let ci = runs.iter().find(|r| r["workflow_name"] == "ci").unwrap();
    assert_eq!(docs["status"], "skipped");
    assert_eq!(docs["commit"], sha.as_str());
    assert_eq!(w.show_run(docs)["error"], "skipped: no matching changes");
    assert_eq!(ci["status"], "running", "started, waiting for an agent");

    w.remote.file("docs/guide.md", "# guide\n");
    w.remote.push("docs");
    // A run is created queued, then started: wait for it to leave queued.
    let runs = w.wait_runs("two more runs", |r| {
        r.len() >= 4
            && r.iter()
                .find(|r| r["workflow_name"] == "docs")
                .is_some_and(|d| d["status"] != "queued")
    });
    let docs_runs: Vec<_> = runs
        .iter()
        .filter(|r| r["workflow_name"] == "docs")
        .collect();
    assert_eq!(docs_runs[0]["status"], "running", "{runs:?}");
}

/// A body shaped like GitHub's recorded push (the fixture's own commits
/// are not in the test remote), for the commit just pushed.
fn push_body(before: &str, after: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture("github/push.json")).unwrap();
    v["ref"] = "refs/heads/main".into();
    v["before"] = before.into();
    v["after"] = after.into();
    v["created"] = false.into();
    v["deleted"] = false.into();
    v["forced"] = false.into();
    v["commits"] = Value::Array(vec![]);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn a_signed_webhook_starts_one_run_and_a_badly_signed_one_nothing() {
    let w = world();
    w.remote.file(".kiln/workflows/ci.yml", ON_PUSH);
    let first = w.remote.push("first");
    let secret = w.secret_file(SECRET);
    w.add_repo(&[
        "--poll-interval",
        "0",
        "--webhook-secret-file",
        secret.to_str().unwrap(),
    ]);
    let repos = w.server.json(&["repo", "list"]);
    assert_eq!(repos[0]["triggers"]["webhook_secret_set"], true);
    assert!(!repos.to_string().contains(SECRET), "{repos}");

    w.remote.file("x.txt", "x\n");
    let sha = w.remote.push("second");
    let body = push_body(&first, &sha);

    // Wrong secret, tampered body, no signature: 401, nothing recorded
    // (the same delivery id still works afterwards).
    let (status, _) = w.github_hook("push", "d-1", &body, "wrong");
    assert_eq!(status, 401);
    let (h, v) = kiln_forge::webhook::sign(kiln_forge::webhook::Forge::GitHub, &body, SECRET);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let (status, _) = w.hook(
        "/hooks/github?repo=app",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-GitHub-Delivery", "d-1".into()),
            (h, v),
        ],
        &tampered,
    );
    assert_eq!(status, 401);
    let (status, _) = w.hook(
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-GitHub-Delivery", "d-1".into()),
        ],
        &body,
    );
    assert_eq!(status, 401);
    // The server logs each refusal once it has decided.
    w.server.wait_output("webhook refused", 3);
    assert_eq!(w.runs(), Vec::<Value>::new());

    // Signed: answered at once, the run follows.
    let (status, answer) = w.github_hook("push", "d-1", &body, SECRET);
    assert_eq!(status, 202, "{answer}");
    let runs = w.wait_runs("the hook's run", |r| !r.is_empty());
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["commit"], sha.as_str());

    // The same delivery again, and the same push under a new delivery id
    // (as a poll would see it): nothing more.
    let (status, answer) = w.github_hook("push", "d-1", &body, SECRET);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"duplicate\":true"), "{answer}");
    let (status, _) = w.github_hook("push", "d-2", &body, SECRET);
    assert_eq!(status, 202);
    w.server.wait_output("event already handled", 1);
    assert_eq!(w.runs().len(), 1);

    // Without `?repo=`, the secret finds the repository.
    w.remote.file("y.txt", "y\n");
    let third = w.remote.push("third");
    let body = push_body(&sha, &third);
    let (h, v) = kiln_forge::webhook::sign(kiln_forge::webhook::Forge::GitHub, &body, SECRET);
    let (status, answer) = w.hook(
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-GitHub-Delivery", "d-3".into()),
            (h, v),
        ],
        &body,
    );
    assert_eq!(status, 202, "{answer}");
    w.wait_runs("the second hook's run", |r| r.len() == 2);

    // The recorded bodies as they are: a ping is answered; the recorded
    // push verifies and is accepted, but its commit is not in this remote,
    // so it starts nothing.
    let (status, _) = w.github_hook("ping", "p-1", &fixture("github/ping.json"), SECRET);
    assert_eq!(status, 200);
    let (status, _) = w.github_hook("push", "r-1", &fixture("github/push.json"), SECRET);
    assert_eq!(status, 202);
    // (It deletes a tag: the server says it starts nothing.)
    w.server.wait_output("event starts nothing: deleted", 1);
    assert_eq!(w.runs().len(), 2);

    // Too large: 413.
    let big = vec![b' '; 2 * 1024 * 1024];
    let (status, _) = w.github_hook("push", "big", &big, SECRET);
    assert_eq!(status, 413);
}

#[test]
fn a_schedule_fires_once_after_downtime() {
    let mut w = world();
    w.remote.file(
        ".kiln/workflows/nightly.yml",
        "on:\n  schedule:\n    - cron: '0 3 * * *'\njobs:\n  n:\n    runs-on: self-hosted\n    steps:\n      - run: echo night\n",
    );
    let sha = w.remote.push("first");
    w.add_repo(&["--poll-interval", "0"]);
    let db = w.server.data.join("kiln.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    use kiln_store::{RepoStore, TriggerStore};
    let file = ".kiln/workflows/nightly.yml";
    // Wait until the server has stored the schedule's next fire.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (repo, stored) = loop {
        let found = rt.block_on(async {
            let store = kiln_store::SqliteStore::open(&db).await.unwrap();
            let repo = store.repo_by_name("app").await.unwrap().unwrap();
            let s = store.schedule(repo.id, file, 0).await.unwrap();
            store.close().await;
            s.map(|s| (repo, s))
        });
        if let Some(f) = found {
            break f;
        }
        assert!(Instant::now() < deadline, "the schedule was never stored");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(stored.next_fire > jiff::Timestamp::now());
    assert_eq!(w.runs(), Vec::<Value>::new());

    // The server is down across three days of slots.
    w.server.kill();
    rt.block_on(async {
        let store = kiln_store::SqliteStore::open(&db).await.unwrap();
        let past = kiln_store::types::ScheduleState {
            cron: stored.cron.clone(),
            next_fire: jiff::Timestamp::now() - jiff::SignedDuration::from_hours(72),
        };
        assert!(
            store
                .advance_schedule(repo.id, file, 0, Some(stored.next_fire), &past)
                .await
                .unwrap()
        );
        store.close().await;
    });
    w.server.restart();
    let runs = w.wait_runs("the missed schedule", |r| !r.is_empty());
    // The poller moves the stored fire time before it starts a fire's
    // run: once it is in the future again, every fire is done.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let next = rt.block_on(async {
            let store = kiln_store::SqliteStore::open(&db).await.unwrap();
            let s = store.schedule(repo.id, file, 0).await.unwrap();
            store.close().await;
            s.map(|s| s.next_fire)
        });
        if next.is_some_and(|n| n > jiff::Timestamp::now()) {
            break;
        }
        assert!(Instant::now() < deadline, "the schedule never caught up");
        std::thread::sleep(Duration::from_millis(200));
    }
    let runs_after = w.runs();
    assert_eq!(runs_after.len(), 1, "{runs_after:?}");
    assert_eq!(runs[0]["event"], "schedule");
    assert_eq!(runs[0]["commit"], sha.as_str());
    assert_eq!(runs[0]["git_ref"], "refs/heads/main");
}

/// A body shaped like GitHub's recorded `pull_request.opened`, for pull
/// request `number` with head `sha` on `base`; `fork` names another
/// repository as the head's.
fn pull_request_body(number: u64, sha: &str, fork: bool) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture("github/pull_request-opened.json")).unwrap();
    v["number"] = number.into();
    v["pull_request"]["number"] = number.into();
    v["pull_request"]["head"]["sha"] = sha.into();
    v["pull_request"]["base"]["ref"] = "main".into();
    if fork {
        v["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World".into();
    }
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn a_forks_pull_request_waits_and_a_branch_pull_request_runs() {
    let w = world();
    w.remote.file(
        ".kiln/workflows/pr.yml",
        "on:\n  pull_request:\n    branches: [main]\njobs:\n  t:\n    runs-on: self-hosted\n    steps:\n      - run: echo pr\n",
    );
    w.remote.push("first");
    let secret = w.secret_file(SECRET);
    w.add_repo(&[
        "--poll-interval",
        "0",
        "--webhook-secret-file",
        secret.to_str().unwrap(),
    ]);
    // The pull request heads exist only under refs/pull/N/head, as a
    // forge keeps a fork's commits: kiln must fetch them from there.
    let work = w.remote.work();
    support::cluster::git(&work, &["checkout", "-q", "-b", "feature"]);
    w.remote.file("f.txt", "fork\n");
    support::cluster::git(&work, &["add", "-A"]);
    support::cluster::git(&work, &["commit", "-q", "-m", "fork change"]);
    let fork_sha = support::cluster::git(&work, &["rev-parse", "HEAD"]);
    support::cluster::git(&work, &["push", "-q", "origin", "HEAD:refs/pull/7/head"]);
    w.remote.file("g.txt", "branch\n");
    support::cluster::git(&work, &["add", "-A"]);
    support::cluster::git(&work, &["commit", "-q", "-m", "branch change"]);
    let branch_sha = support::cluster::git(&work, &["rev-parse", "HEAD"]);
    support::cluster::git(&work, &["push", "-q", "origin", "HEAD:refs/pull/8/head"]);

    let (status, answer) = w.github_hook(
        "pull_request",
        "pr-7",
        &pull_request_body(7, &fork_sha, true),
        SECRET,
    );
    assert_eq!(status, 202, "{answer}");
    let runs = w.wait_runs("the fork's run", |r| !r.is_empty());
    assert_eq!(runs[0]["commit"], fork_sha.as_str());
    assert_eq!(runs[0]["event"], "pull_request");
    let fork_run = runs[0].clone();
    let held = w.show_run(&fork_run);
    assert_eq!(held["status"], "queued", "held, not started: {held}");
    assert_eq!(held["jobs"], Value::Array(vec![]), "{held}");
    assert_eq!(held["waiting"]["kind"], "fork-approval", "{held}");

    let (status, _) = w.github_hook(
        "pull_request",
        "pr-8",
        &pull_request_body(8, &branch_sha, false),
        SECRET,
    );
    assert_eq!(status, 202);
    // A run is created queued, then started: wait for it to leave queued.
    let runs = w.wait_runs("the branch's run, started", |r| {
        r.len() == 2
            && r.iter()
                .any(|x| x["commit"] == branch_sha.as_str() && x["status"] != "queued")
    });
    let started = runs
        .iter()
        .find(|r| r["commit"] == branch_sha.as_str())
        .unwrap();
    assert_eq!(started["status"], "running", "{runs:?}");
    assert_eq!(started["git_ref"], "refs/pull/8/head");
    // The branch's run, which came later, has started: the fork's is
    // still held.
    let held = w.show_run(&fork_run);
    assert_eq!(held["status"], "queued", "held, not started: {held}");
    assert_eq!(held["jobs"], Value::Array(vec![]), "{held}");
    assert_eq!(held["waiting"]["kind"], "fork-approval", "{held}");

    // Restarting does not start the held run.
    let mut w = w;
    // The server recovers its runs before it listens, and `restart`
    // returns once it listens: whatever recovery did is done.
    w.server.restart();
    let held = w.show_run(
        &runs
            .iter()
            .find(|r| r["commit"] == fork_sha.as_str())
            .unwrap()
            .clone(),
    );
    assert_eq!(held["jobs"], Value::Array(vec![]), "{held}");

    // A maintainer's approval starts it.
    let id = held["id"].to_string();
    w.server.kiln(&["approve", &id]).code(0);
    let approved = w.show_run(&held);
    assert_eq!(approved["status"], "running", "{approved}");
    assert!(approved["waiting"].is_null(), "{approved}");
    assert!(
        !approved["jobs"].as_array().unwrap().is_empty(),
        "{approved}"
    );
    // Approving again is refused: it is not held any more.
    w.server.kiln(&["approve", &id]).code(2);
}
