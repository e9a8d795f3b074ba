//! The client commands against a fake server: an in-test HTTP server that
//! answers canned responses and records every request, so each test checks
//! both sides: what the CLI sent (method, path, query, bearer token, body)
//! and what it printed and exited with. The real server is exercised by the
//! end-to-end tests.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// One request as the fake server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    /// Path and query, as sent.
    uri: String,
    auth: Option<String>,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
}

/// A canned answer for `METHOD path` (the query matched too when given).
struct Canned {
    method: &'static str,
    uri: String,
    status: u16,
    content_type: &'static str,
    body: String,
}

fn answer(method: &'static str, uri: &str, status: u16, body: Value) -> Canned {
    Canned {
        method,
        uri: uri.to_owned(),
        status,
        content_type: "application/json",
        body: body.to_string(),
    }
}

fn sse(uri: &str, body: &str) -> Canned {
    Canned {
        method: "GET",
        uri: uri.to_owned(),
        status: 200,
        content_type: "text/event-stream",
        body: body.to_owned(),
    }
}

struct FakeState {
    canned: Vec<Canned>,
    seen: Mutex<Vec<Seen>>,
}

struct Fake {
    url: String,
    state: Arc<FakeState>,
}

impl Fake {
    fn start(canned: Vec<Canned>) -> Fake {
        let state = Arc::new(FakeState {
            canned,
            seen: Mutex::new(Vec::new()),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let app = Router::new().fallback(handle).with_state(st);
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let addr = rx.recv().expect("fake server address");
        Fake {
            url: format!("http://{addr}"),
            state,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }

    /// The only request made to `uri` (path and query).
    fn one(&self, method: &str, uri: &str) -> Seen {
        let hits: Vec<Seen> = self
            .seen()
            .into_iter()
            .filter(|s| s.method == method && s.uri == uri)
            .collect();
        assert_eq!(hits.len(), 1, "{method} {uri} in {:#?}", self.seen());
        hits.into_iter().next().expect("one")
    }
}

async fn handle(State(st): State<Arc<FakeState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    st.seen.lock().expect("lock").push(Seen {
        method: parts.method.to_string(),
        uri: uri.clone(),
        auth: parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    let method = parts.method.as_str();
    let found = st
        .canned
        .iter()
        .find(|c| c.method == method && c.uri == uri)
        .or_else(|| {
            st.canned
                .iter()
                .find(|c| c.method == method && c.uri == path)
        });
    let (status, ctype, body) = match found {
        Some(c) => (c.status, c.content_type, c.body.clone()),
        None => (
            404,
            "application/json",
            json!({ "error": format!("fake server: no answer for {method} {uri}") }).to_string(),
        ),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}

/// `kiln ARGS` with a clean client environment: no KILN_SERVER/KILN_TOKEN
/// and a data directory of its own (`data`).
fn kiln(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(KILN);
    cmd.args(args)
        .env_remove("KILN_SERVER")
        .env_remove("KILN_TOKEN")
        .env_remove("KILN_COLOR")
        .env("NO_COLOR", "1")
        .env("KILN_DATA", data);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kiln")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn run_summary(id: i64, status: &str) -> Value {
    let finished_at = match status {
        "queued" | "running" => Value::Null,
        _ => json!("2025-03-01T11:58:03Z"),
    };
    json!({
        "id": id,
        "repo": "web",
        "workflow_name": "ci",
        "workflow_file": ".kiln/workflows/ci.yml",
        "commit": "4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
        "git_ref": "refs/heads/main",
        "event": "push",
        "status": status,
        "created_at": "2025-03-01T11:57:00Z",
        "started_at": "2025-03-01T11:57:01Z",
        "finished_at": finished_at,
    })
}

fn run_detail(id: i64, status: &str) -> Value {
    let mut d = run_summary(id, status);
    d["error"] = Value::Null;
    d["jobs"] = json!([
        {
            "id": 7, "job": "build", "name": "build", "status": "success", "attempt": 1,
            "agent": "build-01", "runs_on": ["linux"], "weight": 1, "reason": null,
            "queued_at": null, "started_at": "2025-03-01T11:57:02Z",
            "finished_at": "2025-03-01T11:57:32Z"
        },
        {
            "id": 8, "job": "test", "name": "test (linux)", "status": "failure", "attempt": 2,
            "agent": "build-02", "runs_on": ["linux"], "weight": 1,
            "reason": "step `cargo test` exited with 101",
            "queued_at": null, "started_at": "2025-03-01T11:57:33Z",
            "finished_at": "2025-03-01T11:58:03Z"
        }
    ]);
    d
}

fn log_entry(job: i64, stream: &str, text: &str) -> Value {
    json!({ "job": job, "attempt": 1, "step": 1, "stream": stream,
            "at": "2025-03-01T11:57:05Z", "text": text })
}

#[test]
fn repo_list_json_passes_the_servers_json_through() {
    let repos = json!([
        { "name": "web", "url": "https://git.example.com/web.git",
          "created_at": "2025-03-01T10:00:00Z", "field_from_a_newer_server": 1 }
    ]);
    let fake = Fake::start(vec![answer("GET", "/api/v1/repos", 200, repos.clone())]);
    let data = tempfile::tempdir().expect("tempdir");
    let out = kiln(
        data.path(),
        &[
            "repo", "list", "--json", "--server", &fake.url, "--token", "s3cret",
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let printed: Value = serde_json::from_str(&stdout(&out)).expect("stdout is JSON");
    assert_eq!(printed, repos);
    assert!(
        stdout(&out).starts_with("[\n  {"),
        "pretty: {}",
        stdout(&out)
    );
    let req = fake.one("GET", "/api/v1/repos");
    assert_eq!(req.auth.as_deref(), Some("Bearer s3cret"));

    // And the table, for people.
    let out = kiln(
        data.path(),
        &["repo", "list"],
        &[("KILN_SERVER", &fake.url), ("KILN_TOKEN", "s3cret")],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("NAME  URL "), "{text}");
    assert!(
        text.contains("web   https://git.example.com/web.git  "),
        "{text}"
    );
}

#[test]
fn trigger_sends_the_request_and_prints_only_the_run_id() {
    let fake = Fake::start(vec![answer(
        "POST",
        "/api/v1/repos/web/trigger",
        200,
        json!({ "runs": [run_summary(42, "queued")] }),
    )]);
    let data = tempfile::tempdir().expect("tempdir");
    let out = kiln(
        data.path(),
        &[
            "trigger",
            "web",
            "--ref",
            "main",
            "--workflow",
            "ci",
            "--event",
            "workflow_dispatch",
            "--input",
            "level=3",
            "--input",
            "note=a=b",
            "--flag",
            "fast",
        ],
        &[("KILN_SERVER", &fake.url), ("KILN_TOKEN", "tok")],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "42\n");
    assert!(stderr(&out).contains("run 42: ci"), "{}", stderr(&out));
    let req = fake.one("POST", "/api/v1/repos/web/trigger");
    assert_eq!(req.auth.as_deref(), Some("Bearer tok"));
    assert_eq!(
        req.json(),
        json!({
            "git_ref": "main",
            "commit": null,
            "workflow": "ci",
            "event": "workflow_dispatch",
            "inputs": { "level": "3", "note": "a=b" },
            "flags": ["fast"],
        })
    );
}

#[test]
fn trigger_rejects_a_malformed_input_before_calling() {
    let fake = Fake::start(vec![]);
    let data = tempfile::tempdir().expect("tempdir");
    let out = kiln(
        data.path(),
        &[
            "trigger", "web", "--input", "level", "--server", &fake.url, "--token", "t",
        ],
        &[],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("`level` is not KEY=VALUE"),
        "{}",
        stderr(&out)
    );
    assert!(fake.seen().is_empty());
}

#[test]
fn trigger_wait_follows_the_logs_and_exits_1_on_failure() {
    let stream = format!(
        ": keep-alive\n\ndata: {}\n\ndata: {}\n\nevent: end\ndata: failure\n\n",
        log_entry(7, "stdout", "hello from build"),
        log_entry(8, "stderr", "test failed"),
    );
    let fake = Fake::start(vec![
        answer(
            "POST",
            "/api/v1/repos/web/trigger",
            200,
            json!({ "runs": [run_summary(42, "queued")] }),
        ),
        answer("GET", "/api/v1/runs/42", 200, run_detail(42, "running")),
        sse("/api/v1/runs/42/logs/stream", &stream),
    ]);
    let data = tempfile::tempdir().expect("tempdir");
    let out = kiln(
        data.path(),
        &[
            "trigger", "web", "--wait", "--server", &fake.url, "--token", "t",
        ],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "42\n[build] hello from build\n[test (linux)] test failed\nrun 42 (ci) finished: failure\n"
    );
    let req = fake.one("GET", "/api/v1/runs/42/logs/stream");
    assert_eq!(req.auth.as_deref(), Some("Bearer t"));
}

#[test]
fn trigger_wait_exits_0_when_every_run_succeeds() {
    let stream = format!(
        "data: {}\n\nevent: end\ndata: success\n\n",
        log_entry(7, "stdout", "ok")
    );
    let fake = Fake::start(vec![
        answer(
            "POST",
            "/api/v1/repos/web/trigger",
            200,
            json!({ "runs": [run_summary(42, "queued")] }),
        ),
        answer("GET", "/api/v1/runs/42", 200, run_detail(42, "running")),
        sse("/api/v1/runs/42/logs/stream", &stream),
    ]);
    let data = tempfile::tempdir().expect("tempdir");
    let out = kiln(
        data.path(),
        &[
            "trigger", "web", "--wait", "--server", &fake.url, "--token", "t",
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).ends_with("run 42 (ci) finished: success\n"));
}

#[test]
fn show_prints_the_run_and_its_jobs() {
    let fake = Fake::start(vec![answer(
        "GET",
        "/api/v1/runs/42",
        200,
        run_detail(42, "failure"),
    )]);
    let data = tempfile::tempdir().expect("tempdir");
    let out = kiln(
        data.path(),
        &["show", "42", "--server", &fake.url, "--token", "t"],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("run 42 ci  failure\n"), "{text}");
    assert!(text.contains("  commit    4f2a9c1 on main\n"), "{text}");
    assert!(
        text.contains("ID  JOB           STATUS   ATTEMPT  AGENT     DURATION  REASON\n"),
        "{text}"
    );
    assert!(
        text.contains(
            " 8  test (linux)  failure        2  build-02     30.0s  step `cargo test` exited with 101\n"
        ),
        "{text}"
    );

    let out = kiln(
        data.path(),
        &[
            "show", "42", "--json", "--server", &fake.url, "--token", "t",
        ],
        &[],
    );
    let printed: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(printed, run_detail(42, "failure"));
}

#[test]
fn refused_token_exits_3_and_says_where_the_token_came_from() {
    let fake = Fake::start(vec![answer(
        "GET",
        "/api/v1/runs",
        401,
        json!({ "error": "unknown token" }),
    )]);
    // The way `kiln up` leaves things: client.json naming the token file.
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("admin.token"), "old-token\n").expect("token");
    std::fs::write(
        data.path().join("client.json"),
        json!({ "server": fake.url, "token_file": data.path().join("admin.token") }).to_string(),
    )
    .expect("client.json");
    let out = kiln(data.path(), &["runs"], &[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: the server refused the token (401): unknown token"),
        "{err}"
    );
    assert!(err.contains("hint: the token came from "), "{err}");
    assert!(err.contains("admin.token (written by `kiln up`)"), "{err}");
    assert!(err.contains("--token-file, KILN_TOKEN or --token"), "{err}");
    let req = fake.one("GET", "/api/v1/runs?limit=20");
    assert_eq!(req.auth.as_deref(), Some("Bearer old-token"));
}

#[test]
fn unknown_run_exits_2() {
    let fake = Fake::start(vec![answer(
        "GET",
        "/api/v1/runs/99",
        404,
        json!({ "error": "run 99" }),
    )]);
    let data = tempfile::tempdir().expect("tempdir");
    let out = kiln(
        data.path(),
        &["show", "99", "--server", &fake.url, "--token", "t"],
        &[],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(stderr(&out), "error: not found: run 99\n");
    assert_eq!(stdout(&out), "");
}

#[test]
fn no_server_anywhere_exits_3_with_how_to_fix_it() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = kiln(data.path(), &["agents"], &[]);
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).starts_with(
            "error: no server: start one with `kiln up`, or pass --server/KILN_SERVER"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unreachable_server_exits_3() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let data = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{port}");
    let out = kiln(
        data.path(),
        &["queue", "--server", &url, "--token", "t"],
        &[],
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot reach the server"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("hint: is the server running?"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn logs_pages_through_the_stored_output() {
    let fake = Fake::start(vec![
        answer("GET", "/api/v1/runs/42", 200, run_detail(42, "failure")),
        answer(
            "GET",
            "/api/v1/runs/42/logs",
            200,
            json!({ "entries": [log_entry(7, "stdout", "one"), log_entry(8, "stdout", "two")],
                    "cursor": 5 }),
        ),
        answer(
            "GET",
            "/api/v1/runs/42/logs?after=5",
            200,
            json!({ "entries": [log_entry(8, "system", "three")], "cursor": 6 }),
        ),
        answer(
            "GET",
            "/api/v1/runs/42/logs?after=6",
            200,
            json!({ "entries": [], "cursor": 6 }),
        ),
        answer(
            "GET",
            "/api/v1/runs/42/logs?job=8",
            200,
            json!({ "entries": [log_entry(8, "stdout", "two")], "cursor": 4 }),
        ),
        answer(
            "GET",
            "/api/v1/runs/42/logs?job=8&after=4",
            200,
            json!({ "entries": [], "cursor": 4 }),
        ),
    ]);
    let data = tempfile::tempdir().expect("tempdir");
    let env = [("KILN_SERVER", fake.url.as_str()), ("KILN_TOKEN", "t")];
    let out = kiln(data.path(), &["logs", "42"], &env);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "[build] one\n[test (linux)] two\n[test (linux)] three\n"
    );

    let out = kiln(data.path(), &["logs", "42", "--job", "test"], &env);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "[test (linux)] two\n");

    let out = kiln(data.path(), &["logs", "42", "--json"], &env);
    let printed: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(printed["cursor"], json!(6));
    assert_eq!(printed["entries"].as_array().map(Vec::len), Some(3));

    let out = kiln(data.path(), &["logs", "42", "--job", "lint"], &env);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("run 42 has no job `lint` (its jobs: build, test)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn token_create_prints_only_the_token() {
    let fake = Fake::start(vec![answer(
        "POST",
        "/api/v1/tokens",
        200,
        json!({ "token": "kiln_abc123", "role": "viewer", "name": "dash" }),
    )]);
    let data = tempfile::tempdir().expect("tempdir");
    let out = kiln(
        data.path(),
        &[
            "token", "create", "--role", "viewer", "--name", "dash", "--server", &fake.url,
            "--token", "admin",
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "kiln_abc123\n");
    assert!(
        stderr(&out).contains("shown only this once"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fake.one("POST", "/api/v1/tokens").json(),
        json!({ "role": "viewer", "name": "dash" })
    );
}

#[test]
fn cancel_and_retry_post_to_their_routes() {
    let fake = Fake::start(vec![
        answer(
            "POST",
            "/api/v1/runs/42/cancel",
            200,
            run_summary(42, "cancelled"),
        ),
        answer(
            "POST",
            "/api/v1/runs/42/retry",
            200,
            run_summary(43, "queued"),
        ),
    ]);
    let data = tempfile::tempdir().expect("tempdir");
    let env = [("KILN_SERVER", fake.url.as_str()), ("KILN_TOKEN", "t")];
    let out = kiln(data.path(), &["cancel", "42"], &env);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "run 42 (ci) is cancelled\n");

    let out = kiln(data.path(), &["retry", "42", "--failed-only"], &env);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "43\n");
    assert_eq!(
        fake.one("POST", "/api/v1/runs/42/retry").json(),
        json!({ "failed_only": true })
    );
}

#[test]
fn follow_reports_a_stream_that_closes_before_the_run_ends() {
    let stream = format!("data: {}\n\n", log_entry(7, "stdout", "partial"));
    let fake = Fake::start(vec![
        answer("GET", "/api/v1/runs/42", 200, run_detail(42, "running")),
        sse("/api/v1/runs/42/logs/stream", &stream),
    ]);
    let data = tempfile::tempdir().expect("tempdir");
    let out = kiln(
        data.path(),
        &["logs", "42", "-f", "--server", &fake.url, "--token", "t"],
        &[],
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(stdout(&out), "[build] partial\n");
    assert!(
        stderr(&out).contains("the log stream of run 42 closed before the run finished"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn follow_of_a_finished_run_reads_the_stored_pages() {
    let fake = Fake::start(vec![
        answer("GET", "/api/v1/runs/42", 200, run_detail(42, "success")),
        answer(
            "GET",
            "/api/v1/runs/42/logs",
            200,
            json!({ "entries": [log_entry(7, "stdout", "done")], "cursor": 1 }),
        ),
        answer(
            "GET",
            "/api/v1/runs/42/logs?after=1",
            200,
            json!({ "entries": [], "cursor": 1 }),
        ),
    ]);
    let data = tempfile::tempdir().expect("tempdir");
    let out = kiln(
        data.path(),
        &["logs", "42", "-f", "--server", &fake.url, "--token", "t"],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "[build] done\nrun 42 (ci) finished: success\n"
    );
    assert!(fake.seen().iter().all(|s| !s.uri.contains("stream")));
}
