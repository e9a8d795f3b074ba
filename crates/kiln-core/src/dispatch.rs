//! Dispatch: which queued job an agent that asks for work gets.
//!
//! Rules, in order: the agent's labels must cover every `runs-on` label of
//! the job; the job's weight must fit the agent's free capacity (a job
//! heavier than the agent's whole capacity runs when the agent is idle,
//! rather than never); between repositories, round-robin starting after the
//! repository served last, so one busy repository cannot starve the others;
//! within a repository, first in first out among the jobs this agent can
//! take. Pure: the caller passes the candidates (oldest first) and keeps
//! the round-robin cursor.

use kiln_model::{InstanceId, RepoId};

/// A queued job as dispatch sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Queued<'a> {
    pub id: InstanceId,
    pub repo: RepoId,
    pub runs_on: &'a [String],
    pub weight: u32,
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
    let labels = job
        .runs_on
        .iter()
        .all(|l| asker.labels.iter().any(|a| a == l));
    let room =
        job.weight <= asker.free || (job.weight > asker.capacity && asker.free == asker.capacity);
    labels && room
}

/// The job to give `asker`, from `queue` (oldest first). `last_repo` is the
/// repository served last; the caller stores the returned job's repo there.
pub fn pick(
    queue: &[Queued<'_>],
    asker: &Asker<'_>,
    last_repo: Option<RepoId>,
) -> Option<InstanceId> {
    let mut repos: Vec<RepoId> = queue
        .iter()
        .filter(|q| fits(q, asker))
        .map(|q| q.repo)
        .collect();
    repos.sort();
    repos.dedup();
    let first = match last_repo {
        Some(last) => repos.iter().position(|r| *r > last).unwrap_or(0),
        None => 0,
    };
    let repo = *repos.get(first)?;
    queue
        .iter()
        .find(|q| q.repo == repo && fits(q, asker))
        .map(|q| q.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(id: i64, repo: i64, runs_on: &'static [String], weight: u32) -> Queued<'static> {
        Queued {
            id: InstanceId(id),
            repo: RepoId(repo),
            runs_on,
            weight,
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
