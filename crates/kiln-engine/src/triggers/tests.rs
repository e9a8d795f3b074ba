//! The engine's trigger paths against a real bare git remote, the real
//! SQLite store (in memory) and a small in-test forge that records what
//! kiln sends it.

use super::*;
use crate::engine::EngineConfig;
use crate::forge::{ForgeDirectory, RepoForge};
use crate::git::Mirrors;
use kiln_forge::api::{
    ApiResult, CommentInfo, CommitStatus, ForgeApi, Permission, PullRequestInfo,
};
use kiln_store::types::TriggerSettings;
use kiln_store::{RepoStore, SqliteStore};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Remote {
    dir: tempfile::TempDir,
}

impl Remote {
    fn new() -> Remote {
        let dir = tempfile::tempdir().expect("tempdir");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        git(dir.path(), &["init", "-q", "-b", "main", "work"]);
        let r = Remote { dir };
        git(&r.work(), &["config", "user.email", "t@kiln.invalid"]);
        git(&r.work(), &["config", "user.name", "t"]);
        git(&r.work(), &["remote", "add", "origin", &r.url()]);
        r
    }
    fn work(&self) -> std::path::PathBuf {
        self.dir.path().join("work")
    }
    fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("remote.git").display())
    }
    fn file(&self, rel: &str, text: &str) {
        let p = self.work().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    /// Commit everything and push to `branch`.
    fn push(&self, branch: &str) -> String {
        git(&self.work(), &["add", "-A"]);
        git(&self.work(), &["commit", "-q", "--allow-empty", "-m", "c"]);
        git(
            &self.work(),
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
        );
        git(&self.work(), &["rev-parse", "HEAD"])
    }
}

/// A forge in memory: who may write, one pull request, the comments kiln
/// posts.
#[derive(Default)]
struct FakeForge {
    head: Mutex<String>,
    fork: Mutex<bool>,
    comments: Mutex<Vec<(u64, String)>>,
}

#[async_trait::async_trait]
impl ForgeApi for FakeForge {
    fn name(&self) -> &str {
        "fake"
    }
    async fn permission(&self, _repo: &str, user: &str) -> ApiResult<Permission> {
        Ok(match user {
            "alice" => Permission::Write,
            "root" => Permission::Admin,
            _ => Permission::Read,
        })
    }
    async fn set_status(&self, _: &str, _: &str, _: &CommitStatus) -> ApiResult<()> {
        Ok(())
    }
    async fn create_comment(&self, _repo: &str, pr: u64, body: &str) -> ApiResult<u64> {
        let mut c = self.comments.lock().expect("lock");
        c.push((pr, body.to_owned()));
        Ok(c.len() as u64)
    }
    async fn edit_comment(&self, _: &str, _: u64, _: u64, _: &str) -> ApiResult<()> {
        Ok(())
    }
    async fn open_pull_requests(&self, repo: &str) -> ApiResult<Vec<PullRequestInfo>> {
        Ok(vec![self.pull_request(repo, 7).await?])
    }
    async fn pull_request(&self, _repo: &str, number: u64) -> ApiResult<PullRequestInfo> {
        Ok(PullRequestInfo {
            number,
            head_sha: self.head.lock().expect("lock").clone(),
            head_ref: "feature".into(),
            base_ref: "main".into(),
            head_repo_is_fork: *self.fork.lock().expect("lock"),
            author: "bob".into(),
        })
    }
    async fn comments_after(&self, _: &str, _: u64, _: u64) -> ApiResult<Vec<CommentInfo>> {
        Ok(vec![])
    }
}

struct Directory(Arc<FakeForge>);

#[async_trait::async_trait]
impl ForgeDirectory for Directory {
    async fn forge(&self, _repo: kiln_model::RepoId) -> Option<RepoForge> {
        Some(RepoForge {
            api: self.0.clone(),
            full_name: "octo/app".into(),
        })
    }
}

const WORKFLOW: &str = r#"
on:
  pull_request:
    branches: [main]
  comment:
    command: "!testme"
jobs:
  unit:
    runs-on: self-hosted
    steps:
      - run: echo unit
  extra:
    if: kiln.flags.extra
    runs-on: self-hosted
    steps:
      - run: echo extra
"#;

struct World {
    engine: Arc<Engine>,
    forge: Arc<FakeForge>,
    remote: Remote,
    repo: RepoRecord,
    _tmp: tempfile::TempDir,
}

async fn world() -> World {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open_in_memory().await.expect("store"));
    let remote = Remote::new();
    remote.file(".kiln/workflows/ci.yml", WORKFLOW);
    remote.push("main");
    let repo = store
        .add_repo("app", &remote.url(), Timestamp::now())
        .await
        .expect("add repo");
    let mut engine = Engine::new(
        store,
        Mirrors::new(tmp.path().join("mirrors")),
        EngineConfig {
            label_aliases: Vec::new(),
            lease: Duration::from_secs(10),
            heartbeat: Duration::from_secs(2),
            max_attempts: 3,
            max_claim_wait: Duration::from_secs(1),
            workflows_dir: ".kiln/workflows".into(),
            time_zone: jiff::tz::TimeZone::UTC,
            hook_body_limit: 1 << 20,
        },
    );
    let forge = Arc::new(FakeForge::default());
    Arc::get_mut(&mut engine).expect("unique").forges = Arc::new(Directory(forge.clone()));
    World {
        engine,
        forge,
        remote,
        repo,
        _tmp: tmp,
    }
}

impl World {
    /// A commit on branch `feature`, as the pull request's head.
    fn pr_head(&self, fork: bool) -> String {
        self.remote.file("feature.txt", "f\n");
        let sha = self.remote.push("feature");
        *self.forge.head.lock().expect("lock") = sha.clone();
        *self.forge.fork.lock().expect("lock") = fork;
        sha
    }

    fn comment(&self, id: u64, author: &str, body: &str) -> TriggerEvent {
        TriggerEvent::Comment(CommentEvent {
            pr: 7,
            comment_id: id,
            author: author.into(),
            body: body.into(),
            head_sha: None,
        })
    }

    fn replies(&self) -> Vec<String> {
        self.forge
            .comments
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

#[tokio::test]
async fn a_writers_command_starts_the_workflow_with_its_flags() {
    let w = world().await;
    let head = w.pr_head(false);
    let out = w
        .engine
        .on_event(&w.repo, w.comment(1, "alice", "!testme --extra\nplease"))
        .await
        .expect("event");
    assert_eq!(out.started.len(), 1, "{out:?}");
    let run = w.engine.store.run(out.started[0]).await.expect("run");
    assert_eq!(run.event, "comment");
    assert_eq!(run.commit, head);
    assert_eq!(run.contexts.pull_request, Some(7));
    assert!(!run.contexts.from_fork);
    assert_eq!(
        run.contexts
            .kiln
            .get_ci("flags")
            .and_then(|f| f.get_ci("extra")),
        Some(&Value::Bool(true))
    );
    let event = run.contexts.github.get_ci("event").expect("github.event");
    assert_eq!(
        event.get_ci("comment").and_then(|c| c.get_ci("id")),
        Some(&Value::Number(1.0))
    );
    assert_eq!(
        run.contexts.github.get_ci("head_ref"),
        Some(&Value::str("feature"))
    );
    let jobs = w.engine.store.instances(run.id).await.expect("instances");
    let extra = jobs
        .iter()
        .find(|j| j.job_key == "extra")
        .expect("extra job");
    assert_eq!(extra.status, JobStatus::Queued);
    assert!(w.replies().is_empty());

    // The same comment reported again (a poll after the webhook): nothing.
    let again = w
        .engine
        .on_event(&w.repo, w.comment(1, "alice", "!testme --extra"))
        .await
        .expect("event");
    assert!(again.duplicate);
}

#[tokio::test]
async fn an_outsiders_command_starts_nothing_and_is_answered() {
    let w = world().await;
    w.pr_head(false);
    let out = w
        .engine
        .on_event(&w.repo, w.comment(2, "mallory", "!testme"))
        .await
        .expect("event");
    assert!(out.started.is_empty(), "{out:?}");
    let replies = w.replies();
    assert_eq!(replies.len(), 1);
    assert!(replies[0].contains("@mallory"), "{replies:?}");
    assert!(replies[0].contains("no write access"), "{replies:?}");

    // Replies can be turned off; an allowlist decides over the forge.
    w.engine
        .store
        .set_trigger_settings(
            w.repo.id,
            &TriggerSettings {
                command_allowlist: vec!["Mallory".into()],
                reply_to_outsiders: false,
                ..TriggerSettings::default()
            },
        )
        .await
        .expect("settings");
    let out = w
        .engine
        .on_event(&w.repo, w.comment(3, "alice", "!testme"))
        .await
        .expect("event");
    assert!(out.started.is_empty());
    assert_eq!(w.replies().len(), 1, "no reply when turned off");
    let out = w
        .engine
        .on_event(&w.repo, w.comment(4, "mallory", "!testme"))
        .await
        .expect("event");
    assert_eq!(out.started.len(), 1);
}

#[tokio::test]
async fn unknown_flags_are_answered_and_near_misses_ignored() {
    let w = world().await;
    w.pr_head(false);
    let out = w
        .engine
        .on_event(&w.repo, w.comment(5, "alice", "!testme --bogus"))
        .await
        .expect("event");
    assert!(out.started.is_empty());
    let replies = w.replies();
    assert_eq!(replies.len(), 1);
    assert!(replies[0].contains("unknown flag `--bogus`"), "{replies:?}");
    assert!(
        replies[0].contains("extra"),
        "the known flags are listed: {replies:?}"
    );

    for (id, body) in [(6, "!testmexyz"), (7, "looks good"), (8, "> !testme")] {
        let out = w
            .engine
            .on_event(&w.repo, w.comment(id, "alice", body))
            .await
            .expect("event");
        assert!(
            out.started.is_empty() && out.replies.is_empty(),
            "{body}: {out:?}"
        );
    }
    assert_eq!(w.replies().len(), 1);
}

fn pull_request(head: &str, fork: bool, action: PrAction) -> TriggerEvent {
    TriggerEvent::PullRequest(PullRequestEvent {
        action,
        number: 7,
        head_sha: head.into(),
        head_ref: "feature".into(),
        base_ref: "main".into(),
        from_fork: fork,
        author: "bob".into(),
    })
}

#[tokio::test]
async fn a_forks_pull_request_waits_for_approval() {
    let w = world().await;
    let head = w.pr_head(true);
    let out = w
        .engine
        .on_event(&w.repo, pull_request(&head, true, PrAction::Opened))
        .await
        .expect("event");
    assert!(out.started.is_empty(), "{out:?}");
    assert_eq!(out.held.len(), 1);
    let run = out.held[0];
    assert_eq!(
        w.engine.store.run_hold(run).await.expect("hold").as_deref(),
        Some(decide::HELD_FOR_FORK)
    );
    let rec = w.engine.store.run(run).await.expect("run");
    assert!(rec.contexts.from_fork);
    assert_eq!(rec.contexts.pull_request, Some(7));
    // A restart does not start it.
    w.engine.recover().await.expect("recover");
    assert!(
        w.engine
            .store
            .instances(run)
            .await
            .expect("instances")
            .is_empty()
    );
    assert!(w.engine.release_run(run).await.expect("release"));
    assert!(!w.engine.release_run(run).await.expect("release again"));
    assert!(
        !w.engine
            .store
            .instances(run)
            .await
            .expect("instances")
            .is_empty()
    );
    assert_eq!(
        w.engine.store.run(run).await.expect("run").status,
        JobStatus::Running
    );
}

#[tokio::test]
async fn pull_requests_start_closed_ones_do_not_and_forks_may_run_when_allowed() {
    let w = world().await;
    let head = w.pr_head(false);
    let closed = w
        .engine
        .on_event(&w.repo, pull_request(&head, false, PrAction::Closed))
        .await
        .expect("event");
    assert!(closed.started.is_empty() && closed.held.is_empty());
    let out = w
        .engine
        .on_event(&w.repo, pull_request(&head, false, PrAction::Synchronize))
        .await
        .expect("event");
    assert_eq!(out.started.len(), 1);
    let rec = w.engine.store.run(out.started[0]).await.expect("run");
    assert_eq!(rec.event, "pull_request");
    assert_eq!(rec.commit, head);
    assert_eq!(rec.git_ref.as_deref(), Some("refs/pull/7/head"));

    w.engine
        .store
        .set_trigger_settings(
            w.repo.id,
            &TriggerSettings {
                fork_approval: false,
                ..TriggerSettings::default()
            },
        )
        .await
        .expect("settings");
    let fork_head = w.pr_head(true);
    let out = w
        .engine
        .on_event(
            &w.repo,
            pull_request(&fork_head, true, PrAction::Synchronize),
        )
        .await
        .expect("event");
    assert_eq!(out.started.len(), 1, "{out:?}");
}

#[tokio::test]
async fn a_deleted_ref_starts_nothing_and_a_failed_event_can_be_retried() {
    let w = world().await;
    let out = w
        .engine
        .on_event(
            &w.repo,
            TriggerEvent::Push(PushEvent {
                git_ref: "refs/heads/gone".into(),
                before: Some("a".repeat(40)),
                after: "0".repeat(40),
                deleted: true,
                changed_files: None,
                pusher: "bob".into(),
            }),
        )
        .await
        .expect("event");
    assert!(out.started.is_empty());
    // A commit the remote does not have: an error, and the key is free
    // again for a later report.
    let missing = TriggerEvent::Push(PushEvent {
        git_ref: "refs/heads/main".into(),
        before: None,
        after: "b".repeat(40),
        deleted: false,
        changed_files: None,
        pusher: "bob".into(),
    });
    assert!(w.engine.on_event(&w.repo, missing.clone()).await.is_err());
    assert!(
        w.engine
            .store
            .claim_event(w.repo.id, &missing.key(), Timestamp::now())
            .await
            .expect("claim")
    );
}

/// A pull request reported eight times at once (webhooks and polls racing)
/// starts its run once: the event's claim and its runs are one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_reported_concurrently_starts_its_runs_once() {
    let w = world().await;
    let head = w.pr_head(false);
    let event = pull_request(&head, false, PrAction::Opened);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let engine = w.engine.clone();
            let repo = w.repo.clone();
            let event = event.clone();
            tokio::spawn(async move { engine.on_event(&repo, event).await.expect("event") })
        })
        .collect();
    let mut started = Vec::new();
    let mut duplicates = 0;
    for task in tasks {
        let out = task.await.expect("task");
        started.extend(out.started);
        duplicates += usize::from(out.duplicate);
    }
    assert_eq!(started.len(), 1, "one run started: {started:?}");
    assert_eq!(duplicates, 7);
    let runs = w
        .engine
        .store
        .runs(Some(w.repo.id), 100)
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1, "and one run exists");
}
