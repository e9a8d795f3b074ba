//! Cases: forge settings per repository and the outbox of forge reports.

use super::fixtures::*;
use crate::ports::{Store, StoreError};
use crate::types::*;
use kiln_model::{RepoId, RunId};
use kiln_proto::api::ForgeKind;

fn forge_of(repo: RepoId, kind: ForgeKind, at: i64) -> ForgeRecord {
    ForgeRecord {
        repo,
        kind,
        api_url: "https://api.github.com".into(),
        full_name: "octo/alpha".into(),
        token: SealedSecret {
            nonce: vec![1; 12],
            ciphertext: vec![0, 255, 7, 42],
        },
        updated_at: t(at),
    }
}

/// Forge settings: set, read back exactly (bytes included), replace,
/// list, remove; an unknown repository is NotFound.
pub async fn forges_set_replace_remove<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    let b = add_repo(&s, "beta").await;
    assert_eq!(s.forge(a.id).await.unwrap(), None);
    let fa = forge_of(a.id, ForgeKind::Github, 1);
    s.set_forge(&fa).await.unwrap();
    assert_eq!(s.forge(a.id).await.unwrap(), Some(fa.clone()));
    let mut fa2 = forge_of(a.id, ForgeKind::Gitlab, 2);
    fa2.api_url = "https://gitlab.example.com/api/v4".into();
    fa2.full_name = "group/sub/alpha".into();
    fa2.token.ciphertext = vec![9; 40];
    s.set_forge(&fa2).await.unwrap();
    assert_eq!(s.forge(a.id).await.unwrap(), Some(fa2.clone()));
    let fb = forge_of(b.id, ForgeKind::Forgejo, 3);
    s.set_forge(&fb).await.unwrap();
    assert_eq!(s.forges().await.unwrap(), vec![fa2, fb.clone()]);
    assert!(s.remove_forge(a.id).await.unwrap());
    assert!(!s.remove_forge(a.id).await.unwrap());
    assert_eq!(s.forge(a.id).await.unwrap(), None);
    assert_eq!(s.forges().await.unwrap(), vec![fb]);
    assert!(matches!(
        s.set_forge(&forge_of(RepoId(999_999), ForgeKind::Gitea, 4))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// The outbox: a request makes a run due; a failure backs it off and
/// keeps the error and the comment id; a delivery of an older request
/// leaves the run due; the delivery of the latest clears it.
pub async fn forge_reports_outbox<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    let r1 = s.create_run(new_run(&a, t(0))).await.unwrap();
    let r2 = s.create_run(new_run(&a, t(0))).await.unwrap();
    assert_eq!(s.report(r1.id).await.unwrap(), None);
    assert!(s.reports_due(t(100), 10).await.unwrap().is_empty());

    s.report_requested(r1.id, t(1)).await.unwrap();
    s.report_requested(r2.id, t(2)).await.unwrap();
    assert!(s.reports_due(t(0), 10).await.unwrap().is_empty());
    let due = s.reports_due(t(5), 10).await.unwrap();
    assert_eq!(
        due.iter().map(|r| r.run).collect::<Vec<_>>(),
        [r1.id, r2.id]
    );
    let first = due[0].clone();
    assert_eq!(
        first,
        ForgeReport {
            run: r1.id,
            seq: first.seq,
            due: true,
            attempts: 0,
            next_at: t(1),
            last_error: None,
            comment_id: None,
        }
    );
    assert_eq!(s.reports_due(t(5), 1).await.unwrap().len(), 1);

    // Fail twice: backed off, error kept, comment id remembered.
    s.report_failed(r1.id, "forge unavailable: 502", t(10), Some(77))
        .await
        .unwrap();
    s.report_failed(r1.id, "forge unavailable: 503", t(20), None)
        .await
        .unwrap();
    let now = s.report(r1.id).await.unwrap().unwrap();
    assert_eq!(now.attempts, 2);
    assert_eq!(now.last_error.as_deref(), Some("forge unavailable: 503"));
    assert_eq!(now.comment_id, Some(77));
    assert_eq!(now.next_at, t(20));
    assert!(now.due);
    let due: Vec<RunId> = s
        .reports_due(t(15), 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.run)
        .collect();
    assert_eq!(due, [r2.id]);

    // News while backing off: due at once, and a delivery of the old
    // request does not clear it.
    s.report_requested(r1.id, t(12)).await.unwrap();
    let newer = s.report(r1.id).await.unwrap().unwrap();
    assert!(newer.seq > first.seq);
    assert_eq!(newer.next_at, t(12));
    s.report_delivered(r1.id, first.seq, None).await.unwrap();
    let after = s.report(r1.id).await.unwrap().unwrap();
    assert!(after.due);
    assert_eq!(after.attempts, 0);
    assert_eq!(after.last_error, None);
    assert_eq!(after.comment_id, Some(77));
    s.report_delivered(r1.id, newer.seq, None).await.unwrap();
    let done = s.report(r1.id).await.unwrap().unwrap();
    assert!(!done.due);
    assert_eq!(done.comment_id, Some(77));
    assert_eq!(
        s.reports_due(t(100), 10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.run)
            .collect::<Vec<_>>(),
        [r2.id]
    );

    assert!(matches!(
        s.report_requested(RunId(999_999), t(1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.report_delivered(RunId(999_999), 1, None).await,
        Err(StoreError::NotFound(_))
    ));
}
