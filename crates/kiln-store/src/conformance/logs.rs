//! Cases: log chunks: idempotence, cursor paging, order, round trips,
//! fencing.

use super::fixtures::*;
use crate::ports::Store;
use jiff::Timestamp;
use kiln_model::{InstanceId, JobStatus, RunId};
use kiln_proto::api::LogStream;

/// A chunk sent twice is stored once (the first copy wins), also after the
/// job completed (a retried upload may arrive late).
pub async fn logs_are_idempotent<S: Store + 'static>(s: S) {
    let (run, job, agent) = claimed(&s).await;
    let id = job.id;
    s.append_logs(
        id,
        agent.id,
        1,
        0,
        &[line(id, 1, 1, "one"), line(id, 1, 1, "two")],
    )
    .await
    .unwrap();
    s.append_logs(
        id,
        agent.id,
        1,
        0,
        &[line(id, 1, 1, "one"), line(id, 1, 1, "two")],
    )
    .await
    .unwrap();
    s.append_logs(id, agent.id, 1, 0, &[line(id, 1, 1, "different")])
        .await
        .unwrap();
    s.complete(id, agent.id, 1, job_result(JobStatus::Success, 1), t(20))
        .await
        .unwrap();
    s.append_logs(id, agent.id, 1, 1, &[line(id, 1, 2, "three")])
        .await
        .unwrap();
    s.append_logs(id, agent.id, 1, 1, &[line(id, 1, 2, "three")])
        .await
        .unwrap();
    let page = s.logs(run.id, None, 0).await.unwrap();
    assert_eq!(texts(&page), vec!["one", "two", "three"]);
    assert_not_found(
        s.append_logs(InstanceId(id.0 + 1000), agent.id, 1, 0, &[])
            .await,
    );
}

/// Paging: `cursor` moves past every chunk returned; asking again with it
/// gives only chunks stored since (or nothing, with the same cursor).
/// Lines come in (instance, attempt, seq) order whatever the arrival
/// order; `instance` filters.
pub async fn logs_page_by_cursor<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (run, instances) = run_with_queued(&s, &repo, 2).await;
    let agent = add_agent(&s, "agent-1").await;
    let (a, b) = (instances[0].id, instances[1].id);
    s.claim(a, agent.id, t(10), t(40)).await.unwrap().unwrap();
    s.claim(b, agent.id, t(10), t(40)).await.unwrap().unwrap();

    let empty = s.logs(run.id, None, 0).await.unwrap();
    assert!(empty.entries.is_empty());
    assert_eq!(empty.cursor, 0);

    s.append_logs(b, agent.id, 1, 0, &[line(b, 1, 1, "b0")])
        .await
        .unwrap();
    s.append_logs(a, agent.id, 1, 1, &[line(a, 1, 1, "a1")])
        .await
        .unwrap();
    s.append_logs(
        a,
        agent.id,
        1,
        0,
        &[line(a, 1, 1, "a0-x"), line(a, 1, 1, "a0-y")],
    )
    .await
    .unwrap();
    let first = s.logs(run.id, None, 0).await.unwrap();
    assert_eq!(texts(&first), vec!["a0-x", "a0-y", "a1", "b0"]);
    assert!(first.cursor > 0);

    let nothing = s.logs(run.id, None, first.cursor).await.unwrap();
    assert!(nothing.entries.is_empty());
    assert_eq!(nothing.cursor, first.cursor);

    s.append_logs(a, agent.id, 1, 2, &[line(a, 1, 2, "a2")])
        .await
        .unwrap();
    s.append_logs(b, agent.id, 1, 1, &[line(b, 1, 2, "b1")])
        .await
        .unwrap();
    let second = s.logs(run.id, None, first.cursor).await.unwrap();
    assert_eq!(texts(&second), vec!["a2", "b1"]);
    assert!(second.cursor > first.cursor);

    let only_b = s.logs(run.id, Some(b), 0).await.unwrap();
    assert_eq!(texts(&only_b), vec!["b0", "b1"]);
    let b_since = s.logs(run.id, Some(b), first.cursor).await.unwrap();
    assert_eq!(texts(&b_since), vec!["b1"]);
    assert_eq!(
        texts(&s.logs(run.id, None, 0).await.unwrap()),
        vec!["a0-x", "a0-y", "a1", "a2", "b0", "b1"]
    );

    // Another run's lines never show.
    let (other, other_instances) = run_with_queued(&s, &repo, 1).await;
    let o = other_instances[0].id;
    s.claim(o, agent.id, t(10), t(40)).await.unwrap().unwrap();
    s.append_logs(o, agent.id, 1, 0, &[line(o, 1, 1, "other")])
        .await
        .unwrap();
    assert_eq!(
        texts(&s.logs(other.id, None, 0).await.unwrap()),
        vec!["other"]
    );
    assert_eq!(
        s.logs(run.id, None, second.cursor)
            .await
            .unwrap()
            .entries
            .len(),
        0
    );
    assert_not_found(s.logs(RunId(other.id.0 + 1000), None, 0).await);
}

/// Lines come back exactly: every field, unicode, control characters,
/// empty and very long lines, empty chunks.
pub async fn logs_round_trip<S: Store + 'static>(s: S) {
    let (run, job, agent) = claimed(&s).await;
    let id = job.id;
    let long = "kiln ✓ ".repeat(40_000);
    let mut lines = vec![
        line(id, 1, 0, "system: job started"),
        line(id, 1, 1, "héllo wörld — 日本語 — 🔥🚀"),
        line(id, 1, 1, ""),
        line(id, 1, 1, "tab\tcarriage\rbell\u{7}nul\u{0}end"),
        line(id, 1, 2, &long),
    ];
    lines[0].stream = LogStream::System;
    lines[3].stream = LogStream::Stderr;
    lines[4].at = Timestamp::from_microsecond(1_700_000_000_999_999).unwrap();
    s.append_logs(id, agent.id, 1, 0, &lines).await.unwrap();
    s.append_logs(id, agent.id, 1, 1, &[]).await.unwrap();
    let page = s.logs(run.id, Some(id), 0).await.unwrap();
    assert_eq!(page.entries, lines);
}

/// Logs are fenced by the attempt number only: the current attempt may
/// write (even after completion), an older or newer one is Stale.
pub async fn logs_fenced_by_attempt<S: Store + 'static>(s: S) {
    let (run, job, agent) = claimed(&s).await;
    let id = job.id;
    assert_stale(
        s.append_logs(id, agent.id, 2, 0, &[line(id, 2, 1, "future")])
            .await,
    );
    s.append_logs(id, agent.id, 1, 0, &[line(id, 1, 1, "first try")])
        .await
        .unwrap();
    s.expire_leases(t(41)).await.unwrap();
    s.claim(id, agent.id, t(50), t(80)).await.unwrap().unwrap();
    assert_stale(
        s.append_logs(id, agent.id, 1, 1, &[line(id, 1, 1, "late")])
            .await,
    );
    s.append_logs(id, agent.id, 2, 0, &[line(id, 2, 1, "second try")])
        .await
        .unwrap();
    assert_eq!(
        texts(&s.logs(run.id, None, 0).await.unwrap()),
        vec!["first try", "second try"]
    );
}
