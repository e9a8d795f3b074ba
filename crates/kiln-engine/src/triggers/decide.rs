//! The pure decisions of triggers: which workflow an event starts, which
//! it records as skipped, who may run a comment command, what polling
//! turns into events, and when a schedule fires. No I/O, no clock.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kiln_forge::api::{Permission, PullRequestInfo};
use kiln_forge::command::{self, CommentMatch};
use kiln_forge::cron::{self, Cron};
use kiln_forge::webhook::PrAction;
use kiln_model::Value;
use kiln_model::workflow::{RefFilter, Workflow};
use kiln_pipeline::filters::{self, Match, SkipReason};
use kiln_store::types::{PullRequestPoll, ScheduleState};
use std::collections::BTreeMap;

/// The reason recorded on a run that path filters skipped: commit status
/// reporters report it as a success with this description.
pub const SKIPPED_NO_CHANGES: &str = "skipped: no matching changes";

/// The reason a fork's pull request run is held.
pub const HELD_FOR_FORK: &str = "waiting for approval: pull request from a fork";

/// What an event means for one workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create a run and start it.
    Start,
    /// Excluded only by its path filters: record a skipped run (so that a
    /// required check does not hang pending).
    SkipNoChanges(String),
    /// The workflow does not run on this event (with why, for the log).
    NotTriggered(String),
}

/// Whether a filter has path filters (then the changed files are needed).
pub fn has_path_filters(f: &RefFilter) -> bool {
    !f.paths.is_empty() || !f.paths_ignore.is_empty()
}

fn path_skip(reason: &SkipReason) -> bool {
    match reason {
        SkipReason::NoPathIncluded { .. }
        | SkipReason::AllPathsIgnored { .. }
        | SkipReason::NoChangedFiles => true,
        SkipReason::NotABranchOrTag { .. }
        | SkipReason::BranchNotIncluded { .. }
        | SkipReason::BranchIgnored { .. }
        | SkipReason::TagNotIncluded { .. }
        | SkipReason::TagIgnored { .. }
        | SkipReason::OnlyTagsFiltered { .. }
        | SkipReason::OnlyBranchesFiltered { .. }
        | SkipReason::ActionNotListed { .. }
        | SkipReason::InvalidPattern { .. } => false,
    }
}

fn from_match(m: Match) -> Decision {
    match m {
        Match::Run => Decision::Start,
        Match::Skip(reason) if path_skip(&reason) => Decision::SkipNoChanges(reason.to_string()),
        Match::Skip(reason) => Decision::NotTriggered(reason.to_string()),
    }
}

/// A push to `git_ref` that changed `changed` (`None`: unknown).
pub fn push(wf: &Workflow, git_ref: &str, changed: Option<&[String]>) -> Decision {
    match &wf.on.push {
        None => Decision::NotTriggered("no `on.push`".into()),
        Some(f) => from_match(filters::push_matches(f, git_ref, changed)),
    }
}

/// A pull request event. `closed` never starts anything, whatever `types`
/// lists.
pub fn pull_request(
    wf: &Workflow,
    action: &PrAction,
    base_ref: &str,
    changed: Option<&[String]>,
) -> Decision {
    let Some(t) = &wf.on.pull_request else {
        return Decision::NotTriggered("no `on.pull_request`".into());
    };
    match action {
        PrAction::Closed => Decision::NotTriggered("a closed pull request starts nothing".into()),
        PrAction::Opened | PrAction::Synchronize | PrAction::Reopened | PrAction::Other(_) => {
            from_match(filters::pull_request_matches(
                t,
                action.as_github_str(),
                base_ref,
                changed,
            ))
        }
    }
}

/// The flags a workflow's command takes: `on.comment.flags` when given,
/// else every `kiln.flags.NAME` its file reads, as booleans.
pub fn known_flags(wf: &Workflow, text: &str) -> Vec<String> {
    if let Some(c) = &wf.on.comment
        && !c.flags.is_empty()
    {
        return c.flags.clone();
    }
    let mut out: Vec<String> = Vec::new();
    for (i, _) in text.match_indices("kiln.flags.") {
        let name: String = text[i + "kiln.flags.".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out.sort();
    out
}

/// A comment against one workflow's command.
pub fn comment(wf: &Workflow, text: &str, body: &str) -> CommentMatch {
    let Some(c) = &wf.on.comment else {
        return CommentMatch::NoMatch;
    };
    let known = known_flags(wf, text);
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    command::parse_comment(body, &c.command, &known)
}

/// Who may run a comment command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    Yes,
    /// No; the sentence says why (for the log and the reply).
    No(String),
}

/// The allowlist decides when it is not empty (logins compared without
/// case); otherwise the forge's permission (`None`: no forge or it could
/// not be asked) must be write or more.
pub fn may_command(allowlist: &[String], author: &str, permission: Option<Permission>) -> Allowed {
    if !allowlist.is_empty() {
        return if allowlist.iter().any(|a| a.eq_ignore_ascii_case(author)) {
            Allowed::Yes
        } else {
            Allowed::No(format!(
                "`{author}` is not on this repository's command allowlist"
            ))
        };
    }
    match permission {
        Some(p) if p.can_write() => Allowed::Yes,
        Some(_) => Allowed::No(format!("`{author}` has no write access to the repository")),
        None => Allowed::No(
            "kiln cannot ask the forge who may write to this repository (no forge configured) \
             and the repository has no command allowlist"
                .into(),
        ),
    }
}

/// The reply to a refused command.
pub fn refusal_reply(author: &str, command: &str, why: &str) -> String {
    format!("@{author} `{command}` was not run: {why}.")
}

/// The key an event is deduplicated by: the same change reported by a
/// webhook and later by a poll has the same key.
pub fn push_key(git_ref: &str, after: &str) -> String {
    format!("push:{git_ref}:{after}")
}

/// See [`push_key`]; pull requests by number and head commit.
pub fn pull_request_key(number: u64, head_sha: &str) -> String {
    format!("pull_request:{number}:{head_sha}")
}

/// See [`push_key`]; comments by the forge's comment id.
pub fn comment_key(comment_id: u64) -> String {
    format!("comment:{comment_id}")
}

/// See [`push_key`]; one schedule slot.
pub fn schedule_key(workflow_file: &str, index: u32, slot: Timestamp) -> String {
    format!("schedule:{workflow_file}:{index}:{slot}")
}

/// A ref that moved, as polling sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefChange {
    pub git_ref: String,
    /// The old commit; `None` for a new ref.
    pub before: Option<String>,
    pub after: String,
}

/// What changed between two polls: new and moved branches and tags, in
/// ref order. Deleted refs start nothing and are left out.
pub fn ref_changes(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<RefChange> {
    new.iter()
        .filter(|(r, sha)| old.get(*r) != Some(*sha))
        .map(|(r, sha)| RefChange {
            git_ref: r.clone(),
            before: old.get(r).cloned(),
            after: sha.clone(),
        })
        .collect()
}

/// Pull requests that polling turns into events: one not seen before is
/// `opened`, one whose head moved is `synchronize`.
pub fn pull_request_changes(
    seen: &[PullRequestPoll],
    open: &[PullRequestInfo],
) -> Vec<(PrAction, PullRequestInfo)> {
    open.iter()
        .filter_map(|pr| match seen.iter().find(|s| s.number == pr.number) {
            None => Some((PrAction::Opened, pr.clone())),
            Some(s) if s.head_sha != pr.head_sha => Some((PrAction::Synchronize, pr.clone())),
            Some(_) => None,
        })
        .collect()
}

/// What to do with one schedule now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleStep {
    /// First sight (or its cron changed): store `next`, fire nothing.
    Init { next: ScheduleState },
    /// Not due yet.
    Wait,
    /// Due: fire once for `slot` (the latest missed slot, however many
    /// were missed) and store `next`.
    Fire {
        slot: Timestamp,
        next: ScheduleState,
    },
    /// The cron has no future slot (never happens for valid GitHub crons).
    Never,
}

/// Decide a schedule's step from its stored state.
pub fn schedule_step(
    cron: &Cron,
    stored: Option<&ScheduleState>,
    now: Timestamp,
    tz: &TimeZone,
) -> ScheduleStep {
    let Some(next_fire) = cron::next_after(cron, now, tz) else {
        return ScheduleStep::Never;
    };
    let next = ScheduleState {
        cron: cron.source().to_owned(),
        next_fire,
    };
    match stored {
        Some(s) if s.cron == cron.source() => {
            if s.next_fire > now {
                return ScheduleStep::Wait;
            }
            // Due: the fire is the latest slot up to now (one fire after
            // any downtime).
            let since = s
                .next_fire
                .checked_sub(jiff::SignedDuration::from_micros(1))
                .unwrap_or(s.next_fire);
            let slot = cron::due(cron, since, now, tz).unwrap_or(s.next_fire);
            ScheduleStep::Fire { slot, next }
        }
        Some(_) | None => ScheduleStep::Init { next },
    }
}

/// Merge `extra` into the `github` context object (fields of the event
/// that workflows read: `github.event.*`, `head_ref`, `base_ref`).
pub fn merge_github(github: Value, extra: Vec<(&str, Value)>) -> Value {
    match github {
        Value::Object(mut map) => {
            for (k, v) in extra {
                map.insert(k.to_owned(), v);
            }
            Value::Object(map)
        }
        other @ (Value::Null
        | Value::Bool(_)
        | Value::Number(_)
        | Value::String(_)
        | Value::Array(_)) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(yaml: &str) -> Workflow {
        let loaded = kiln_pipeline::load::load("ci.yml", yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.workflow.expect("workflow")
    }

    fn files(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| (*s).to_owned()).collect()
    }

    const JOBS: &str = "jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo\n";

    #[test]
    fn only_path_filters_make_a_skipped_run() {
        let w = wf(&format!(
            "on:\n  push:\n    branches: [main]\n    paths: ['src/**']\n{JOBS}"
        ));
        let docs = files(&["docs/a.md"]);
        let src = files(&["src/lib.rs"]);
        assert_eq!(push(&w, "refs/heads/main", Some(&src)), Decision::Start);
        assert!(matches!(
            push(&w, "refs/heads/main", Some(&docs)),
            Decision::SkipNoChanges(_)
        ));
        assert!(matches!(
            push(&w, "refs/heads/main", Some(&[])),
            Decision::SkipNoChanges(_)
        ));
        // Excluded by its branch filter: no run at all, files or not.
        assert!(matches!(
            push(&w, "refs/heads/dev", Some(&docs)),
            Decision::NotTriggered(_)
        ));
        // Unknown files: path filters are not evaluated.
        assert_eq!(push(&w, "refs/heads/main", None), Decision::Start);
        let no_push = wf(&format!("on: pull_request\n{JOBS}"));
        assert!(matches!(
            push(&no_push, "refs/heads/main", None),
            Decision::NotTriggered(_)
        ));
    }

    #[test]
    fn pull_request_types_and_closed() {
        let w = wf(&format!(
            "on:\n  pull_request:\n    types: [opened, closed, labeled]\n{JOBS}"
        ));
        assert_eq!(
            pull_request(&w, &PrAction::Opened, "main", None),
            Decision::Start
        );
        assert!(matches!(
            pull_request(&w, &PrAction::Closed, "main", None),
            Decision::NotTriggered(_)
        ));
        assert!(matches!(
            pull_request(&w, &PrAction::Synchronize, "main", None),
            Decision::NotTriggered(_)
        ));
        assert_eq!(
            pull_request(&w, &PrAction::Other("labeled".into()), "main", None),
            Decision::Start
        );
    }

    #[test]
    fn flags_declared_or_read_from_expressions() {
        let text = format!(
            "on:\n  comment:\n    command: '!testme'\n{JOBS}  b:\n    if: kiln.flags.extra && !kiln.flags.fast-path\n    runs-on: x\n    steps:\n      - run: echo ${{{{ kiln.flags.extra }}}}\n"
        );
        let w = wf(&text);
        assert_eq!(known_flags(&w, &text), files(&["extra", "fast-path"]));
        let declared =
            format!("on:\n  comment:\n    command: '!testme'\n    flags: [extra, 'only=']\n{JOBS}");
        let w = wf(&declared);
        assert_eq!(known_flags(&w, &declared), files(&["extra", "only="]));
        assert_eq!(
            comment(&w, &declared, "!testme --only build"),
            CommentMatch::Run {
                flags: Value::object([("only", Value::str("build"))])
            }
        );
        assert_eq!(comment(&w, &declared, "!testmexyz"), CommentMatch::NoMatch);
        assert!(matches!(
            comment(&w, &declared, "!testme --nope"),
            CommentMatch::Rejected(_)
        ));
    }

    #[test]
    fn who_may_run_commands() {
        let none: Vec<String> = vec![];
        assert_eq!(
            may_command(&none, "a", Some(Permission::Write)),
            Allowed::Yes
        );
        assert_eq!(
            may_command(&none, "a", Some(Permission::Admin)),
            Allowed::Yes
        );
        assert!(matches!(
            may_command(&none, "a", Some(Permission::Read)),
            Allowed::No(_)
        ));
        assert!(matches!(may_command(&none, "a", None), Allowed::No(_)));
        let list = files(&["Alice"]);
        assert_eq!(may_command(&list, "alice", None), Allowed::Yes);
        assert!(matches!(
            may_command(&list, "bob", Some(Permission::Admin)),
            Allowed::No(_)
        ));
    }

    #[test]
    fn polling_sees_new_and_moved_refs_not_deleted_ones() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        let old = m(&[
            ("refs/heads/main", "1"),
            ("refs/heads/gone", "2"),
            ("refs/tags/v1", "3"),
        ]);
        let new = m(&[
            ("refs/heads/main", "4"),
            ("refs/heads/new", "5"),
            ("refs/tags/v1", "3"),
        ]);
        assert_eq!(
            ref_changes(&old, &new),
            vec![
                RefChange {
                    git_ref: "refs/heads/main".into(),
                    before: Some("1".into()),
                    after: "4".into()
                },
                RefChange {
                    git_ref: "refs/heads/new".into(),
                    before: None,
                    after: "5".into()
                },
            ]
        );
        let pr = |n: u64, sha: &str| PullRequestInfo {
            number: n,
            head_sha: sha.into(),
            head_ref: "f".into(),
            base_ref: "main".into(),
            head_repo_is_fork: false,
            author: "a".into(),
        };
        let seen = vec![
            PullRequestPoll {
                number: 1,
                head_sha: "a".into(),
                last_comment: 0,
            },
            PullRequestPoll {
                number: 2,
                head_sha: "b".into(),
                last_comment: 0,
            },
        ];
        let changes = pull_request_changes(&seen, &[pr(1, "a"), pr(2, "c"), pr(3, "d")]);
        assert_eq!(
            changes
                .iter()
                .map(|(a, p)| (a.as_github_str().to_owned(), p.number))
                .collect::<Vec<_>>(),
            vec![("synchronize".to_owned(), 2), ("opened".to_owned(), 3)]
        );
    }

    #[test]
    fn a_schedule_fires_once_after_downtime() {
        let cron = Cron::parse("0 3 * * *").expect("cron");
        let tz = TimeZone::UTC;
        let t = |s: &str| -> Timestamp { s.parse().expect("ts") };
        let now = t("2025-03-10T12:00:00Z");
        let ScheduleStep::Init { next } = schedule_step(&cron, None, now, &tz) else {
            panic!("first sight initializes")
        };
        assert_eq!(next.next_fire, t("2025-03-11T03:00:00Z"));
        assert_eq!(
            schedule_step(&cron, Some(&next), now, &tz),
            ScheduleStep::Wait
        );
        // Down from the 11th to the 14th noon: one fire, for the latest
        // slot, and the next is tomorrow's.
        let later = t("2025-03-14T12:00:00Z");
        assert_eq!(
            schedule_step(&cron, Some(&next), later, &tz),
            ScheduleStep::Fire {
                slot: t("2025-03-14T03:00:00Z"),
                next: ScheduleState {
                    cron: "0 3 * * *".into(),
                    next_fire: t("2025-03-15T03:00:00Z"),
                },
            }
        );
        // Exactly at the slot.
        let at = t("2025-03-11T03:00:00Z");
        assert!(matches!(
            schedule_step(&cron, Some(&next), at, &tz),
            ScheduleStep::Fire { slot, .. } if slot == at
        ));
        // A changed cron starts over without firing.
        let other = Cron::parse("0 4 * * *").expect("cron");
        assert!(matches!(
            schedule_step(&other, Some(&next), later, &tz),
            ScheduleStep::Init { .. }
        ));
        // In a time zone: 03:00 Berlin is 02:00 UTC in winter.
        let berlin = TimeZone::get("Europe/Berlin").expect("tz");
        let ScheduleStep::Init { next } = schedule_step(&cron, None, now, &berlin) else {
            panic!("init")
        };
        assert_eq!(next.next_fire, t("2025-03-11T02:00:00Z"));
    }
}
