//! `priority:` and `retry:` load into the IR with their defaults.

use kiln_model::{RetryOn, RetryPolicy};
use kiln_pipeline::load;

#[test]
fn priority_and_retry_load_with_their_defaults() {
    let src = "on: push
priority: 10
jobs:
  plain:
    runs-on: local
    steps: [{run: make}]
  urgent:
    runs-on: local
    priority: -3
    retry: 1
    steps: [{run: make}]
  flaky:
    runs-on: local
    retry:
      on: [agent-lost, checkout, timeout, {exit-code: [1, 137]}, other]
    steps: [{run: make test}]
  any-exit:
    runs-on: local
    retry: {max: 0, on: exit-code}
    steps: [{run: make test}]
";
    let loaded = load::load("q.yml", src);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let wf = loaded.workflow.unwrap();
    assert_eq!(wf.priority, Some(10));
    let [plain, urgent, flaky, any] = &wf.jobs[..] else {
        panic!("four jobs");
    };
    assert_eq!(plain.priority, None);
    assert_eq!(wf.priority_of(plain, 7), 10);
    assert_eq!(wf.priority_of(urgent, 7), -3);
    assert_eq!(plain.retry, None);
    assert_eq!(urgent.retry, Some(RetryPolicy::infrastructure(1)));
    assert_eq!(
        flaky.retry,
        Some(RetryPolicy {
            max: 2,
            on: vec![
                RetryOn::AgentLost,
                RetryOn::Checkout,
                RetryOn::Timeout,
                RetryOn::ExitCode(vec![1, 137]),
                RetryOn::Other,
            ],
        })
    );
    assert_eq!(
        any.retry,
        Some(RetryPolicy {
            max: 0,
            on: vec![RetryOn::ExitCode(Vec::new())],
        })
    );
}

#[test]
fn a_class_listed_twice_is_a_warning() {
    let src = "on: push
jobs:
  j:
    runs-on: local
    retry: {on: [timeout, timeout]}
    steps: [{run: make}]
";
    let loaded = load::load("q.yml", src);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.diagnostics.len(), 1);
    assert_eq!(loaded.diagnostics[0].loc.line, 5);
}
