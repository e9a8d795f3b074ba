//! End-to-end: triggers of a repository registered with a forge (the fake
//! GitHub of `support::fake_forge`). A writer's `!testme --extra` on a pull
//! request, delivered by a signed webhook or found by polling, runs the
//! workflow on the pull request's head with the flag set; an outsider's
//! starts nothing and is answered; a pull request run gets one progress
//! comment, edited to the result; polled pull requests run when opened
//! and when their head moves; a path-filtered workflow that a push
//! does not concern reports success "skipped: no matching changes".

mod support;

use serde_json::Value;
use support::cluster::{Agent, git};
use support::fake_forge::{FakeForge, FakePull};
use support::hooks::fixture;
use support::world::{World, job};

const TOKEN: &str = "ghp_e2eTRIGGERtoken0123456789";
const SECRET: &str = "kiln-test-secret";

/// A comment-triggered workflow whose `extra` job runs only with the flag.
const TESTME: &str = "name: ci
on:
  comment:
    command: '!testme'
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: echo built
  extra:
    if: kiln.flags.extra
    runs-on: self-hosted
    steps:
      - run: echo extra
";

/// A world with the fake GitHub beside it.
struct ForgeWorld {
    w: World,
    forge: FakeForge,
}

impl std::ops::Deref for ForgeWorld {
    type Target = World;
    fn deref(&self) -> &World {
        &self.w
    }
}

fn world() -> ForgeWorld {
    ForgeWorld {
        w: World::builder().prefix("kiln-forge-triggers-").start(),
        forge: FakeForge::start(TOKEN),
    }
}

impl ForgeWorld {
    /// `kiln repo add app URL --forge github … EXTRA...`
    fn add_repo(&self, extra: &[&str]) {
        let token = self.scratch("forge.token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let forge_url = self.forge.url();
        let mut args = vec![
            "--forge",
            "github",
            "--forge-url",
            forge_url.as_str(),
            "--forge-repo",
            "octo/app",
            "--forge-token-file",
            token.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.w.add_repo(&args);
    }

    fn agent(&self) -> Agent {
        self.w.agent("a1", "", 2)
    }

    /// How many times the forge was asked for the open pull requests.
    fn pull_listings(&self) -> usize {
        self.forge
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/pulls"))
            .count()
    }

    /// Wait until `n` whole polls of the forge happened after this call.
    /// The poller is one loop: it lists the pull requests, acts on what
    /// changed, then lists again, so once `n + 1` listings have come, `n`
    /// polls have done whatever they were going to do.
    fn wait_polls(&self, n: usize) {
        let want = self.pull_listings() + n + 1;
        self.forge.wait(&format!("{n} polls of the forge"), |_| {
            self.pull_listings() >= want
        });
    }

    /// A commit on branch `feature`, also pushed as `refs/pull/N/head`
    /// the way a forge keeps a pull request's head; the work tree goes
    /// back to main. Returns the commit.
    fn pull_request_head(&self, number: u64) -> String {
        let work = self.remote.work();
        git(&work, &["checkout", "-q", "-b", "feature"]);
        self.remote.file("feature.txt", "feature\n");
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "feature change"]);
        let sha = git(&work, &["rev-parse", "HEAD"]);
        git(&work, &["push", "-q", "origin", "feature"]);
        git(
            &work,
            &[
                "push",
                "-q",
                "origin",
                &format!("HEAD:refs/pull/{number}/head"),
            ],
        );
        git(&work, &["checkout", "-q", "main"]);
        sha
    }
}

/// GitHub's recorded `issue_comment.created`, made a comment on pull
/// request `pr` of octo/app.
fn comment_body(pr: u64, comment_id: u64, author: &str, body: &str) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&fixture("github/issue_comment-created.json")).unwrap();
    v["issue"]["number"] = pr.into();
    v["issue"]["pull_request"] = serde_json::json!({
        "url": format!("https://api.github.com/repos/octo/app/pulls/{pr}"),
    });
    v["comment"]["id"] = comment_id.into();
    v["comment"]["body"] = body.into();
    v["comment"]["user"]["login"] = author.into();
    v["sender"]["login"] = author.into();
    v["repository"]["full_name"] = "octo/app".into();
    v["repository"]["name"] = "app".into();
    v["repository"]["owner"]["login"] = "octo".into();
    serde_json::to_vec(&v).unwrap()
}

/// A writer's `!testme --extra` by webhook runs both jobs on the pull
/// request's head, and the run's progress comment is created, then edited
/// to the result; an outsider's, by webhook too, starts nothing and is
/// answered on the pull request.
#[test]
fn a_writers_testme_webhook_runs_the_extra_job_and_an_outsider_gets_a_reply() {
    let w = world();
    w.remote.file(".kiln/workflows/ci.yml", TESTME);
    w.remote.push("first");
    let head = w.pull_request_head(7);
    w.forge.set_permission("octo/app", "alice", "write");
    w.forge.set_permission("octo/app", "mallory", "read");
    w.forge
        .add_pull_request("octo/app", FakePull::new(7, &head, "feature", "alice"));
    let secret = w.secret_file(SECRET);
    w.add_repo(&[
        "--poll-interval",
        "0",
        "--webhook-secret-file",
        secret.to_str().unwrap(),
    ]);
    let _agent = w.agent();

    // The outsider first: nothing starts, a reply says why.
    let id = w
        .forge
        .add_comment("octo/app", 7, "mallory", "!testme --extra");
    let (status, answer) = support::hooks::github(
        w.server.port,
        "issue_comment",
        "c-1",
        &comment_body(7, id, "mallory", "!testme --extra"),
        SECRET,
    );
    assert_eq!(status, 202, "{answer}");
    w.forge.wait("the reply to the outsider", |f| {
        f.comments("octo/app", 7)
            .iter()
            .any(|c| c.author == "kiln-bot")
    });
    let replies: Vec<_> = w
        .forge
        .comments("octo/app", 7)
        .into_iter()
        .filter(|c| c.author == "kiln-bot")
        .collect();
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert_eq!(
        replies[0].body,
        "@mallory `!testme` was not run: `mallory` has no write access to the repository."
    );
    // The reply is written once kiln decided not to run: nothing started.
    assert_eq!(w.runs(), Vec::<Value>::new());

    // The writer: one run on the head, with the extra job.
    let id = w
        .forge
        .add_comment("octo/app", 7, "alice", "!testme --extra");
    let (status, answer) = support::hooks::github(
        w.server.port,
        "issue_comment",
        "c-2",
        &comment_body(7, id, "alice", "!testme --extra"),
        SECRET,
    );
    assert_eq!(status, 202, "{answer}");
    let runs = w.wait_runs("the writer's run", |r| !r.is_empty());
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["commit"], head.as_str());
    assert_eq!(runs[0]["event"], "comment");
    assert_eq!(runs[0]["git_ref"], "refs/pull/7/head");
    let run = runs[0]["id"].to_string();
    let done = w.finished(&run);
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(job(&done, "build")["status"], "success", "{done}");
    assert_eq!(job(&done, "extra")["status"], "success", "{done}");

    // The progress comment: created while the run went, edited to the
    // result, one comment for the run.
    w.forge.wait("the progress comment's result", |f| {
        f.comments("octo/app", 7)
            .iter()
            .any(|c| c.author == "kiln-bot" && c.body.contains("success"))
    });
    let progress: Vec<_> = w
        .forge
        .comments("octo/app", 7)
        .into_iter()
        .filter(|c| c.author == "kiln-bot" && c.body.contains("**kiln**"))
        .collect();
    assert_eq!(progress.len(), 1, "{progress:#?}");
    let progress = &progress[0];
    assert!(
        progress
            .body
            .starts_with(&format!("<!-- kiln run {run} -->"))
            && progress.body.contains("`ci` success"),
        "{progress:#?}"
    );
    assert!(!progress.history.is_empty(), "never edited: {progress:#?}");
    assert!(
        !progress.history[0].contains("`ci` success"),
        "created with the result already: {progress:#?}"
    );
    // And the head got its statuses.
    w.forge.wait("the head's success status", |f| {
        f.statuses_for(&head)
            .iter()
            .any(|s| s.state == "success" && s.context == "kiln/ci")
    });

    // The same delivery again starts nothing more.
    // A duplicate is answered as one, before anything is queued.
    let (status, answer) = support::hooks::github(
        w.server.port,
        "issue_comment",
        "c-2",
        &comment_body(7, id, "alice", "!testme --extra"),
        SECRET,
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"duplicate\":true"), "{answer}");
    assert_eq!(w.runs().len(), 1);
}

/// Comments added on the forge after registration are found by polling:
/// a writer's plain `!testme` runs without the extra job, a later
/// `!testme --extra` with it; an unknown user's starts nothing and is
/// answered, as is a misspelt flag; comments that existed at
/// registration start nothing.
#[test]
fn polled_comments_run_for_a_writer_and_are_answered_for_an_outsider() {
    let w = world();
    w.remote.file(".kiln/workflows/ci.yml", TESTME);
    w.remote.push("first");
    let head = w.pull_request_head(8);
    w.forge.set_permission("octo/app", "alice", "admin");
    w.forge
        .add_pull_request("octo/app", FakePull::new(8, &head, "feature", "alice"));
    // Already there at registration: the baseline, never run.
    w.forge
        .add_comment("octo/app", 8, "alice", "!testme --extra");
    w.add_repo(&["--poll-interval", "1"]);
    let _agent = w.agent();
    w.wait_polls(2);
    assert_eq!(w.runs(), Vec::<Value>::new());

    // An unknown user (the forge answers 404): refused, answered.
    w.forge.add_comment("octo/app", 8, "stranger", "!testme");
    w.forge.wait("the reply to the stranger", |f| {
        f.comments("octo/app", 8)
            .iter()
            .any(|c| c.author == "kiln-bot" && c.body.starts_with("@stranger"))
    });
    assert!(
        w.forge
            .comments("octo/app", 8)
            .iter()
            .any(|c| c.body
                == "@stranger `!testme` was not run: `stranger` has no write access to the repository."),
        "{:#?}",
        w.forge.comments("octo/app", 8)
    );
    assert_eq!(w.runs(), Vec::<Value>::new());

    // A writer's misspelt flag: answered with the parser's message, and
    // nothing starts (nor is permission needed to say so).
    w.forge
        .add_comment("octo/app", 8, "alice", "!testme --extar");
    w.forge.wait("the answer to the misspelt flag", |f| {
        f.comments("octo/app", 8)
            .iter()
            .any(|c| c.author == "kiln-bot" && c.body.starts_with("@alice"))
    });
    assert!(
        w.forge
            .comments("octo/app", 8)
            .iter()
            .any(|c| c.body == "@alice unknown flag `--extar`; !testme takes `--extra`"),
        "{:#?}",
        w.forge.comments("octo/app", 8)
    );
    assert_eq!(w.runs(), Vec::<Value>::new());

    // The writer, without the flag, then with it.
    w.forge.add_comment("octo/app", 8, "alice", "!testme");
    let runs = w.wait_runs("the polled command's run", |r| !r.is_empty());
    assert_eq!(runs[0]["commit"], head.as_str());
    assert_eq!(runs[0]["event"], "comment");
    let plain = w.finished(&runs[0]["id"].to_string());
    assert_eq!(plain["status"], "success", "{plain}");
    assert_eq!(job(&plain, "build")["status"], "success", "{plain}");
    assert_eq!(job(&plain, "extra")["status"], "skipped", "{plain}");

    w.forge
        .add_comment("octo/app", 8, "alice", "!testme --extra");
    let runs = w.wait_runs("the second command's run", |r| r.len() >= 2);
    let newest = runs
        .iter()
        .find(|r| r["id"] != plain["id"])
        .unwrap()
        .clone();
    assert_eq!(newest["commit"], head.as_str());
    let extra = w.finished(&newest["id"].to_string());
    assert_eq!(extra["status"], "success", "{extra}");
    assert_eq!(job(&extra, "extra")["status"], "success", "{extra}");

    // Later polls start nothing more (kiln's own comments included).
    w.wait_polls(2);
    assert_eq!(w.runs().len(), 2, "{:?}", w.runs());
}

/// A push that touches none of a workflow's paths: its skipped run reports
/// success "skipped: no matching changes" under `kiln/<workflow>`.
#[test]
fn a_path_filtered_skip_reports_success_to_the_forge() {
    let w = world();
    w.remote.file(
        ".kiln/workflows/docs.yml",
        "name: docs\non:\n  push:\n    paths: ['docs/**']\njobs:\n  docs:\n    runs-on: self-hosted\n    steps:\n      - run: echo docs\n",
    );
    w.remote.push("first");
    w.add_repo(&["--poll-interval", "1"]);
    w.remote.file("src/main.rs", "fn main() {}\n");
    let sha = w.remote.push("code only");
    let runs = w.wait_runs("the skipped run", |r| !r.is_empty());
    assert_eq!(runs[0]["status"], "skipped", "{runs:?}");
    w.forge.wait("the skipped run's status", |f| {
        !f.statuses_for(&sha).is_empty()
    });
    let posted = w.forge.statuses_for(&sha);
    let last = posted.last().unwrap();
    assert_eq!(last.state, "success", "{posted:#?}");
    assert_eq!(last.context, "kiln/docs");
    assert_eq!(last.description, "skipped: no matching changes");
    assert_eq!(last.repo, "octo/app");
}

/// A pull request opened on the forge after registration is found by
/// polling and runs on its head (with its progress comment); a new head
/// runs again; an unchanged one does not.
#[test]
fn polled_pull_requests_run_when_opened_and_when_their_head_moves() {
    let w = world();
    w.remote.file(
        ".kiln/workflows/pr.yml",
        "name: pr\non:\n  pull_request:\n    branches: [main]\njobs:\n  t:\n    runs-on: self-hosted\n    steps:\n      - run: echo pr\n",
    );
    w.remote.push("first");
    let head = w.pull_request_head(9);
    w.add_repo(&["--poll-interval", "1"]);
    let _agent = w.agent();

    w.forge
        .add_pull_request("octo/app", FakePull::new(9, &head, "feature", "alice"));
    let runs = w.wait_runs("the opened pull request's run", |r| !r.is_empty());
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["commit"], head.as_str());
    assert_eq!(runs[0]["event"], "pull_request");
    assert_eq!(runs[0]["git_ref"], "refs/pull/9/head");
    let first = w.finished(&runs[0]["id"].to_string());
    assert_eq!(first["status"], "success", "{first}");
    w.forge.wait("the progress comment with the result", |f| {
        f.comments("octo/app", 9).iter().any(|c| {
            c.body
                .starts_with(&format!("<!-- kiln run {} -->", first["id"]))
                && c.body.contains("`pr` success")
        })
    });

    // A new head on the same pull request.
    let work = w.remote.work();
    git(&work, &["checkout", "-q", "feature"]);
    w.remote.file("feature.txt", "moved\n");
    git(&work, &["commit", "-q", "-am", "moved"]);
    let moved = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["push", "-q", "origin", "feature"]);
    git(
        &work,
        &["push", "-q", "-f", "origin", "HEAD:refs/pull/9/head"],
    );
    git(&work, &["checkout", "-q", "main"]);
    w.forge
        .add_pull_request("octo/app", FakePull::new(9, &moved, "feature", "alice"));
    let runs = w.wait_runs("the moved head's run", |r| r.len() >= 2);
    let second = runs.iter().find(|r| r["id"] != first["id"]).unwrap();
    assert_eq!(second["commit"], moved.as_str(), "{runs:?}");
    assert_eq!(second["event"], "pull_request");

    w.wait_polls(2);
    assert_eq!(w.runs().len(), 2, "{:?}", w.runs());
}
