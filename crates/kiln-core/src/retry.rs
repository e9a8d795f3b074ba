//! Whether a failed attempt is tried again: one rule, used by the store
//! (a completed or lost attempt on the server) and by `kiln exec`.
//!
//! The rule, in order: a cancelled job is never retried (cancelling it is
//! the point); a success needs no retry; a failure is retried while the
//! attempt that failed is not past the policy's `max` retries and the
//! failure's class is in `on`. A failure without a class (a result from an
//! agent older than failure classes) is never retried.

use kiln_model::{Failure, JobStatus, RetryPolicy};

/// What became of an attempt that ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The job ends with the attempt's status.
    End,
    /// The job goes back to the queue for another attempt.
    Retry,
}

/// Decide for attempt `attempt` (1-based) that ended with `status` and
/// `failure`, under `policy`; `cancel_requested`: someone asked to stop
/// the job.
pub fn decide(
    policy: &RetryPolicy,
    status: JobStatus,
    failure: Option<&Failure>,
    attempt: u32,
    cancel_requested: bool,
) -> Verdict {
    if cancel_requested {
        return Verdict::End;
    }
    match status {
        JobStatus::Failure => {}
        JobStatus::Success
        | JobStatus::Cancelled
        | JobStatus::Skipped
        | JobStatus::Queued
        | JobStatus::Running => return Verdict::End,
    }
    let Some(failure) = failure else {
        return Verdict::End;
    };
    if attempt < policy.max_attempts() && policy.on.iter().any(|on| on.covers(failure)) {
        Verdict::Retry
    } else {
        Verdict::End
    }
}

#[cfg(test)]
mod tests {
    use super::{Verdict, decide};
    use kiln_model::{Failure, FailureClass, JobStatus, RetryOn, RetryPolicy};

    fn exit(code: i32) -> Failure {
        Failure {
            class: FailureClass::ExitCode,
            step: Some(1),
            exit_code: Some(code),
        }
    }

    #[test]
    fn max_counts_retries_not_attempts() {
        let p = RetryPolicy {
            max: 2,
            on: vec![RetryOn::ExitCode(Vec::new())],
        };
        let f = exit(1);
        assert_eq!(
            decide(&p, JobStatus::Failure, Some(&f), 1, false),
            Verdict::Retry
        );
        assert_eq!(
            decide(&p, JobStatus::Failure, Some(&f), 2, false),
            Verdict::Retry
        );
        assert_eq!(
            decide(&p, JobStatus::Failure, Some(&f), 3, false),
            Verdict::End
        );
    }

    #[test]
    fn only_listed_classes_and_codes_are_retried() {
        let p = RetryPolicy {
            max: 5,
            on: vec![RetryOn::Timeout, RetryOn::ExitCode(vec![137])],
        };
        let retried = |f: Failure| decide(&p, JobStatus::Failure, Some(&f), 1, false);
        assert_eq!(retried(exit(137)), Verdict::Retry);
        assert_eq!(retried(exit(1)), Verdict::End);
        assert_eq!(retried(Failure::of(FailureClass::Timeout)), Verdict::Retry);
        assert_eq!(retried(Failure::of(FailureClass::AgentLost)), Verdict::End);
        assert_eq!(retried(Failure::of(FailureClass::Other)), Verdict::End);
    }

    #[test]
    fn the_default_retries_infrastructure_only() {
        let p = RetryPolicy::infrastructure(2);
        let retried = |f: Failure| decide(&p, JobStatus::Failure, Some(&f), 1, false);
        assert_eq!(
            retried(Failure::of(FailureClass::AgentLost)),
            Verdict::Retry
        );
        assert_eq!(retried(Failure::of(FailureClass::Checkout)), Verdict::Retry);
        assert_eq!(retried(exit(1)), Verdict::End);
        assert_eq!(retried(Failure::of(FailureClass::Timeout)), Verdict::End);
    }

    #[test]
    fn cancelled_successful_and_unclassified_attempts_end() {
        let p = RetryPolicy {
            max: 3,
            on: vec![RetryOn::ExitCode(Vec::new()), RetryOn::Other],
        };
        let f = exit(1);
        assert_eq!(
            decide(&p, JobStatus::Failure, Some(&f), 1, true),
            Verdict::End
        );
        assert_eq!(
            decide(&p, JobStatus::Cancelled, None, 1, false),
            Verdict::End
        );
        assert_eq!(decide(&p, JobStatus::Success, None, 1, false), Verdict::End);
        assert_eq!(decide(&p, JobStatus::Failure, None, 1, false), Verdict::End);
    }
}
