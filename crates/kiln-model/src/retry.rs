//! Why an attempt failed, and which failures a job retries.
//!
//! A failed attempt carries a [`FailureClass`], set by whoever saw it fail:
//! the job runner (a step's exit code, a timeout, the checkout) or the
//! server (the agent stopped heartbeating). A job's [`RetryPolicy`] (its
//! `retry:` key, or the server's default) says which classes send the job
//! back to the queue for another attempt. The decision itself is
//! `kiln_core::retry`; this module is only the vocabulary, shared by the
//! pipeline IR, the results document and the store.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// The agent stopped heartbeating: its lease ran out (server only).
    AgentLost,
    /// The job's workspace could not be prepared or `actions/checkout`
    /// failed: nothing of the job's own ran.
    Checkout,
    /// The job's `timeout-minutes`, or a step's, was reached.
    Timeout,
    /// A step exited with a non-zero code.
    ExitCode,
    /// Anything else: a step killed by a signal, a script that could not
    /// start, an expression that could not be evaluated, a malformed file
    /// command, a failed health check.
    Other,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::AgentLost => "agent-lost",
            FailureClass::Checkout => "checkout",
            FailureClass::Timeout => "timeout",
            FailureClass::ExitCode => "exit-code",
            FailureClass::Other => "other",
        }
    }

    /// The class named `s` (as `as_str` spells it).
    pub fn parse(s: &str) -> Option<FailureClass> {
        [
            FailureClass::AgentLost,
            FailureClass::Checkout,
            FailureClass::Timeout,
            FailureClass::ExitCode,
            FailureClass::Other,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a failed attempt failed: its class, and for a step that failed
/// the job, which step and its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Failure {
    pub class: FailureClass,
    /// The 1-based number of the step that failed the job, when one did.
    #[serde(default)]
    pub step: Option<u32>,
    /// That step's exit code, when it exited by itself.
    #[serde(default)]
    pub exit_code: Option<i32>,
}

impl Failure {
    /// A failure of `class` not tied to a step.
    pub fn of(class: FailureClass) -> Failure {
        Failure {
            class,
            step: None,
            exit_code: None,
        }
    }
}

/// One entry of `retry.on`: a class of failures the job retries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    AgentLost,
    Checkout,
    Timeout,
    /// A non-zero exit; only these codes when the list is not empty
    /// (`exit-code: [1, 137]`).
    ExitCode(Vec<i32>),
    Other,
}

impl RetryOn {
    /// Does this entry cover `failure`?
    pub fn covers(&self, failure: &Failure) -> bool {
        match (self, failure.class) {
            (RetryOn::AgentLost, FailureClass::AgentLost)
            | (RetryOn::Checkout, FailureClass::Checkout)
            | (RetryOn::Timeout, FailureClass::Timeout)
            | (RetryOn::Other, FailureClass::Other) => true,
            (RetryOn::ExitCode(codes), FailureClass::ExitCode) => {
                codes.is_empty() || failure.exit_code.is_some_and(|c| codes.contains(&c))
            }
            (
                RetryOn::AgentLost
                | RetryOn::Checkout
                | RetryOn::Timeout
                | RetryOn::ExitCode(_)
                | RetryOn::Other,
                FailureClass::AgentLost
                | FailureClass::Checkout
                | FailureClass::Timeout
                | FailureClass::ExitCode
                | FailureClass::Other,
            ) => false,
        }
    }
}

/// A job's `retry:`: at most `max` retries (so `max + 1` attempts in all)
/// for failures of the classes in `on`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max: u32,
    pub on: Vec<RetryOn>,
}

impl RetryPolicy {
    /// The most retries a `retry:` key may ask for.
    pub const MAX_RETRIES: u32 = 10;

    /// What a job without `retry:` gets: `max` retries of infrastructure
    /// failures (agent lost, checkout), none of its own.
    pub fn infrastructure(max: u32) -> RetryPolicy {
        RetryPolicy {
            max,
            on: vec![RetryOn::AgentLost, RetryOn::Checkout],
        }
    }

    /// Attempts allowed in all.
    pub fn max_attempts(&self) -> u32 {
        self.max.saturating_add(1)
    }
}
