//! A fake kiln server for the agent's tests: the agent routes of
//! `kiln_proto::routes`, with the server's rules (fencing by attempt, log
//! chunks stored once per seq, 409 on a repeated completion), knobs to
//! make calls fail, and a channel of everything it sees so that tests
//! synchronise by handshake instead of sleeping.

#![allow(dead_code)]

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use kiln_agent::{AgentConfig, AgentEvents, Event};
use kiln_model::workflow::Workflow;
use kiln_model::{AgentId, InstanceId, RunId, Value};
use kiln_proto::agent::{
    Assignment, ClaimRequest, Completion, Heartbeat, HeartbeatReply, JobContexts, LogChunk,
    RegisterRequest, RegisterResponse, ReportOutcome, SESSION_HEADER, SessionSecret, WireLine,
    WorkRequest, WorkResponse,
};
use kiln_proto::api::{ErrorBody, ErrorKind, LogStream};
use kiln_proto::routes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// The session secret the fake hands out at registration.
pub const SESSION: &str = "fake-session-secret";

/// Generous bound on every wait: only there to fail instead of hanging.
pub const LIMIT: Duration = Duration::from_secs(60);

/// What the fake saw, in order.
#[derive(Clone, Debug)]
pub enum Seen {
    Registered,
    Claimed(InstanceId),
    Heartbeat {
        job: InstanceId,
        answered: u16,
    },
    /// A log chunk; `new` is false for a repeat of a stored seq.
    Logs {
        job: InstanceId,
        seq: u64,
        new: bool,
        lines: Vec<WireLine>,
    },
    Completed(InstanceId),
    /// A claim's connection went away before it was answered.
    ClaimAbandoned,
    /// A call answered 503 on purpose (`"logs"`, `"complete"`, …).
    Failed(&'static str),
}

/// How the fake answers heartbeats for a job.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Beat {
    Fine,
    Cancel,
    Stale,
}

/// How the fake answers the next log post.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fail {
    /// 503 without storing.
    Drop,
    /// Store the chunk, then answer 503 (the answer is lost).
    StoreThenDrop,
}

#[derive(Default)]
pub struct Inner {
    pub queue: VecDeque<Assignment>,
    pub registers: Vec<RegisterRequest>,
    pub claims: Vec<ClaimRequest>,
    /// The current attempt of each leased job (fencing).
    pub leases: HashMap<InstanceId, u32>,
    pub beats: HashMap<InstanceId, Beat>,
    pub logs: BTreeMap<(InstanceId, u32), BTreeMap<u64, Vec<WireLine>>>,
    pub completions: Vec<(InstanceId, Completion)>,
    /// Log chunks stored when each completion arrived.
    pub chunks_at_completion: Vec<usize>,
    pub fail_logs: VecDeque<Fail>,
    /// Calls carrying results (`complete`, or `work` with reports) that
    /// answer 503 without storing anything.
    pub fail_complete: u32,
    /// Every call answers 503, as while the server restarts behind a proxy.
    pub down: bool,
}

pub struct FakeState {
    pub inner: Mutex<Inner>,
    queued: Notify,
    tx: mpsc::UnboundedSender<Seen>,
}

impl FakeState {
    fn seen(&self, s: Seen) {
        let _ = self.tx.send(s);
    }
}

pub struct Fake {
    pub url: String,
    pub state: Arc<FakeState>,
    pub seen: mpsc::UnboundedReceiver<Seen>,
}

impl Fake {
    /// Serve on a free port.
    pub async fn start() -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Fake::serve(listener)
    }

    /// Serve on `listener` (a port chosen before the fake starts).
    pub fn serve(listener: tokio::net::TcpListener) -> Fake {
        let (tx, seen) = mpsc::unbounded_channel();
        let state = Arc::new(FakeState {
            inner: Mutex::new(Inner::default()),
            queued: Notify::new(),
            tx,
        });
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route(routes::AGENT_REGISTER, post(register))
            .route(routes::AGENT_CLAIM, post(claim))
            .route(routes::AGENT_WORK, post(work))
            .route(routes::AGENT_HEARTBEAT, post(heartbeat))
            .route(routes::AGENT_LOGS, post(logs))
            .route(routes::AGENT_COMPLETE, post(complete))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { url, state, seen }
    }

    pub fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.inner.lock().unwrap()
    }

    /// Queue a job; an open claim gets it at once.
    pub fn queue(&self, a: Assignment) {
        self.inner().queue.push_back(a);
        self.state.queued.notify_waiters();
    }

    /// Wait until the fake sees something `pick` accepts.
    pub async fn wait<T>(&mut self, what: &str, mut pick: impl FnMut(&Seen) -> Option<T>) -> T {
        let found = tokio::time::timeout(LIMIT, async {
            while let Some(s) = self.seen.recv().await {
                if let Some(t) = pick(&s) {
                    return Some(t);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(t)) => t,
            Ok(None) => panic!("the fake server stopped before: {what}"),
            Err(_) => panic!("timed out waiting for: {what}"),
        }
    }

    /// Wait for a log line of `job` containing `text`.
    pub async fn wait_line(&mut self, job: InstanceId, text: &str) {
        self.wait(&format!("log line `{text}`"), |s| match s {
            Seen::Logs { job: j, lines, .. }
                if *j == job && lines.iter().any(|l| l.text.contains(text)) =>
            {
                Some(())
            }
            _ => None,
        })
        .await
    }

    pub async fn wait_completed(&mut self, job: InstanceId) -> Completion {
        self.wait("completion", |s| match s {
            Seen::Completed(j) if *j == job => Some(()),
            _ => None,
        })
        .await;
        let inner = self.inner();
        inner
            .completions
            .iter()
            .rev()
            .find(|(j, _)| *j == job)
            .map(|(_, c)| c.clone())
            .unwrap()
    }

    /// The stored chunks of an attempt: their seqs and lines, in seq order.
    pub fn chunks(&self, job: InstanceId, attempt: u32) -> Vec<(u64, Vec<WireLine>)> {
        self.inner()
            .logs
            .get(&(job, attempt))
            .map(|m| m.iter().map(|(s, l)| (*s, l.clone())).collect())
            .unwrap_or_default()
    }

    /// Stored lines of an attempt, in order.
    pub fn lines(&self, job: InstanceId, attempt: u32) -> Vec<WireLine> {
        self.chunks(job, attempt)
            .into_iter()
            .flat_map(|(_, l)| l)
            .collect()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let kind = match status {
        StatusCode::CONFLICT => ErrorKind::Stale,
        StatusCode::SERVICE_UNAVAILABLE => ErrorKind::Internal,
        _ => ErrorKind::Other,
    };
    (
        status,
        Json(ErrorBody {
            error: message.to_owned(),
            kind,
        }),
    )
        .into_response()
}

fn unavailable(state: &FakeState, what: &'static str) -> Response {
    state.seen(Seen::Failed(what));
    error(StatusCode::SERVICE_UNAVAILABLE, "down for a moment")
}

async fn register(
    State(state): State<Arc<FakeState>>,
    Json(req): Json<RegisterRequest>,
) -> Response {
    {
        let mut inner = state.inner.lock().unwrap();
        if inner.down {
            drop(inner);
            return unavailable(&state, "register");
        }
        inner.registers.push(req);
    }
    state.seen(Seen::Registered);
    Json(RegisterResponse {
        agent_id: AgentId(1),
        session: SessionSecret::new(SESSION.into()),
        heartbeat_ms: 50,
        lease_ms: 1000,
    })
    .into_response()
}

/// An open long-poll: reports `ClaimAbandoned` if dropped unanswered (the
/// client went away; hyper drops the handler). The flag marks it answered.
struct Open(Arc<FakeState>, bool);

impl Drop for Open {
    fn drop(&mut self) {
        if !self.1 {
            self.0.seen(Seen::ClaimAbandoned);
        }
    }
}

async fn claim(
    State(state): State<Arc<FakeState>>,
    headers: axum::http::HeaderMap,
    Json(req): Json<ClaimRequest>,
) -> Response {
    // Like the server: a claim names its agent by the registration's session.
    if headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) != Some(SESSION) {
        return error(StatusCode::UNAUTHORIZED, "unknown agent session");
    }
    let wait = Duration::from_millis(req.wait_ms);
    {
        let mut inner = state.inner.lock().unwrap();
        if inner.down {
            drop(inner);
            return unavailable(&state, "claim");
        }
        inner.claims.push(req);
    }
    let mut open = Open(state.clone(), false);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = state.queued.notified();
        {
            let mut inner = state.inner.lock().unwrap();
            if let Some(a) = inner.queue.pop_front() {
                inner.leases.insert(a.job, a.attempt);
                drop(inner);
                open.1 = true;
                state.seen(Seen::Claimed(a.job));
                return Json(a).into_response();
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            open.1 = true;
            return StatusCode::NO_CONTENT.into_response();
        }
    }
}

/// Like the server's `work`: each report's last chunk and result (fenced
/// by attempt, a repeat is stale), then a claim of up to
/// `free_capacity` units, long-polled like `claim`. Reports go first
/// into `logs`, `completions` and the `Seen` channel, as if sent apart.
async fn work(
    State(state): State<Arc<FakeState>>,
    headers: axum::http::HeaderMap,
    Json(req): Json<WorkRequest>,
) -> Response {
    if headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) != Some(SESSION) {
        return error(StatusCode::UNAUTHORIZED, "unknown agent session");
    }
    let mut outcomes = Vec::new();
    {
        let mut inner = state.inner.lock().unwrap();
        if inner.down {
            drop(inner);
            let what = if req.reports.is_empty() {
                "work"
            } else {
                "complete"
            };
            return unavailable(&state, what);
        }
        if !req.reports.is_empty() && inner.fail_complete > 0 {
            inner.fail_complete -= 1;
            drop(inner);
            return unavailable(&state, "complete");
        }
        let mut seen = Vec::new();
        for r in &req.reports {
            if inner.leases.get(&r.job) != Some(&r.attempt) {
                outcomes.push(ReportOutcome {
                    job: r.job,
                    attempt: r.attempt,
                    error: Some(ErrorBody {
                        error: "stale attempt".into(),
                        kind: ErrorKind::Stale,
                    }),
                });
                continue;
            }
            if let Some(chunk) = &r.logs {
                let stored = inner.logs.entry((r.job, r.attempt)).or_default();
                let new = !stored.contains_key(&chunk.seq);
                if new {
                    stored.insert(chunk.seq, chunk.lines.clone());
                }
                seen.push(Seen::Logs {
                    job: r.job,
                    seq: chunk.seq,
                    new,
                    lines: chunk.lines.clone(),
                });
            }
            inner.leases.remove(&r.job);
            let stored = inner.logs.get(&(r.job, r.attempt)).map_or(0, |m| m.len());
            inner.chunks_at_completion.push(stored);
            inner.completions.push((
                r.job,
                Completion {
                    attempt: r.attempt,
                    result: r.result.clone(),
                },
            ));
            seen.push(Seen::Completed(r.job));
            outcomes.push(ReportOutcome {
                job: r.job,
                attempt: r.attempt,
                error: None,
            });
        }
        if req.free_capacity > 0 {
            inner.claims.push(ClaimRequest {
                agent_id: req.agent_id,
                free_capacity: req.free_capacity,
                wait_ms: req.wait_ms,
            });
        }
        drop(inner);
        for s in seen {
            state.seen(s);
        }
    }
    if req.free_capacity == 0 {
        return Json(WorkResponse {
            reports: outcomes,
            jobs: Vec::new(),
        })
        .into_response();
    }
    let mut open = Open(state.clone(), false);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms);
    loop {
        let notified = state.queued.notified();
        let mut jobs = Vec::new();
        {
            let mut inner = state.inner.lock().unwrap();
            let mut free = req.free_capacity;
            while let Some(a) = inner.queue.front() {
                let weight = a.workflow.jobs[a.job_index].weight.max(1);
                if weight > free && !jobs.is_empty() {
                    break;
                }
                let a = inner.queue.pop_front().unwrap();
                free = free.saturating_sub(weight);
                inner.leases.insert(a.job, a.attempt);
                jobs.push(a);
                if free == 0 {
                    break;
                }
            }
        }
        if !jobs.is_empty() || req.wait_ms == 0 {
            open.1 = true;
            for a in &jobs {
                state.seen(Seen::Claimed(a.job));
            }
            return Json(WorkResponse {
                reports: outcomes,
                jobs,
            })
            .into_response();
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            open.1 = true;
            return Json(WorkResponse {
                reports: outcomes,
                jobs: Vec::new(),
            })
            .into_response();
        }
    }
}

async fn heartbeat(
    State(state): State<Arc<FakeState>>,
    Path(job): Path<i64>,
    Json(hb): Json<Heartbeat>,
) -> Response {
    let job = InstanceId(job);
    let (down, current, beat) = {
        let inner = state.inner.lock().unwrap();
        (
            inner.down,
            inner.leases.get(&job).copied(),
            inner.beats.get(&job).copied().unwrap_or(Beat::Fine),
        )
    };
    if down {
        return unavailable(&state, "heartbeat");
    }
    let (answered, resp) = if current != Some(hb.attempt) || beat == Beat::Stale {
        (409, error(StatusCode::CONFLICT, "stale attempt"))
    } else {
        let cancel = beat == Beat::Cancel;
        (200, Json(HeartbeatReply { cancel }).into_response())
    };
    state.seen(Seen::Heartbeat { job, answered });
    resp
}

async fn logs(
    State(state): State<Arc<FakeState>>,
    Path(job): Path<i64>,
    Json(chunk): Json<LogChunk>,
) -> Response {
    let job = InstanceId(job);
    let mut inner = state.inner.lock().unwrap();
    if inner.down {
        drop(inner);
        return unavailable(&state, "logs");
    }
    let fail = inner.fail_logs.pop_front();
    if fail == Some(Fail::Drop) {
        drop(inner);
        return unavailable(&state, "logs");
    }
    if inner.leases.get(&job) != Some(&chunk.attempt) {
        return error(StatusCode::CONFLICT, "stale attempt");
    }
    let stored = inner.logs.entry((job, chunk.attempt)).or_default();
    let new = !stored.contains_key(&chunk.seq);
    if new {
        stored.insert(chunk.seq, chunk.lines.clone());
    }
    drop(inner);
    state.seen(Seen::Logs {
        job,
        seq: chunk.seq,
        new,
        lines: chunk.lines,
    });
    if fail == Some(Fail::StoreThenDrop) {
        return unavailable(&state, "logs");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn complete(
    State(state): State<Arc<FakeState>>,
    Path(job): Path<i64>,
    Json(c): Json<Completion>,
) -> Response {
    let job = InstanceId(job);
    let mut inner = state.inner.lock().unwrap();
    if inner.down {
        drop(inner);
        return unavailable(&state, "complete");
    }
    if inner.fail_complete > 0 {
        inner.fail_complete -= 1;
        drop(inner);
        return unavailable(&state, "complete");
    }
    // Like the store: only a running attempt completes, once.
    if inner.leases.get(&job) != Some(&c.attempt) {
        return error(StatusCode::CONFLICT, "stale attempt");
    }
    inner.leases.remove(&job);
    let stored = inner.logs.get(&(job, c.attempt)).map_or(0, |m| m.len());
    inner.chunks_at_completion.push(stored);
    inner.completions.push((job, c));
    drop(inner);
    state.seen(Seen::Completed(job));
    StatusCode::NO_CONTENT.into_response()
}

/// Load a workflow file's text; it must be valid.
pub fn workflow(yaml: &str) -> Workflow {
    let loaded = kiln_pipeline::load::load("test.yml", yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.workflow.unwrap()
}

pub fn assignment(job: i64, attempt: u32, workflow: Workflow) -> Assignment {
    Assignment {
        job: InstanceId(job),
        attempt,
        run: RunId(1),
        repo_name: "demo".into(),
        repo_url: "file:///nonexistent".into(),
        commit: "0".repeat(40),
        name: workflow.jobs[0].id.to_string(),
        workflow,
        job_index: 0,
        contexts: JobContexts {
            github: Value::object([
                ("sha", Value::str("0".repeat(40))),
                ("ref", Value::str("refs/heads/main")),
                ("event_name", Value::str("push")),
            ]),
            ..Default::default()
        },
        lease_ms: 1000,
        heartbeat_ms: 50,
    }
}

pub fn config(server: &str, work_dir: &std::path::Path) -> AgentConfig {
    AgentConfig {
        server: server.to_owned(),
        token: "agent-token".into(),
        name: "test-agent".into(),
        labels: vec!["linux".into()],
        capacity: 2,
        work_dir: work_dir.to_path_buf(),
        kill_grace: Duration::from_secs(5),
        claim_wait: Duration::from_secs(5),
        exec: Default::default(),
    }
}

/// Agent events, as a channel.
pub struct Events(pub mpsc::UnboundedSender<Event>);

impl AgentEvents for Events {
    fn event(&self, event: &Event) {
        let _ = self.0.send(event.clone());
    }
}

pub fn events() -> (Arc<Events>, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(Events(tx)), rx)
}

/// Wait for an agent event that `pick` accepts.
pub async fn wait_event<T>(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(LIMIT, async {
        while let Some(e) = rx.recv().await {
            if let Some(t) = pick(&e) {
                return Some(t);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(t)) => t,
        Ok(None) => panic!("the agent stopped before: {what}"),
        Err(_) => panic!("timed out waiting for agent event: {what}"),
    }
}

/// Output lines (not kiln's own) of stored logs, as (step, stream, text).
pub fn output(lines: &[WireLine]) -> Vec<(u32, LogStream, String)> {
    lines
        .iter()
        .filter(|l| l.stream != LogStream::System)
        .map(|l| (l.step, l.stream, l.text.clone()))
        .collect()
}
