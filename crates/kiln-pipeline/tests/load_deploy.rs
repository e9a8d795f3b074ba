//! `environment.approval`, `environment.health-check` and `rollback:` load
//! into the IR with their defaults.

use kiln_model::workflow::Dyn;
use kiln_pipeline::load;

#[test]
fn health_check_rollback_and_approval_load_with_defaults() {
    let src = "on: push
jobs:
  deploy:
    runs-on: local
    environment:
      name: production
      approval: ${{ contains(github.event.head_commit.message, '[major]') }}
      health-check:
        run: curl -fsS http://localhost:8080/health
        retries: 5
        interval: 500ms
        timeout: 1m
    steps:
      - id: ship
        run: ./deploy.sh
    rollback:
      - id: undo
        run: ./deploy.sh \"$KILN_ROLLBACK_TO\"
  plain:
    runs-on: local
    environment:
      name: staging
      approval: true
      health-check:
        run: ./check.sh
        interval: 2
    steps:
      - run: ./deploy.sh
";
    let loaded = load::load("d.yml", src);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let wf = loaded.workflow.unwrap();
    let env = wf.jobs[0].environment.as_ref().unwrap();
    assert!(matches!(env.approval, Dyn::Expr(_)));
    let hc = env.health_check.as_ref().unwrap();
    assert_eq!(hc.run.src, "curl -fsS http://localhost:8080/health");
    assert_eq!(
        (hc.retries, hc.interval_ms, hc.timeout_ms),
        (5, 500, 60_000)
    );
    assert_eq!(wf.jobs[0].rollback.len(), 1);
    let env = wf.jobs[1].environment.as_ref().unwrap();
    assert_eq!(env.approval, Dyn::Lit(true));
    let hc = env.health_check.as_ref().unwrap();
    assert_eq!(
        (hc.retries, hc.interval_ms, hc.timeout_ms),
        (3, 2_000, 30_000)
    );
    assert!(wf.jobs[1].rollback.is_empty());
}
