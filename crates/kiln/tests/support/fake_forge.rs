//! A fake GitHub for end-to-end tests: a real HTTP server on loopback
//! (axum, in its own thread and runtime) that speaks the REST shapes kiln's
//! GitHub adapter uses, serves what the test configures (permissions, pull
//! requests, comments), records everything kiln sends, and can be told to
//! fail for a while.
//!
//! ```ignore
//! let forge = FakeForge::start("ghp_test");
//! forge.set_permission("octo/app", "alice", "write");
//! forge.add_pull_request("octo/app", FakePull::new(7, &sha, "feature", "alice"));
//! let id = forge.add_comment("octo/app", 7, "alice", "!testme --extra");
//! // … register the repo with --forge github --forge-url forge.url() …
//! forge.wait("a success status", |f| f.statuses().iter().any(|s| s.state == "success"));
//! ```
//!
//! Served (all under `/repos/{owner}/{name}`), answering 401 unless the
//! `Authorization: Bearer TOKEN` header carries the token given to `start`:
//! `GET collaborators/{user}/permission` (404 for unknown users),
//! `POST statuses/{sha}`, `GET pulls?state=open`, `GET pulls/{n}`,
//! `GET issues/{n}/comments`, `POST issues/{n}/comments`,
//! `PATCH issues/comments/{id}`.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A commit status kiln posted.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusPost {
    pub repo: String,
    pub sha: String,
    pub state: String,
    pub context: String,
    pub description: String,
    pub target_url: Option<String>,
}

/// A comment on a pull request (kiln's have author `kiln-bot`).
#[derive(Clone, Debug, PartialEq)]
pub struct FakeComment {
    pub id: u64,
    pub repo: String,
    pub pr: u64,
    pub author: String,
    pub body: String,
    /// Bodies before each edit, oldest first.
    pub history: Vec<String>,
}

/// A pull request the fake serves.
#[derive(Clone, Debug, PartialEq)]
pub struct FakePull {
    pub number: u64,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
    pub author: String,
    /// The head branch lives in this repository (`None`: the same one).
    pub head_repo: Option<String>,
}

impl FakePull {
    pub fn new(number: u64, head_sha: &str, head_ref: &str, author: &str) -> FakePull {
        FakePull {
            number,
            head_sha: head_sha.into(),
            head_ref: head_ref.into(),
            base_ref: "main".into(),
            author: author.into(),
            head_repo: None,
        }
    }
    /// From a fork (`owner/name` of the fork).
    pub fn with_fork(mut self, fork: &str) -> FakePull {
        self.head_repo = Some(fork.into());
        self
    }
}

/// One request as received, with the status it was answered.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub answered: u16,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    token: String,
    permissions: BTreeMap<(String, String), String>,
    pulls: BTreeMap<String, Vec<FakePull>>,
    comments: Vec<FakeComment>,
    next_comment: u64,
    statuses: Vec<StatusPost>,
    seen: Vec<Seen>,
    /// Answer this status to every request while set.
    failing: Option<u16>,
}

pub struct FakeForge {
    url: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeForge {
    /// Start on 127.0.0.1 (a free port); `token` is the one kiln must send.
    pub fn start(token: &str) -> FakeForge {
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            next_comment: 1000,
            ..State::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let st = st.clone();
                        async move { answer(&st, &method, &uri, &headers, &body) }
                    },
                );
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        FakeForge {
            url,
            state,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// The API root to give kiln (`--forge-url`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// `permission` is GitHub's: admin, maintain, write, triage, read, none.
    pub fn set_permission(&self, repo: &str, user: &str, permission: &str) {
        self.with(|s| {
            s.permissions
                .insert((repo.into(), user.into()), permission.into())
        });
    }

    /// Serve a pull request (replacing one with the same number).
    pub fn add_pull_request(&self, repo: &str, pull: FakePull) {
        self.with(|s| {
            let list = s.pulls.entry(repo.into()).or_default();
            list.retain(|p| p.number != pull.number);
            list.push(pull);
        });
    }

    /// Close (stop listing) a pull request.
    pub fn close_pull_request(&self, repo: &str, number: u64) {
        self.with(|s| {
            if let Some(l) = s.pulls.get_mut(repo) {
                l.retain(|p| p.number != number)
            }
        });
    }

    /// Someone comments on a pull request; returns the comment's id.
    pub fn add_comment(&self, repo: &str, pr: u64, author: &str, body: &str) -> u64 {
        self.with(|s| new_comment(s, repo, pr, author, body))
    }

    /// Answer every request with `status` (e.g. 500) until [`heal`](Self::heal).
    pub fn fail_with(&self, status: u16) {
        self.with(|s| s.failing = Some(status));
    }

    pub fn heal(&self) {
        self.with(|s| s.failing = None);
    }

    /// Every commit status posted, in arrival order.
    pub fn statuses(&self) -> Vec<StatusPost> {
        self.with(|s| s.statuses.clone())
    }

    /// Statuses posted for one commit, in arrival order.
    pub fn statuses_for(&self, sha: &str) -> Vec<StatusPost> {
        self.with(|s| {
            s.statuses
                .iter()
                .filter(|p| p.sha == sha)
                .cloned()
                .collect()
        })
    }

    /// Comments on a pull request, oldest first (edits applied).
    pub fn comments(&self, repo: &str, pr: u64) -> Vec<FakeComment> {
        self.with(|s| {
            s.comments
                .iter()
                .filter(|c| c.repo == repo && c.pr == pr)
                .cloned()
                .collect()
        })
    }

    /// Every request received, with the answer's status.
    pub fn requests(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    /// Wait (up to 60 s, polling) until `pred` holds; panics with `what`
    /// and everything received otherwise.
    pub fn wait(&self, what: &str, pred: impl Fn(&FakeForge) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pred(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; statuses: {:#?}; comments: {:#?}",
                self.statuses(),
                self.with(|s| s.comments.clone())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn new_comment(s: &mut State, repo: &str, pr: u64, author: &str, body: &str) -> u64 {
    s.next_comment += 1;
    let id = s.next_comment;
    s.comments.push(FakeComment {
        id,
        repo: repo.into(),
        pr,
        author: author.into(),
        body: body.into(),
        history: Vec::new(),
    });
    id
}

fn comment_json(c: &FakeComment) -> Value {
    json!({ "id": c.id, "user": { "login": c.author }, "body": c.body })
}

fn pull_json(repo: &str, p: &FakePull) -> Value {
    json!({
        "number": p.number,
        "state": "open",
        "user": { "login": p.author },
        "head": { "ref": p.head_ref, "sha": p.head_sha,
                  "repo": { "full_name": p.head_repo.clone().unwrap_or_else(|| repo.to_owned()) } },
        "base": { "ref": p.base_ref, "sha": "0000000000000000000000000000000000000000",
                  "repo": { "full_name": repo } },
    })
}

type Answer = (StatusCode, [(&'static str, &'static str); 1], String);

fn reply(status: u16, body: Value) -> Answer {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
}

fn answer(
    state: &Mutex<State>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let mut s = state.lock().unwrap();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, out) = route(&mut s, method, uri, authorization.as_deref(), body);
    s.seen.push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        answered: status,
        authorization,
    });
    reply(status, out)
}

fn route(
    s: &mut State,
    method: &Method,
    uri: &Uri,
    authorization: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    if let Some(code) = s.failing {
        return (code, json!({ "message": "the fake forge is down" }));
    }
    if authorization != Some(format!("Bearer {}", s.token).as_str()) {
        return (401, json!({ "message": "Bad credentials" }));
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let not_found = (404, json!({ "message": "Not Found" }));
    let ["repos", owner, name, rest @ ..] = parts.as_slice() else {
        return not_found;
    };
    let repo = format!("{owner}/{name}");
    match (method.as_str(), rest) {
        ("GET", ["collaborators", user, "permission"]) => {
            match s.permissions.get(&(repo.clone(), (*user).to_owned())) {
                Some(p) => (200, json!({ "permission": p, "user": { "login": user } })),
                None => not_found,
            }
        }
        ("POST", ["statuses", sha]) => {
            let text = |k: &str| body[k].as_str().map(str::to_owned);
            s.statuses.push(StatusPost {
                repo,
                sha: (*sha).to_owned(),
                state: text("state").unwrap_or_default(),
                context: text("context").unwrap_or_default(),
                description: text("description").unwrap_or_default(),
                target_url: text("target_url"),
            });
            (201, json!({ "id": s.statuses.len() }))
        }
        ("GET", ["pulls"]) => {
            let list: Vec<Value> = s
                .pulls
                .get(&repo)
                .map(|l| l.iter().map(|p| pull_json(&repo, p)).collect())
                .unwrap_or_default();
            (200, Value::Array(list))
        }
        ("GET", ["pulls", n]) => {
            let found = s
                .pulls
                .get(&repo)
                .and_then(|l| l.iter().find(|p| p.number.to_string() == *n));
            match found {
                Some(p) => (200, pull_json(&repo, p)),
                None => not_found,
            }
        }
        ("GET", ["issues", n, "comments"]) => {
            let list: Vec<Value> = s
                .comments
                .iter()
                .filter(|c| c.repo == repo && c.pr.to_string() == *n)
                .map(comment_json)
                .collect();
            (200, Value::Array(list))
        }
        ("POST", ["issues", n, "comments"]) => {
            let Ok(pr) = n.parse::<u64>() else {
                return not_found;
            };
            let text = body["body"].as_str().unwrap_or_default().to_owned();
            let id = new_comment(s, &repo, pr, "kiln-bot", &text);
            (201, json!({ "id": id, "body": text }))
        }
        ("PATCH", ["issues", "comments", id]) => {
            let text = body["body"].as_str().unwrap_or_default().to_owned();
            match s
                .comments
                .iter_mut()
                .find(|c| c.repo == repo && c.id.to_string() == *id)
            {
                Some(c) => {
                    let old = std::mem::replace(&mut c.body, text);
                    c.history.push(old);
                    (200, comment_json(c))
                }
                None => not_found,
            }
        }
        _ => not_found,
    }
}
