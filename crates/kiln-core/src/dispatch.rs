//! Dispatch: which queued job an agent that asks for work gets.
//!
//! Rules, in order: the agent's labels (with the server's label aliases)
//! must cover every `runs-on` label of the job; the job's weight must fit
//! the agent's free capacity (a job heavier than the agent's whole capacity
//! runs when the agent is idle, rather than never); the highest priority
//! first; between repositories within it, round-robin starting after the
//! repository served last, so one busy repository cannot starve the
//! others; within a repository, first in first out among the jobs this
//! agent can take.
//!
//! [`pick`] is the rules' reference: pure, over a list of candidates
//! (oldest first), with the caller keeping the round-robin cursor. The
//! store claims with the same rules in its queries, so that no window of
//! candidates can hide a job (a conformance case checks the store against
//! [`pick`]); the helpers below are shared by both.

use kiln_model::{InstanceId, RepoId};

/// A queued job as dispatch sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Queued<'a> {
    pub id: InstanceId,
    pub repo: RepoId,
    pub runs_on: &'a [String],
    pub weight: u32,
    /// Higher first.
    pub priority: i32,
}

/// The agent asking.
#[derive(Clone, Copy, Debug)]
pub struct Asker<'a> {
    pub labels: &'a [String],
    pub capacity: u32,
    pub free: u32,
}

/// Can `asker` run `job` now?
pub fn fits(job: &Queued<'_>, asker: &Asker<'_>) -> bool {
    covers(asker.labels, job.runs_on) && has_room(job.weight, asker.capacity, asker.free)
}

/// Do an agent's `labels` cover every label a job `runs_on`?
pub fn covers(labels: &[String], runs_on: &[String]) -> bool {
    runs_on.iter().all(|l| labels.iter().any(|a| a == l))
}

/// Does a job of `weight` fit `free` units of an agent of `capacity`? A job
/// heavier than the whole capacity fits an idle agent only.
pub fn has_room(weight: u32, capacity: u32, free: u32) -> bool {
    weight <= free || (weight > capacity && free == capacity)
}

/// The labels an agent serves: its own, and every alias whose labels it
/// all has (`ubuntu-latest = ["linux", "x64"]` lets an agent with `linux`
/// and `x64` take `runs-on: ubuntu-latest`).
pub fn effective_labels(labels: &[String], aliases: &[(String, Vec<String>)]) -> Vec<String> {
    let mut out = labels.to_vec();
    for (alias, targets) in aliases {
        if covers(labels, targets) && !out.contains(alias) {
            out.push(alias.clone());
        }
    }
    out
}

/// Round-robin between repositories: of the repositories that have a job
/// for the agent, the first after `last` (the one served last), wrapping
/// to the smallest.
pub fn next_repo(mut repos: Vec<RepoId>, last: Option<RepoId>) -> Option<RepoId> {
    repos.sort();
    repos.dedup();
    let first = match last {
        Some(last) => repos.iter().position(|r| *r > last).unwrap_or(0),
        None => 0,
    };
    repos.get(first).copied()
}

/// The job to give `asker`, from `queue` (oldest first). `last_repo` is the
/// repository served last; the caller stores the returned job's repo there.
pub fn pick(
    queue: &[Queued<'_>],
    asker: &Asker<'_>,
    last_repo: Option<RepoId>,
) -> Option<InstanceId> {
    let top = queue
        .iter()
        .filter(|q| fits(q, asker))
        .map(|q| q.priority)
        .max()?;
    let repos: Vec<RepoId> = queue
        .iter()
        .filter(|q| q.priority == top && fits(q, asker))
        .map(|q| q.repo)
        .collect();
    let repo = next_repo(repos, last_repo)?;
    queue
        .iter()
        .find(|q| q.priority == top && q.repo == repo && fits(q, asker))
        .map(|q| q.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_add_labels_only_when_all_targets_are_there() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let aliases = vec![
            ("ubuntu-latest".to_string(), l(&["linux", "x64"])),
            ("macos-latest".to_string(), l(&["macos"])),
        ];
        assert_eq!(
            effective_labels(&l(&["self-hosted", "linux", "x64"]), &aliases),
            l(&["self-hosted", "linux", "x64", "ubuntu-latest"])
        );
        assert_eq!(effective_labels(&l(&["linux"]), &aliases), l(&["linux"]));
    }

    #[test]
    fn priority_beats_age_and_fair_share_works_within_it() {
        let none: &'static [String] = &[];
        let mut urgent = q(3, 2, none, 1);
        urgent.priority = 5;
        let mut also_urgent = q(4, 3, none, 1);
        also_urgent.priority = 5;
        let queue = [q(1, 1, none, 1), q(2, 2, none, 1), urgent, also_urgent];
        let agent: Vec<String> = vec![];
        let asker = Asker {
            labels: &agent,
            capacity: 4,
            free: 4,
        };
        assert_eq!(pick(&queue, &asker, None), Some(InstanceId(3)));
        assert_eq!(pick(&queue, &asker, Some(RepoId(2))), Some(InstanceId(4)));
        // A high-priority job that does not fit does not block the rest.
        let mut heavy = q(5, 1, none, 3);
        heavy.priority = 9;
        let queue = [q(1, 1, none, 1), heavy];
        let small = Asker {
            labels: &agent,
            capacity: 4,
            free: 1,
        };
        assert_eq!(pick(&queue, &small, None), Some(InstanceId(1)));
    }

    #[test]
    fn round_robin_wraps_after_the_last_repo() {
        let r = |v: &[i64]| v.iter().map(|i| RepoId(*i)).collect::<Vec<_>>();
        assert_eq!(next_repo(r(&[3, 1, 2]), None), Some(RepoId(1)));
        assert_eq!(next_repo(r(&[3, 1, 2]), Some(RepoId(1))), Some(RepoId(2)));
        assert_eq!(next_repo(r(&[3, 1, 2]), Some(RepoId(3))), Some(RepoId(1)));
        assert_eq!(next_repo(r(&[]), Some(RepoId(3))), None);
    }

    fn q(id: i64, repo: i64, runs_on: &'static [String], weight: u32) -> Queued<'static> {
        Queued {
            id: InstanceId(id),
            repo: RepoId(repo),
            runs_on,
            weight,
            priority: 0,
        }
    }

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_must_cover_runs_on() {
        let gpu: &'static [String] = Box::leak(labels(&["linux", "gpu"]).into_boxed_slice());
        let linux: &'static [String] = Box::leak(labels(&["linux"]).into_boxed_slice());
        let queue = [q(1, 1, gpu, 1), q(2, 1, linux, 1)];
        let agent = labels(&["linux"]);
        let asker = Asker {
            labels: &agent,
            capacity: 4,
            free: 4,
        };
        assert_eq!(pick(&queue, &asker, None), Some(InstanceId(2)));
        let agent = labels(&["linux", "gpu", "big"]);
        let asker = Asker {
            labels: &agent,
            capacity: 4,
            free: 4,
        };
        assert_eq!(pick(&queue, &asker, None), Some(InstanceId(1)));
    }

    #[test]
    fn weight_must_fit_free_capacity_unless_idle_and_too_big_anyway() {
        let none: &'static [String] = &[];
        let queue = [q(1, 1, none, 3), q(2, 1, none, 1)];
        let agent = labels(&[]);
        // FIFO within the repo among what fits: the light job goes first.
        assert_eq!(
            pick(
                &queue,
                &Asker {
                    labels: &agent,
                    capacity: 4,
                    free: 2
                },
                None
            ),
            Some(InstanceId(2))
        );
        assert_eq!(
            pick(
                &queue,
                &Asker {
                    labels: &agent,
                    capacity: 4,
                    free: 4
                },
                None
            ),
            Some(InstanceId(1))
        );
        let huge = [q(3, 1, none, 9)];
        assert_eq!(
            pick(
                &huge,
                &Asker {
                    labels: &agent,
                    capacity: 4,
                    free: 3
                },
                None
            ),
            None
        );
        assert_eq!(
            pick(
                &huge,
                &Asker {
                    labels: &agent,
                    capacity: 4,
                    free: 4
                },
                None
            ),
            Some(InstanceId(3))
        );
    }

    #[test]
    fn round_robin_between_repositories() {
        let none: &'static [String] = &[];
        // Repo 1 queued a lot first; repo 2 and 3 one job each.
        let queue = [
            q(1, 1, none, 1),
            q(2, 1, none, 1),
            q(3, 1, none, 1),
            q(4, 2, none, 1),
            q(5, 3, none, 1),
        ];
        let agent = labels(&[]);
        let asker = Asker {
            labels: &agent,
            capacity: 1,
            free: 1,
        };
        let mut last = None;
        let mut order = Vec::new();
        let mut remaining = queue.to_vec();
        while let Some(id) = pick(&remaining, &asker, last) {
            let job = remaining.iter().position(|j| j.id == id).unwrap();
            last = Some(remaining[job].repo);
            order.push(id.0);
            remaining.remove(job);
        }
        assert_eq!(order, [1, 4, 5, 2, 3]);
    }
}
