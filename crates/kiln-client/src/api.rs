//! The REST API, for the CLI and anything else that acts for a person: one
//! method per endpoint of [`kiln_proto::routes`], typed with the bodies of
//! [`kiln_proto::api`].
//!
//! Each endpoint is described once, as a [`Call`] built by a function in
//! [`call`]; [`Client::call`] sends it and decodes the answer, and
//! [`Client::call_raw`] also keeps the JSON exactly as the server sent it,
//! so that `--json` output passes the server's document through unchanged
//! (fields this client does not know included) while still checking its
//! shape. The plain methods (`repos`, `run`, …) are `call` with the matching
//! description.
//!
//! The live log stream ([`Client::follow_logs`]) is Server-Sent Events,
//! parsed by [`sse`]: each `data:` is a JSON [`LogEntry`]; an event named
//! `end` carries the run's final status and closes the stream.

pub mod sse;

use crate::{Client, ClientError, Result};
use kiln_model::{InstanceId, JobStatus, RunId};
use kiln_proto::api::{
    AddRepo, AgentInfo, CreateToken, CreatedToken, ForgeSettings, LogEntry, LogsPage, QueuedJob,
    RepoInfo, RetryRequest, RunDetail, RunSummary, TriggerRequest, TriggerResponse,
};
use kiln_proto::results::RunResult;
use kiln_proto::routes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sse::{SseEvent, SseParser};
use std::collections::VecDeque;
use std::marker::PhantomData;

/// One request to the API and the type of its answer.
#[derive(Debug)]
pub struct Call<T> {
    method: reqwest::Method,
    path: String,
    query: Vec<(&'static str, String)>,
    /// The JSON body, or why it could not be built.
    body: std::result::Result<Option<serde_json::Value>, String>,
    answer: PhantomData<fn() -> T>,
}

impl<T> Call<T> {
    fn get(path: String) -> Call<T> {
        Call {
            method: reqwest::Method::GET,
            path,
            query: Vec::new(),
            body: Ok(None),
            answer: PhantomData,
        }
    }

    fn post<B: Serialize + ?Sized>(path: String, body: &B) -> Call<T> {
        Call {
            method: reqwest::Method::POST,
            path,
            query: Vec::new(),
            body: serde_json::to_value(body)
                .map(Some)
                .map_err(|e| e.to_string()),
            answer: PhantomData,
        }
    }

    fn put<B: Serialize + ?Sized>(path: String, body: &B) -> Call<T> {
        Call {
            method: reqwest::Method::PUT,
            ..Call::post(path, body)
        }
    }

    fn delete(path: String) -> Call<T> {
        Call {
            method: reqwest::Method::DELETE,
            ..Call::get(path)
        }
    }

    fn query(mut self, key: &'static str, value: Option<String>) -> Call<T> {
        if let Some(v) = value {
            self.query.push((key, v));
        }
        self
    }

    /// The path with its query string, as sent (`/api/v1/runs?limit=20`).
    pub fn path_and_query(&self) -> String {
        let mut s = self.path.clone();
        for (i, (k, v)) in self.query.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(k);
            s.push('=');
            s.push_str(&encode(v));
        }
        s
    }

    pub fn method(&self) -> &reqwest::Method {
        &self.method
    }
}

/// An answer both decoded and as the server sent it.
#[derive(Clone, Debug)]
pub struct Raw<T> {
    pub value: T,
    pub json: serde_json::Value,
}

/// Which runs `GET /api/v1/runs` lists; newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunsFilter {
    pub repo: Option<String>,
    pub limit: Option<u32>,
}

/// The description of every endpoint of the public API.
pub mod call {
    use super::*;

    pub fn repos() -> Call<Vec<RepoInfo>> {
        Call::get(routes::REPOS.to_owned())
    }
    pub fn add_repo(req: &AddRepo) -> Call<RepoInfo> {
        Call::post(routes::REPOS.to_owned(), req)
    }
    /// Set a repository's forge (the token goes to the server only).
    pub fn set_repo_forge(repo: &str, req: &ForgeSettings) -> Call<RepoInfo> {
        Call::put(routes::repo_forge(&encode(repo)), req)
    }
    /// Remove a repository's forge.
    pub fn remove_repo_forge(repo: &str) -> Call<RepoInfo> {
        Call::delete(routes::repo_forge(&encode(repo)))
    }
    pub fn trigger(repo: &str, req: &TriggerRequest) -> Call<TriggerResponse> {
        Call::post(routes::repo_trigger(&encode(repo)), req)
    }
    pub fn runs(filter: &RunsFilter) -> Call<Vec<RunSummary>> {
        Call::get(routes::RUNS.to_owned())
            .query("repo", filter.repo.clone())
            .query("limit", filter.limit.map(|n| n.to_string()))
    }
    pub fn run(id: RunId) -> Call<RunDetail> {
        Call::get(routes::run(id))
    }
    pub fn run_results(id: RunId) -> Call<RunResult> {
        Call::get(routes::run_results(id))
    }
    /// Stored output after `after` (a cursor from an earlier page; `None`
    /// for the beginning), of one job or of every job.
    pub fn run_logs(id: RunId, job: Option<InstanceId>, after: Option<i64>) -> Call<LogsPage> {
        Call::get(routes::run_logs(id))
            .query("job", job.map(|j| j.to_string()))
            .query("after", after.map(|a| a.to_string()))
    }
    pub fn cancel_run(id: RunId) -> Call<RunSummary> {
        Call::post(routes::run_cancel(id), &serde_json::json!({}))
    }
    /// Answers the new run.
    pub fn retry_run(id: RunId, req: &RetryRequest) -> Call<RunSummary> {
        Call::post(routes::run_retry(id), req)
    }
    pub fn approve(id: RunId, req: &kiln_proto::api::ApproveRequest) -> Call<RunDetail> {
        Call::post(routes::run_approve(id), req)
    }
    pub fn deploy(repo: &str, req: &kiln_proto::api::DeployRequest) -> Call<TriggerResponse> {
        Call::post(routes::repo_deploy(&encode(repo)), req)
    }
    pub fn environments(repo: &str) -> Call<Vec<kiln_proto::api::EnvironmentInfo>> {
        Call::get(routes::repo_environments(&encode(repo)))
    }
    pub fn agents() -> Call<Vec<AgentInfo>> {
        Call::get(routes::AGENTS.to_owned())
    }
    pub fn queue() -> Call<Vec<QueuedJob>> {
        Call::get(routes::QUEUE.to_owned())
    }
    pub fn create_token(req: &CreateToken) -> Call<CreatedToken> {
        Call::post(routes::TOKENS.to_owned(), req)
    }
}

/// What the live log stream yields.
#[derive(Clone, Debug, PartialEq)]
pub enum LogEvent {
    Entry(LogEntry),
    /// The run finished with this status; the stream is over.
    End(JobStatus),
}

/// A run's live output; read it with [`LogFollower::next`].
#[derive(Debug)]
pub struct LogFollower {
    resp: reqwest::Response,
    base: String,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
    ended: bool,
}

impl LogFollower {
    /// The next line or the end of the run; `Ok(None)` when the connection
    /// closed without an `end` event (the server went away: look at the run
    /// to learn whether it finished).
    pub async fn next(&mut self) -> Result<Option<LogEvent>> {
        loop {
            if self.ended {
                return Ok(None);
            }
            while let Some(ev) = self.pending.pop_front() {
                if let Some(out) = decode_event(&ev)? {
                    if let LogEvent::End(_) = out {
                        self.ended = true;
                    }
                    return Ok(Some(out));
                }
            }
            let chunk = self
                .resp
                .chunk()
                .await
                .map_err(|e| ClientError::Unreachable {
                    url: self.base.clone(),
                    message: e.to_string(),
                })?;
            match chunk {
                Some(bytes) => {
                    let mut out = Vec::new();
                    self.parser.feed(&bytes, &mut out);
                    self.pending.extend(out);
                }
                None => {
                    self.ended = true;
                    return Ok(None);
                }
            }
        }
    }
}

/// A log event from an SSE event; `None` for events this client does not
/// know (keep-alives, future additions).
pub fn decode_event(ev: &SseEvent) -> Result<Option<LogEvent>> {
    match ev.event.as_str() {
        "message" => serde_json::from_str::<LogEntry>(&ev.data)
            .map(|e| Some(LogEvent::Entry(e)))
            .map_err(|e| ClientError::Protocol(format!("log entry: {e}"))),
        "end" => {
            let status = ev.data.trim().trim_matches('"');
            serde_json::from_value::<JobStatus>(serde_json::Value::String(status.to_owned()))
                .map(|s| Some(LogEvent::End(s)))
                .map_err(|_| {
                    ClientError::Protocol(format!("unknown final status `{status}` in `end` event"))
                })
        }
        _ => Ok(None),
    }
}

impl Client {
    /// Send `call` and decode its answer.
    pub async fn call<T: DeserializeOwned>(&self, call: &Call<T>) -> Result<T> {
        self.json(self.build(call)?).await
    }

    /// Send `call`; keep the server's JSON beside the decoded answer.
    pub async fn call_raw<T: DeserializeOwned>(&self, call: &Call<T>) -> Result<Raw<T>> {
        let json: serde_json::Value = self.json(self.build(call)?).await?;
        let value = serde_json::from_value::<T>(json.clone())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Raw { value, json })
    }

    fn build<T>(&self, call: &Call<T>) -> Result<reqwest::RequestBuilder> {
        let req = self.request(call.method.clone(), &call.path_and_query());
        match &call.body {
            Ok(Some(body)) => Ok(req.json(body)),
            Ok(None) => Ok(req),
            Err(e) => Err(ClientError::Protocol(format!(
                "cannot encode the request: {e}"
            ))),
        }
    }

    pub async fn repos(&self) -> Result<Vec<RepoInfo>> {
        self.call(&call::repos()).await
    }
    pub async fn add_repo(&self, req: &AddRepo) -> Result<RepoInfo> {
        self.call(&call::add_repo(req)).await
    }
    pub async fn trigger(&self, repo: &str, req: &TriggerRequest) -> Result<TriggerResponse> {
        self.call(&call::trigger(repo, req)).await
    }
    pub async fn runs(&self, filter: &RunsFilter) -> Result<Vec<RunSummary>> {
        self.call(&call::runs(filter)).await
    }
    pub async fn run(&self, id: RunId) -> Result<RunDetail> {
        self.call(&call::run(id)).await
    }
    pub async fn run_results(&self, id: RunId) -> Result<RunResult> {
        self.call(&call::run_results(id)).await
    }
    pub async fn run_logs(
        &self,
        id: RunId,
        job: Option<InstanceId>,
        after: Option<i64>,
    ) -> Result<LogsPage> {
        self.call(&call::run_logs(id, job, after)).await
    }
    pub async fn cancel_run(&self, id: RunId) -> Result<RunSummary> {
        self.call(&call::cancel_run(id)).await
    }
    pub async fn retry_run(&self, id: RunId, req: &RetryRequest) -> Result<RunSummary> {
        self.call(&call::retry_run(id, req)).await
    }
    pub async fn agents(&self) -> Result<Vec<AgentInfo>> {
        self.call(&call::agents()).await
    }
    pub async fn queue(&self) -> Result<Vec<QueuedJob>> {
        self.call(&call::queue()).await
    }
    pub async fn create_token(&self, req: &CreateToken) -> Result<CreatedToken> {
        self.call(&call::create_token(req)).await
    }

    /// Follow a run's output live, from its first line, until it finishes.
    pub async fn follow_logs(&self, id: RunId, job: Option<InstanceId>) -> Result<LogFollower> {
        let call =
            Call::<()>::get(routes::run_logs_stream(id)).query("job", job.map(|j| j.to_string()));
        let req = self
            .request(reqwest::Method::GET, &call.path_and_query())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        match self.send_raw(req).await? {
            Some(resp) => Ok(LogFollower {
                resp,
                base: self.base.clone(),
                parser: SseParser::new(),
                pending: VecDeque::new(),
                ended: false,
            }),
            None => Err(ClientError::Protocol(
                "empty answer (204) to the log stream".into(),
            )),
        }
    }
}

/// Percent-encode everything but the unreserved characters (RFC 3986), for
/// a path segment or a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries() {
        assert_eq!(call::repos().path_and_query(), "/api/v1/repos");
        assert_eq!(
            call::runs(&RunsFilter {
                repo: Some("my repo".into()),
                limit: Some(5)
            })
            .path_and_query(),
            "/api/v1/runs?repo=my%20repo&limit=5"
        );
        assert_eq!(
            call::runs(&RunsFilter::default()).path_and_query(),
            "/api/v1/runs"
        );
        assert_eq!(
            call::run_logs(RunId(3), Some(InstanceId(9)), Some(120)).path_and_query(),
            "/api/v1/runs/3/logs?job=9&after=120"
        );
        assert_eq!(
            call::trigger("a/b", &TriggerRequest::default()).path_and_query(),
            "/api/v1/repos/a%2Fb/trigger"
        );
        assert_eq!(call::cancel_run(RunId(4)).method(), reqwest::Method::POST);
        let set = call::set_repo_forge(
            "a/b",
            &ForgeSettings {
                kind: kiln_proto::api::ForgeKind::Github,
                api_url: None,
                repo: None,
                token: "t".into(),
            },
        );
        assert_eq!(set.path_and_query(), "/api/v1/repos/a%2Fb/forge");
        assert_eq!(set.method(), reqwest::Method::PUT);
        assert_eq!(
            call::remove_repo_forge("a").method(),
            reqwest::Method::DELETE
        );
    }

    #[test]
    fn end_event_status_plain_or_quoted() {
        for data in ["success", "\"success\"", " success\n"] {
            let ev = SseEvent {
                event: "end".into(),
                data: data.into(),
                id: None,
            };
            assert_eq!(
                decode_event(&ev).ok().flatten(),
                Some(LogEvent::End(JobStatus::Success))
            );
        }
        let bad = SseEvent {
            event: "end".into(),
            data: "exploded".into(),
            id: None,
        };
        assert!(decode_event(&bad).is_err());
        let ping = SseEvent {
            event: "ping".into(),
            data: "".into(),
            id: None,
        };
        assert!(matches!(decode_event(&ping), Ok(None)));
    }
}
