//! Every recorded webhook body in `shared/fixtures/webhooks/` goes through
//! the server's path: signed with a test secret, verified, parsed. The main
//! ones have their fields checked.

use kiln_forge::webhook::{
    Forge, ForgeEvent, PrAction, PullRequest, Push, VerifyError, delivery_id, event_name, parse,
    sign, verify,
};
use std::path::PathBuf;

const SECRET: &str = "kiln-test-secret";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/webhooks")
}

fn read(dir: &str, file: &str) -> Vec<u8> {
    let path = fixtures().join(dir).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The event header value a forge sends with the body recorded in `file`.
fn event_for(forge: Forge, file: &str) -> &'static str {
    let stem = file.trim_end_matches(".json");
    match forge {
        Forge::GitHub => match stem.split('-').next().unwrap_or(stem) {
            "create" => "create",
            "delete" => "delete",
            "issue_comment" => "issue_comment",
            "ping" => "ping",
            "pull_request" => "pull_request",
            "push" => "push",
            "workflow_dispatch" => "workflow_dispatch",
            other => panic!("no event known for github/{other}"),
        },
        Forge::Gitea | Forge::Forgejo => match stem {
            s if s.starts_with("HookPush") => "push",
            "HookTag" => "create",
            "HookRelease" => "release",
            "HookPullRequestReviewAck" => "pull_request_approved",
            "HookPullRequestReviewDeny" => "pull_request_rejected",
            "HookPullRequestReviewComment" => "pull_request_comment",
            s if s.starts_with("HookPullRequest") => "pull_request",
            other => panic!("no event known for {forge}/{other}"),
        },
        Forge::GitLab => match stem {
            "HookPush" => "Push Hook",
            "HookTag" => "Tag Push Hook",
            "WebhookReleaseBody" => "Release Hook",
            s if s.starts_with("HookPullRequest") => "Merge Request Hook",
            other => panic!("no event known for gitlab/{other}"),
        },
    }
}

/// Headers as the forge would send them for `body`.
fn headers(forge: Forge, event: &str, body: &[u8]) -> Vec<(String, String)> {
    let (sig_name, sig) = sign(forge, body, SECRET);
    let (event_header, delivery_header) = match forge {
        Forge::GitHub => ("X-GitHub-Event", "X-GitHub-Delivery"),
        Forge::Gitea => ("X-Gitea-Event", "X-Gitea-Delivery"),
        Forge::Forgejo => ("X-Forgejo-Event", "X-Forgejo-Delivery"),
        Forge::GitLab => ("X-Gitlab-Event", "Idempotency-Key"),
    };
    vec![
        (event_header.to_owned(), event.to_owned()),
        (delivery_header.to_owned(), "d-1".to_owned()),
        (sig_name.to_owned(), sig),
    ]
}

/// The server's path: verify, then read the event header, then parse.
fn deliver(forge: Forge, dir: &str, file: &str) -> ForgeEvent {
    let body = read(dir, file);
    let h = headers(forge, event_for(forge, file), &body);
    verify(forge, &h, &body, SECRET).unwrap_or_else(|e| panic!("{dir}/{file}: {e}"));
    assert_eq!(delivery_id(forge, &h).as_deref(), Some("d-1"));
    let event = event_name(forge, &h).expect("event header");
    parse(forge, event, &body).unwrap_or_else(|e| panic!("{dir}/{file}: {e}"))
}

fn push(forge: Forge, dir: &str, file: &str) -> Push {
    match deliver(forge, dir, file) {
        ForgeEvent::Push(p) => p,
        other => panic!("{dir}/{file}: expected a push, got {other:?}"),
    }
}

fn pr(forge: Forge, dir: &str, file: &str) -> PullRequest {
    match deliver(forge, dir, file) {
        ForgeEvent::PullRequest(p) => p,
        other => panic!("{dir}/{file}: expected a pull request, got {other:?}"),
    }
}

#[test]
fn every_fixture_verifies_and_parses() {
    let mut seen = 0;
    for (forge, dir) in [
        (Forge::GitHub, "github"),
        (Forge::Gitea, "gitea"),
        (Forge::Forgejo, "forgejo"),
        (Forge::GitLab, "gitlab"),
    ] {
        let mut files: Vec<String> = std::fs::read_dir(fixtures().join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n.ends_with(".json"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{dir} has no fixtures");
        for file in &files {
            deliver(forge, dir, file);
            seen += 1;
        }
    }
    assert!(seen >= 70, "only {seen} fixtures");
}

#[test]
fn github_push_events() {
    let p = push(Forge::GitHub, "github", "push.json");
    assert_eq!(p.git_ref, "refs/tags/simple-tag");
    assert!(p.deleted && !p.created);
    assert_eq!(p.after, "0000000000000000000000000000000000000000");
    assert_eq!(p.changed_files, None);
    assert_eq!(p.pusher, "Codertocat");
    assert_eq!(p.repo.full_name, "Codertocat/Hello-World");
    assert_eq!(
        p.repo.clone_urls,
        [
            "https://github.com/Codertocat/Hello-World.git",
            "git@github.com:Codertocat/Hello-World.git"
        ]
    );

    let p = push(Forge::GitHub, "github", "push-with-new-branch.json");
    assert_eq!(p.git_ref, "refs/heads/master");
    assert!(p.created && !p.deleted);
    assert_eq!(p.after, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    // A new ref's commit list is not its diff: git decides.
    assert_eq!(p.changed_files, None);
}

#[test]
fn github_create_and_delete_are_covered_by_push() {
    for (file, event) in [("create.json", "create"), ("delete.json", "delete")] {
        assert_eq!(
            deliver(Forge::GitHub, "github", file),
            ForgeEvent::Ignored {
                event: event.to_owned()
            }
        );
    }
}

#[test]
fn github_pull_requests() {
    let p = pr(Forge::GitHub, "github", "pull_request-opened.json");
    assert_eq!(p.action, PrAction::Opened);
    assert_eq!(p.number, 2);
    assert_eq!(p.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
    assert_eq!(
        (p.head_ref.as_str(), p.base_ref.as_str()),
        ("changes", "master")
    );
    assert!(!p.head_repo_is_fork);
    assert_eq!(p.author, "Codertocat");
    assert!(!p.merged);

    let p = pr(Forge::GitHub, "github", "pull_request-synchronize.json");
    assert_eq!(p.action, PrAction::Synchronize);
    let p = pr(Forge::GitHub, "github", "pull_request-reopened.json");
    assert_eq!(p.action, PrAction::Reopened);
    let p = pr(Forge::GitHub, "github", "pull_request-closed.json");
    assert_eq!(p.action, PrAction::Closed);
    assert!(!p.merged);
}

#[test]
fn github_comments_and_ping() {
    let ForgeEvent::Comment(c) = deliver(Forge::GitHub, "github", "issue_comment-created.json")
    else {
        panic!("expected a comment")
    };
    assert!(!c.on_pull_request);
    assert_eq!((c.pr_number, c.issue_number), (None, Some(1)));
    assert_eq!(c.comment_id, 492700400);
    assert_eq!(c.author, "Codertocat");
    assert_eq!(c.author_association.as_deref(), Some("OWNER"));
    assert!(c.body.starts_with("You are totally right!"));

    assert_eq!(
        deliver(Forge::GitHub, "github", "issue_comment-edited.json"),
        ForgeEvent::Ignored {
            event: "issue_comment.edited".to_owned()
        }
    );
    assert_eq!(
        deliver(Forge::GitHub, "github", "ping.json"),
        ForgeEvent::Ping
    );
    assert!(matches!(
        deliver(Forge::GitHub, "github", "workflow_dispatch.json"),
        ForgeEvent::Ignored { .. }
    ));
}

#[test]
fn github_comment_on_a_pull_request() {
    // The recorded comment is on an issue; GitHub marks a pull request's
    // issue with a `pull_request` object.
    let mut v: serde_json::Value =
        serde_json::from_slice(&read("github", "issue_comment-created.json")).expect("json");
    v["issue"]["pull_request"] = serde_json::json!({"url": "https://api.github.com/x/pulls/1"});
    let body = serde_json::to_vec(&v).expect("json");
    let ForgeEvent::Comment(c) = parse(Forge::GitHub, "issue_comment", &body).expect("parse")
    else {
        panic!("expected a comment")
    };
    assert!(c.on_pull_request);
    assert_eq!((c.pr_number, c.issue_number), (Some(1), None));
}

#[test]
fn gitea_and_forgejo_pushes() {
    for (forge, dir) in [(Forge::Gitea, "gitea"), (Forge::Forgejo, "forgejo")] {
        let p = push(forge, dir, "HookPush.json");
        assert_eq!(p.git_ref, "refs/heads/main");
        assert_eq!(p.before, "4b2626259b5a97b6b4eab5e6cca66adb986b672b");
        assert_eq!(p.after, "ef98532add3b2feb7a137426bba1248724367df5");
        assert!(!p.created && !p.deleted);
        assert_eq!(p.pusher, "gordon");
        assert_eq!(
            p.changed_files.as_deref(),
            Some(
                &[
                    "CHANGELOG.md".to_owned(),
                    "app/controller/application.rb".to_owned()
                ][..]
            )
        );
        assert_eq!(p.repo.full_name, "gordon/hello-world");
        assert_eq!(p.repo.clone_urls.len(), 2);

        let p = push(forge, dir, "HookPushBranch.json");
        assert_eq!(p.git_ref, "refs/heads/fdsafdsa");
        assert!(p.created);
        assert_eq!(p.changed_files, None);

        let p = push(forge, dir, "HookPushMulti.json");
        assert_eq!(
            p.changed_files.as_deref(),
            Some(&["aa".to_owned(), "aaa".to_owned()][..])
        );

        // The tag also comes as a push; `create` is not acted on.
        assert_eq!(
            deliver(forge, dir, "HookTag.json"),
            ForgeEvent::Ignored {
                event: "create".to_owned()
            }
        );
    }
}

#[test]
fn gitea_and_forgejo_pull_requests() {
    for (forge, dir) in [(Forge::Gitea, "gitea"), (Forge::Forgejo, "forgejo")] {
        let p = pr(forge, dir, "HookPullRequest.json");
        assert_eq!(p.action, PrAction::Opened);
        assert_eq!(p.number, 1);
        assert_eq!(p.head_sha, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
        assert_eq!(
            (p.head_ref.as_str(), p.base_ref.as_str()),
            ("feature/changes", "main")
        );
        assert_eq!(p.author, "gordon");
        // This recording names no head repository: unknown origin is a fork.
        assert!(p.head_repo_is_fork);

        assert_eq!(
            pr(forge, dir, "HookPullRequestUpdated.json").action,
            PrAction::Synchronize
        );
        assert_eq!(
            pr(forge, dir, "HookPullRequestReopened.json").action,
            PrAction::Reopened
        );
        let closed = pr(forge, dir, "HookPullRequestClosed.json");
        assert_eq!(closed.action, PrAction::Closed);
        assert!(!closed.merged);
        let merged = pr(forge, dir, "HookPullRequestMerged.json");
        assert_eq!(merged.action, PrAction::Closed);
        assert!(merged.merged);
        let edited = match forge {
            Forge::Gitea => "HookPullRequestChangeTitle.json",
            _ => "HookPullRequestEdited.json",
        };
        assert_eq!(
            pr(forge, dir, edited).action,
            PrAction::Other("edited".to_owned())
        );
    }
}

#[test]
fn gitea_comment_on_a_pull_request() {
    // Synthetic: no Gitea comment is recorded. The shape follows Gitea's
    // `IssueCommentPayload`.
    let body = br#"{
        "action": "created",
        "issue": {"id": 9, "number": 7, "pull_request": {"merged": false, "merged_at": null}},
        "comment": {"id": 55, "body": "!testme --extra", "user": {"id": 1, "login": "gordon", "username": "gordon"}},
        "repository": {"id": 12, "full_name": "gordon/hello-world", "clone_url": "http://gitea.golang.org/gordon/hello-world.git"},
        "sender": {"login": "gordon"},
        "is_pull": true
    }"#;
    let ForgeEvent::Comment(c) = parse(Forge::Gitea, "issue_comment", body).expect("parse") else {
        panic!("expected a comment")
    };
    assert!(c.on_pull_request);
    assert_eq!(c.pr_number, Some(7));
    assert_eq!(c.body, "!testme --extra");
    assert_eq!(c.comment_id, 55);
    assert_eq!(c.author, "gordon");
}

#[test]
fn gitlab_pushes() {
    let p = push(Forge::GitLab, "gitlab", "HookPush.json");
    assert_eq!(p.git_ref, "refs/heads/main");
    assert_eq!(p.after, "16862e368d8ab812e48833b741dad720d6e2cb7f");
    assert_eq!(p.pusher, "test");
    assert_eq!(
        p.changed_files.as_deref(),
        Some(&["cmd/cli/main.go".to_owned()][..])
    );
    assert_eq!(p.repo.full_name, "test/woodpecker");
    assert_eq!(
        p.repo.clone_urls,
        [
            "http://10.40.8.5:3200/test/woodpecker.git",
            "git@10.40.8.5:test/woodpecker.git"
        ]
    );

    let p = push(Forge::GitLab, "gitlab", "HookTag.json");
    assert_eq!(p.git_ref, "refs/tags/v22");
    assert!(p.created && !p.deleted);
    assert_eq!(p.changed_files, None);
}

#[test]
fn gitlab_merge_requests() {
    let p = pr(Forge::GitLab, "gitlab", "HookPullRequestOpened.json");
    assert_eq!(p.action, PrAction::Opened);
    assert_eq!(p.number, 3);
    assert_eq!(p.head_sha, "2f7670508b771e7e77839402be8b34b13787aba8");
    assert_eq!(p.head_ref, "real6543-main-patch-42541");
    assert_eq!(p.base_ref, "main");
    assert!(!p.head_repo_is_fork);
    assert_eq!(p.author, "real6543");

    let cases = [
        ("HookPullRequestUpdated.json", PrAction::Synchronize, false),
        (
            "HookPullRequestWithoutChanges.json",
            PrAction::Other("update".into()),
            false,
        ),
        (
            "HookPullRequestEdited.json",
            PrAction::Other("update".into()),
            false,
        ),
        ("HookPullRequestReopened.json", PrAction::Reopened, false),
        ("HookPullRequestClosed.json", PrAction::Closed, false),
        ("HookPullRequestMerged.json", PrAction::Closed, true),
        (
            "HookPullRequestApproved.json",
            PrAction::Other("approved".into()),
            false,
        ),
        (
            "HookPullRequestUnsupportedAction.json",
            PrAction::Other("action_we_do_not_support".into()),
            false,
        ),
    ];
    for (file, action, merged) in cases {
        let p = pr(Forge::GitLab, "gitlab", file);
        assert_eq!((p.action, p.merged), (action, merged), "{file}");
    }
    assert!(matches!(
        deliver(Forge::GitLab, "gitlab", "WebhookReleaseBody.json"),
        ForgeEvent::Ignored { .. }
    ));
}

#[test]
fn gitlab_note_on_a_merge_request() {
    // Synthetic: no GitLab note is recorded. The shape follows GitLab's
    // "Comment events" documentation.
    let body = br#"{
        "object_kind": "note", "event_type": "note",
        "user": {"id": 1, "name": "Administrator", "username": "root"},
        "project_id": 5,
        "project": {"id": 5, "path_with_namespace": "gitlabhq/gitlab-test",
                    "git_http_url": "http://example.com/gitlabhq/gitlab-test.git",
                    "git_ssh_url": "git@example.com:gitlabhq/gitlab-test.git"},
        "object_attributes": {"id": 1244, "note": "!testme --only build", "noteable_type": "MergeRequest"},
        "merge_request": {"id": 7, "iid": 1, "source_branch": "tutorial", "target_branch": "master",
                          "last_commit": {"id": "b83d6e391c22777fca1ed3012fce84f633d7fed0"}}
    }"#;
    for header in ["Note Hook", "System Hook"] {
        let ForgeEvent::Comment(c) = parse(Forge::GitLab, header, body).expect("parse") else {
            panic!("expected a comment")
        };
        assert!(c.on_pull_request);
        assert_eq!(c.pr_number, Some(1));
        assert_eq!(c.comment_id, 1244);
        assert_eq!(c.author, "root");
        assert_eq!(
            c.head_sha.as_deref(),
            Some("b83d6e391c22777fca1ed3012fce84f633d7fed0")
        );
    }
}

#[test]
fn unknown_events_are_ignored_and_bad_bodies_are_errors() {
    assert_eq!(
        parse(Forge::GitHub, "star", b"not even json"),
        Ok(ForgeEvent::Ignored {
            event: "star".to_owned()
        })
    );
    let err = parse(Forge::GitHub, "push", b"{\"ref\": 3}").expect_err("bad body");
    assert!(err.to_string().starts_with("github `push` body:"), "{err}");
    assert!(parse(Forge::GitLab, "Push Hook", b"payload=%7B%7D").is_err());
}

#[test]
fn signatures_fail_each_in_their_own_way() {
    let body = read("github", "push.json");
    let good = headers(Forge::GitHub, "push", &body);
    assert_eq!(verify(Forge::GitHub, &good, &body, SECRET), Ok(()));

    let mut flipped = body.clone();
    flipped[10] ^= 0x01;
    let mismatch = Err(VerifyError::Mismatch {
        header: "X-Hub-Signature-256",
    });
    assert_eq!(verify(Forge::GitHub, &good, &flipped, SECRET), mismatch);
    assert_eq!(
        verify(Forge::GitHub, &good, &body, "another-secret"),
        mismatch
    );

    let missing: Vec<(String, String)> = good
        .iter()
        .filter(|(k, _)| k != "X-Hub-Signature-256")
        .cloned()
        .collect();
    assert_eq!(
        verify(Forge::GitHub, &missing, &body, SECRET),
        Err(VerifyError::Missing {
            header: "X-Hub-Signature-256"
        })
    );

    for bad in [
        format!("sha256={}", "zz".repeat(32)),
        "sha256=abc".to_owned(),
        "sha1=0123456789abcdef0123456789abcdef01234567".to_owned(),
    ] {
        let h = [("X-Hub-Signature-256", bad.as_str())];
        assert!(
            matches!(
                verify(Forge::GitHub, &h[..], &body, SECRET),
                Err(VerifyError::Malformed { .. })
            ),
            "{bad}"
        );
    }

    let h = [("X-Gitea-Signature", "not hex at all")];
    assert!(matches!(
        verify(Forge::Gitea, &h[..], &body, SECRET),
        Err(VerifyError::Malformed { .. })
    ));
    let (_, sig) = sign(Forge::Gitea, &body, SECRET);
    let upper = sig.to_uppercase();
    let h = [("X-Gitea-Signature", upper.as_str())];
    assert_eq!(verify(Forge::Gitea, &h[..], &body, SECRET), Ok(()));
}
