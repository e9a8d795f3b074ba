//! `needs`: every named job exists, and the jobs form no cycle.

use super::cx::Cx;
use super::node::At;
use super::suggest;
use kiln_model::workflow::Job;

/// For each job (same order as `jobs`), its `needs` entries with their places.
pub(crate) type Edges = Vec<(String, At)>;

pub(crate) fn check(cx: &mut Cx<'_>, jobs: &[Job], needs: &[Edges]) {
    let index = |name: &str| jobs.iter().position(|j| j.id.as_str() == name);
    for (job, edges) in jobs.iter().zip(needs) {
        for (name, at) in edges {
            if index(name).is_some() {
                continue;
            }
            let message = format!(
                "job `{}` needs `{name}`, which is not a job in this workflow",
                job.id
            );
            match suggest::closest(name, jobs.iter().map(|j| j.id.as_str())) {
                Some(s) => cx.error_help(*at, message, format!("did you mean `{s}`?")),
                None => cx.error(*at, message),
            }
        }
    }
    // Depth-first search; a back edge closes a cycle, reported at that edge.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; jobs.len()];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..jobs.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Explicit stack of (job, next edge index) to stay iterative.
        let mut stack = vec![(start, 0usize)];
        marks[start] = Mark::Open;
        path.push(start);
        while let Some(top) = stack.last_mut() {
            let (u, e) = *top;
            top.1 += 1;
            let Some((name, at)) = needs.get(u).and_then(|edges| edges.get(e)) else {
                marks[u] = Mark::Done;
                path.pop();
                stack.pop();
                continue;
            };
            let Some(v) = index(name) else { continue };
            match marks[v] {
                Mark::New => {
                    marks[v] = Mark::Open;
                    path.push(v);
                    stack.push((v, 0));
                }
                Mark::Open => {
                    let from = path.iter().position(|&p| p == v).unwrap_or(0);
                    let mut names: Vec<&str> =
                        path[from..].iter().map(|&p| jobs[p].id.as_str()).collect();
                    names.push(jobs[v].id.as_str());
                    cx.error_help(
                        *at,
                        format!("jobs form a cycle: {}", names.join(" -> ")),
                        "remove one of these `needs` entries",
                    );
                }
                Mark::Done => {}
            }
        }
    }
}
