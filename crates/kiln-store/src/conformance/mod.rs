//! The conformance suite: the behaviour every [`Store`] adapter must have,
//! one public function per behaviour. An adapter's tests run it with
//! [`conformance_tests!`](crate::conformance_tests) (one `#[tokio::test]`
//! per behaviour, each on a fresh store) or [`run_all`] (all of them in one
//! test).
//!
//! Each case gets an empty store and owns it. Timestamps are whole
//! microseconds, the precision every adapter keeps. Where a port leaves an
//! order or a choice open, the suite does not pin it; where this module's
//! cases pin something the port docs do not spell out, the case's doc says
//! so (it is then part of the contract).

mod claim;
mod fixtures;
mod forges;
mod gates;
mod logs;
mod queue;
mod records;
mod retry;
mod transitions;
mod triggers;

pub use claim::*;
pub use forges::*;
pub use gates::*;
pub use logs::*;
pub use queue::*;
pub use records::*;
pub use retry::*;
pub use transitions::*;
pub use triggers::*;

use crate::ports::Store;
use std::future::Future;

/// Runs every case in turn, each on a store from `new_store`. The second
/// half of the pair is kept alive until the case ends (a temporary
/// directory, a scratch schema) and then dropped.
pub async fn run_all<S, G, F, Fut>(mut new_store: F)
where
    S: Store + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = (S, G)>,
{
    macro_rules! run_cases {
        ([] $($case:ident),* $(,)?) => {
            $(
                let (store, guard) = new_store().await;
                $case(store).await;
                drop(guard);
            )*
        };
    }
    crate::__conformance_cases!(run_cases;);
}

/// The list of cases, handed to `$then` after `[$args]`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($then:path; $($args:tt)*) => {
        $then! { [$($args)*]
            repos_add_duplicate_list,
            runs_create_read_list,
            timestamps_keep_microseconds,
            apply_checks_the_version,
            apply_is_all_or_nothing,
            transition_creates_instances,
            candidates_are_fifo,
            claim_records_the_attempt,
            claim_is_exclusive,
            claim_next_is_not_stalled_by_unmatchable_jobs,
            claim_next_follows_the_reference_rules,
            claim_next_round_robin_between_repositories,
            claim_batch_fills_the_free_capacity,
            complete_many_records_each_report_on_its_own,
            fencing_rejects_old_attempts,
            fencing_binds_attempts_to_their_agent,
            lost_agents_are_recorded,
            cancel_queued_and_running,
            complete_until_applied,
            expire_requeues_then_gives_up,
            expire_cancelled_job,
            complete_requeues_what_the_policy_retries,
            complete_succeeds_after_a_retry,
            complete_ends_what_the_policy_does_not_retry,
            expire_follows_the_retry_policy,
            extend_all_leases,
            running_by_agent,
            logs_are_idempotent,
            logs_page_by_cursor,
            logs_round_trip,
            logs_fenced_by_attempt,
            agents_upsert,
            tokens,
            trigger_settings_default_then_set,
            polled_refs_baseline_and_replace,
            deliveries_and_events_claim_once,
            create_runs_claims_the_event_once,
            polls_take_turns,
            schedules_compare_and_set,
            pull_request_polls_upsert,
            held_runs_release_once,
            forges_set_replace_remove,
            forge_reports_outbox,
            held_instances_wait_for_release,
            ending_entries_and_environments,
            held_runs_in_groups,
        }
    };
}

/// One `#[tokio::test]` per conformance case. `$new` is an expression
/// evaluated afresh for each test, a future of `(store, guard)`; `guard`
/// lives until the test ends. The calling crate needs `tokio` (with the
/// `macros` and `rt-multi-thread` features) among its dev-dependencies.
///
/// ```ignore
/// kiln_store::conformance_tests!(async {
///     let dir = tempfile::tempdir().unwrap();
///     let store = SqliteStore::open(&dir.path().join("kiln.db")).await.unwrap();
///     (store, dir)
/// });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($new:expr) => {
        $crate::__conformance_cases!($crate::__conformance_test_fns; $new);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    ([$new:expr] $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (store, guard) = $new.await;
                $crate::conformance::$case(store).await;
                drop(guard);
            }
        )*
    };
}
