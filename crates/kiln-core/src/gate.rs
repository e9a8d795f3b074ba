//! Gates: who may start in a concurrency group or an environment.
//!
//! A *gate* is one concurrency group (`concurrency: ci-${{ github.ref }}`)
//! or one environment of a repository (`environment: production`). Runs and
//! jobs that belong to a gate enter it as *entries*, in arrival order; at
//! most one entry *holds* the gate at a time. [`decide`] looks at a gate's
//! live entries and says what happens next; the server applies the verdicts
//! and calls it again whenever an entry arrives, leaves (its run or job
//! ended), or is approved.
//!
//! The rules, and why (`docs/deploys.md` says the same):
//!
//! - **Groups** release their waiting entries one at a time, oldest first;
//!   nothing waiting is ever dropped. An entry with `cancel-in-progress`
//!   cancels every older entry of its group, holding or waiting, except a
//!   holding deploy: a deploy that runs is only stopped by a person.
//! - **Environments** run one deploy at a time. A waiting deploy whose
//!   commit is an ancestor of the environment's current commit, or of the
//!   commit being deployed now, is *stale* and never runs (an older commit
//!   must not replace a newer one). Of the waiting deploys, one whose
//!   commit is an ancestor of another waiting deploy's commit (or the same
//!   commit, queued earlier) is *superseded*: only the newest runs. A forced
//!   deploy (`kiln deploy --force`) passes both checks on purpose: that is
//!   how a person rolls back by hand. A deploy waiting for approval counts
//!   as waiting: it can be superseded or stale, and it supersedes older
//!   ones; it is released only once approved.
//! - The oldest remaining waiting entry that is not waiting for approval is
//!   released when nothing holds the gate.
//!
//! Ancestry comes from the caller (git), never from timestamps or run
//! numbers: `is_ancestor(a, b)` must be true exactly when `a != b` and `a`
//! is reachable from `b`. Commits that are not related (two branches) are
//! neither stale nor superseded by each other; they deploy in arrival order.

use serde::{Deserialize, Serialize};

/// An entry's id: its arrival order in the gate (smaller is older).
pub type EntryId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// A `concurrency:` group.
    Group,
    /// A deploy environment.
    Environment,
}

impl GateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GateKind::Group => "group",
            GateKind::Environment => "environment",
        }
    }
}

/// Where a deploy stands with its approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// The deploy needs no approval.
    NotNeeded,
    Pending,
    Granted,
    Rejected,
}

impl Approval {
    /// May run as far as approval goes.
    pub fn allows(self) -> bool {
        matches!(self, Approval::NotNeeded | Approval::Granted)
    }
}

/// A run or job in a gate whose run or job has not ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: EntryId,
    pub commit: String,
    /// Holds the gate now.
    pub holding: bool,
    /// The entry is a job that deploys to an environment.
    pub deploy: bool,
    /// `kiln deploy --force`: passes the stale guard, never superseded.
    pub force: bool,
    /// `cancel-in-progress` (groups only).
    pub cancel_in_progress: bool,
    pub approval: Approval,
}

/// What happens to one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It may start: it holds the gate from now on.
    Release { id: EntryId },
    /// A newer deploy waits: this one ends as skipped.
    Superseded { id: EntryId, by: String },
    /// The environment is at (or deploying) a newer commit `at`: this one
    /// ends as skipped.
    Stale { id: EntryId, at: String },
    /// A newer entry with `cancel-in-progress` cancels this one.
    Cancelled { id: EntryId, by: EntryId },
}

/// The verdicts for one gate. `entries` are the live entries (in any
/// order); `current` is the environment's current commit (environments
/// only). Verdicts are given in entry order; an entry gets at most one.
pub fn decide(
    kind: GateKind,
    entries: &[Entry],
    current: Option<&str>,
    is_ancestor: &dyn Fn(&str, &str) -> bool,
) -> Vec<Verdict> {
    let mut live: Vec<&Entry> = entries.iter().collect();
    live.sort_by_key(|e| e.id);
    let mut out = Vec::new();
    let mut gone: Vec<EntryId> = Vec::new();

    match kind {
        GateKind::Group => {
            // The newest entry asking for cancel-in-progress cancels all
            // older ones (older requests are covered by the newest).
            if let Some(newest) = live.iter().rev().find(|e| e.cancel_in_progress) {
                for e in live.iter().filter(|e| e.id < newest.id) {
                    if e.holding && e.deploy {
                        continue;
                    }
                    out.push(Verdict::Cancelled {
                        id: e.id,
                        by: newest.id,
                    });
                    gone.push(e.id);
                }
            }
        }
        GateKind::Environment => {
            let holder = live.iter().find(|e| e.holding).map(|e| e.commit.as_str());
            for e in live.iter().filter(|e| !e.holding && !e.force) {
                let newer = [current, holder]
                    .into_iter()
                    .flatten()
                    .find(|at| is_ancestor(&e.commit, at));
                if let Some(at) = newer {
                    out.push(Verdict::Stale {
                        id: e.id,
                        at: at.to_owned(),
                    });
                    gone.push(e.id);
                }
            }
            let waiting: Vec<&&Entry> = live
                .iter()
                .filter(|e| !e.holding && !gone.contains(&e.id))
                .collect();
            // `b` replaces `a`: a newer commit, or the same one queued later.
            let newer = |a: &Entry, b: &Entry| {
                a.id != b.id
                    && (is_ancestor(&a.commit, &b.commit) || (a.commit == b.commit && b.id > a.id))
            };
            for e in waiting.iter().filter(|e| !e.force) {
                let newers: Vec<&&&Entry> = waiting.iter().filter(|o| newer(e, o)).collect();
                // Name the newest of them: the one nothing else replaces.
                let by = newers
                    .iter()
                    .find(|o| !newers.iter().any(|p| newer(o, p)))
                    .or(newers.first());
                if let Some(by) = by {
                    out.push(Verdict::Superseded {
                        id: e.id,
                        by: by.commit.clone(),
                    });
                    gone.push(e.id);
                }
            }
        }
    }

    // A cancelled holder still holds until its run or job has ended.
    let held = live.iter().any(|e| e.holding);
    if !held
        && let Some(next) = live
            .iter()
            .find(|e| !e.holding && !gone.contains(&e.id) && e.approval.allows())
    {
        out.push(Verdict::Release { id: next.id });
    }
    out.sort_by_key(|v| match v {
        Verdict::Release { id }
        | Verdict::Superseded { id, .. }
        | Verdict::Stale { id, .. }
        | Verdict::Cancelled { id, .. } => *id,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits `c1`, `c2`, … on one line of history; `x…` are on another
    /// branch, unrelated to the `c`s.
    fn linear(a: &str, b: &str) -> bool {
        let n = |s: &str| s.strip_prefix('c').and_then(|n| n.parse::<u32>().ok());
        match (n(a), n(b)) {
            (Some(a), Some(b)) => a < b,
            _ => false,
        }
    }

    fn entry(id: EntryId, commit: &str) -> Entry {
        Entry {
            id,
            commit: commit.into(),
            holding: false,
            deploy: true,
            force: false,
            cancel_in_progress: false,
            approval: Approval::NotNeeded,
        }
    }

    fn holding(mut e: Entry) -> Entry {
        e.holding = true;
        e
    }

    fn env(entries: &[Entry], current: Option<&str>) -> Vec<Verdict> {
        decide(GateKind::Environment, entries, current, &linear)
    }

    #[test]
    fn an_empty_gate_releases_the_oldest_entry() {
        assert_eq!(
            env(&[entry(2, "c1"), entry(3, "x1")], None),
            vec![Verdict::Release { id: 2 }]
        );
    }

    #[test]
    fn a_held_environment_releases_nothing() {
        let v = env(&[holding(entry(1, "c1")), entry(2, "c2")], None);
        assert_eq!(v, vec![]);
    }

    #[test]
    fn only_the_newest_waiting_deploy_survives() {
        let v = env(
            &[
                holding(entry(1, "c1")),
                entry(2, "c2"),
                entry(3, "c3"),
                entry(4, "c4"),
            ],
            None,
        );
        assert_eq!(
            v,
            vec![
                Verdict::Superseded {
                    id: 2,
                    by: "c4".into()
                },
                Verdict::Superseded {
                    id: 3,
                    by: "c4".into()
                },
            ]
        );
    }

    #[test]
    fn superseding_follows_ancestry_not_arrival() {
        // c3 arrived before c2: c2 is still the older commit.
        let v = env(
            &[holding(entry(1, "c1")), entry(2, "c3"), entry(3, "c2")],
            None,
        );
        assert_eq!(
            v,
            vec![Verdict::Superseded {
                id: 3,
                by: "c3".into()
            }]
        );
    }

    #[test]
    fn the_same_commit_queued_twice_runs_once() {
        let v = env(
            &[holding(entry(1, "c1")), entry(2, "c2"), entry(3, "c2")],
            None,
        );
        assert_eq!(
            v,
            vec![Verdict::Superseded {
                id: 2,
                by: "c2".into()
            }]
        );
    }

    #[test]
    fn an_ancestor_of_the_current_commit_is_stale() {
        let v = env(&[entry(5, "c2")], Some("c4"));
        assert_eq!(
            v,
            vec![Verdict::Stale {
                id: 5,
                at: "c4".into()
            }]
        );
    }

    #[test]
    fn an_ancestor_of_the_commit_being_deployed_is_stale() {
        let v = env(&[holding(entry(1, "c5")), entry(2, "c3")], Some("c1"));
        assert_eq!(
            v,
            vec![Verdict::Stale {
                id: 2,
                at: "c5".into()
            }]
        );
    }

    #[test]
    fn redeploying_the_current_commit_is_not_stale() {
        assert_eq!(
            env(&[entry(1, "c4")], Some("c4")),
            vec![Verdict::Release { id: 1 }]
        );
    }

    #[test]
    fn force_passes_the_stale_guard_and_is_never_superseded() {
        let mut old = entry(1, "c1");
        old.force = true;
        assert_eq!(
            env(&[old.clone()], Some("c4")),
            vec![Verdict::Release { id: 1 }]
        );
        let v = env(&[old, entry(2, "c3")], Some("c2"));
        assert_eq!(v, vec![Verdict::Release { id: 1 }]);
    }

    #[test]
    fn unrelated_commits_deploy_in_arrival_order() {
        let v = env(&[entry(1, "x1"), entry(2, "c2")], Some("c1"));
        assert_eq!(v, vec![Verdict::Release { id: 1 }]);
    }

    #[test]
    fn a_deploy_waiting_for_approval_is_not_released_but_supersedes() {
        let mut newer = entry(2, "c2");
        newer.approval = Approval::Pending;
        let v = env(&[entry(1, "c1"), newer.clone()], None);
        assert_eq!(
            v,
            vec![Verdict::Superseded {
                id: 1,
                by: "c2".into()
            }]
        );
        newer.approval = Approval::Granted;
        assert_eq!(env(&[newer], None), vec![Verdict::Release { id: 2 }]);
    }

    #[test]
    fn a_deploy_waiting_for_approval_can_go_stale() {
        let mut e = entry(3, "c1");
        e.approval = Approval::Pending;
        assert_eq!(
            env(&[e], Some("c2")),
            vec![Verdict::Stale {
                id: 3,
                at: "c2".into()
            }]
        );
    }

    fn group(entries: &[Entry]) -> Vec<Verdict> {
        decide(GateKind::Group, entries, None, &linear)
    }

    fn run(id: EntryId, cancel: bool) -> Entry {
        Entry {
            deploy: false,
            cancel_in_progress: cancel,
            ..entry(id, &format!("c{id}"))
        }
    }

    #[test]
    fn a_group_keeps_every_waiting_run_and_releases_in_order() {
        assert_eq!(
            group(&[holding(run(1, false)), run(2, false), run(3, false)]),
            vec![]
        );
        assert_eq!(
            group(&[run(2, false), run(3, false)]),
            vec![Verdict::Release { id: 2 }]
        );
    }

    #[test]
    fn cancel_in_progress_cancels_older_holders_and_waiters() {
        let v = group(&[holding(run(1, false)), run(2, false), run(3, true)]);
        assert_eq!(
            v,
            vec![
                Verdict::Cancelled { id: 1, by: 3 },
                Verdict::Cancelled { id: 2, by: 3 },
            ]
        );
    }

    #[test]
    fn cancel_in_progress_spares_a_running_deploy() {
        let mut deploy = holding(run(1, false));
        deploy.deploy = true;
        let v = group(&[deploy, run(2, true)]);
        assert_eq!(v, vec![]);
    }

    #[test]
    fn after_cancelling_the_newest_starts_once_the_gate_is_free() {
        let v = group(&[run(1, false), run(2, true)]);
        assert_eq!(
            v,
            vec![
                Verdict::Cancelled { id: 1, by: 2 },
                Verdict::Release { id: 2 }
            ]
        );
    }
}
