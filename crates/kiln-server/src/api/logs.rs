//! Logs of a run: a page from the store, or a live Server-Sent Events
//! stream (`kiln logs -f`). The stream replays what is stored, then, each
//! time the run's signal fires (a chunk was stored, the run changed; see
//! `kiln_engine::signals`), reads the store again from its cursor (the last
//! stored chunk id): every line is sent once and in order, and nothing but
//! the store is read, so any server on the database can serve it. It ends
//! with an `end` event carrying the run's status.

use super::AppState;
use crate::error::ApiResult;
use crate::signals::{Listener, Topic};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use kiln_model::{InstanceId, RunId};
use kiln_proto::api::{LogEntry, LogsPage, Role};
use kiln_proto::routes as r;
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use super::openapi::ApiErrors;

/// `?job=ID&after=CURSOR`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only this job instance's lines.
    job: Option<InstanceId>,
    /// Only lines stored after this cursor (a page's `cursor`); default 0.
    after: Option<i64>,
}

#[utoipa::path(
    get,
    path = r::RUN_LOGS,
    operation_id = "run_logs",
    tag = "runs",
    summary = "Stored log lines, oldest first",
    extensions(("x-kiln-role" = json!("viewer"))),
    params(("run" = RunId, Path, description = "The run's id"), LogQuery),
    responses(
        (status = 200, description = "A page of lines; pass `cursor` back as `after`", body = LogsPage),
        ApiErrors,
    )
)]
pub async fn page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(run): Path<RunId>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<LogsPage>> {
    s.require(&headers, Role::Viewer).await?;
    s.engine.store.run(run).await?;
    let p = s
        .engine
        .store
        .logs(run, q.job, q.after.unwrap_or(0))
        .await?;
    Ok(Json(LogsPage {
        entries: p.entries,
        cursor: p.cursor,
    }))
}

fn data(e: &LogEntry) -> SseEvent {
    SseEvent::default().data(serde_json::to_string(e).unwrap_or_default())
}

#[utoipa::path(
    get,
    path = r::RUN_LOGS_STREAM,
    operation_id = "stream_run_logs",
    tag = "runs",
    summary = "Live log lines as Server-Sent Events",
    description = "Replays the stored lines, then follows; every line is sent once and in order.",
    extensions(("x-kiln-role" = json!("viewer"))),
    params(("run" = RunId, Path, description = "The run's id"), LogQuery),
    responses(
        (status = 200, description = "An event stream: each `data` is a `LogEntry` as JSON; a last `end` event carries the run's status", content_type = "text/event-stream", body = LogEntry),
        ApiErrors,
    )
)]
pub async fn stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(run): Path<RunId>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    s.require(&headers, Role::Viewer).await?;
    s.engine.store.run(run).await?;
    // Listen before reading the store, so nothing falls between the two.
    let rx = s.engine.signals.listen(Topic::Run(run));
    let stream = follow(s.engine.clone(), run, q.job, rx);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn follow(
    engine: std::sync::Arc<crate::engine::Engine>,
    run: RunId,
    job: Option<InstanceId>,
    rx: Listener,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    /// The stored chunk id is the cursor: reading "after cursor" on every
    /// wake-up delivers each line once, in order, however many signals
    /// came (or were lost).
    struct S {
        engine: std::sync::Arc<crate::engine::Engine>,
        rx: Listener,
        cursor: i64,
        pending: VecDeque<SseEvent>,
        started: bool,
        done: bool,
    }
    impl S {
        async fn catch_up(&mut self, run: RunId, job: Option<InstanceId>) -> bool {
            match self.engine.store.logs(run, job, self.cursor).await {
                Ok(page) => {
                    self.cursor = page.cursor;
                    self.pending.extend(page.entries.iter().map(data));
                    true
                }
                Err(_) => false,
            }
        }
        fn end(&mut self, status: &str) {
            self.pending
                .push_back(SseEvent::default().event("end").data(status));
            self.done = true;
        }
    }
    let init = S {
        engine,
        rx,
        cursor: 0,
        pending: VecDeque::new(),
        started: false,
        done: false,
    };
    futures_util::stream::unfold(init, move |mut s| async move {
        loop {
            if let Some(ev) = s.pending.pop_front() {
                return Some((Ok(ev), s));
            }
            if s.done {
                return None;
            }
            if s.started {
                s.rx.changed().await;
            }
            s.started = true;
            if !s.catch_up(run, job).await {
                return None;
            }
            match s.engine.store.run_head(run).await {
                Ok(rec) if rec.status.is_terminal() => {
                    // Lines stored just before the end are in the store.
                    s.catch_up(run, job).await;
                    s.end(rec.status.as_str());
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
}
