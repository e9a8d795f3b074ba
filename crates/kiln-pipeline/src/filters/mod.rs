//! Branch, tag and path filters of `on.push` and `on.pull_request`, with
//! GitHub's semantics.
//!
//! Given a workflow's [`RefFilter`] and what an event touched (a ref, the
//! changed files), decide [`Match::Run`] or [`Match::Skip`] with the reason
//! a user sees. Pure: the caller computes the changed files (from the
//! webhook payload or with git) and passes them in.
//!
//!
//! The pattern language is in [`pattern`].
//!
//! # Lists
//!
//! A list is read in order and the last pattern that matches decides: a
//! matching `!pattern` excludes what earlier patterns included, and a
//! later positive pattern includes it again. `branches-ignore`,
//! `tags-ignore` and `paths-ignore` are read the same way, "included" there
//! meaning "ignored".
//!
//! # Events
//!
//! - push: `refs/heads/*` is checked against `branches`/`branches-ignore`,
//!   `refs/tags/*` against `tags`/`tags-ignore`. A filter that names only
//!   branch patterns does not run for tags, and one that names only tag
//!   patterns does not run for branches. Path filters apply to branch
//!   pushes only (GitHub: "path filters are not evaluated for pushes of
//!   tags"). Other refs never run.
//! - pull_request: `types` (default `opened`, `synchronize`, `reopened`)
//!   against the action; `branches`/`branches-ignore` against the base
//!   branch; paths against the pull request's changed files.
//! - paths: with `paths`, run when at least one changed file is included;
//!   with `paths-ignore`, skip when every changed file is ignored. An empty
//!   change set with a path filter skips. Unknown changed files (`None`)
//!   leave path filters unevaluated: the event runs.
//! - When ref filters and path filters are both given, both must pass.
//!
//! An unset list and an empty one are the same here ([`RefFilter`] does not
//! tell them apart).

mod pattern;
#[cfg(test)]
mod tests;

use kiln_model::workflow::{PullRequestTrigger, RefFilter};
use std::fmt;

use pattern::Pattern;
pub use pattern::{PatternError, check_pattern, pattern_matches};

/// Whether an event starts a workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    Run,
    Skip(SkipReason),
}

/// Why an event does not start a workflow; its `Display` is the sentence a
/// user sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Not under `refs/heads/` or `refs/tags/`.
    NotABranchOrTag {
        git_ref: String,
    },
    BranchNotIncluded {
        branch: String,
    },
    BranchIgnored {
        branch: String,
    },
    TagNotIncluded {
        tag: String,
    },
    TagIgnored {
        tag: String,
    },
    /// A branch push, and the filter names only tag patterns.
    OnlyTagsFiltered {
        branch: String,
    },
    /// A tag push, and the filter names only branch patterns.
    OnlyBranchesFiltered {
        tag: String,
    },
    NoPathIncluded {
        files: usize,
    },
    AllPathsIgnored {
        files: usize,
    },
    NoChangedFiles,
    ActionNotListed {
        action: String,
        types: Vec<String>,
    },
    InvalidPattern {
        pattern: String,
        error: PatternError,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NotABranchOrTag { git_ref } => {
                write!(f, "`{git_ref}` is neither a branch nor a tag")
            }
            SkipReason::BranchNotIncluded { branch } => {
                write!(f, "branch `{branch}` is not included by `branches`")
            }
            SkipReason::BranchIgnored { branch } => {
                write!(f, "branch `{branch}` is ignored by `branches-ignore`")
            }
            SkipReason::TagNotIncluded { tag } => {
                write!(f, "tag `{tag}` is not included by `tags`")
            }
            SkipReason::TagIgnored { tag } => write!(f, "tag `{tag}` is ignored by `tags-ignore`"),
            SkipReason::OnlyTagsFiltered { branch } => write!(
                f,
                "branch `{branch}`: the push filter names only tags, so branches do not run"
            ),
            SkipReason::OnlyBranchesFiltered { tag } => write!(
                f,
                "tag `{tag}`: the push filter names only branches, so tags do not run"
            ),
            SkipReason::NoPathIncluded { files } => {
                write!(
                    f,
                    "none of the {files} changed files is included by `paths`"
                )
            }
            SkipReason::AllPathsIgnored { files } => {
                write!(f, "all {files} changed files are ignored by `paths-ignore`")
            }
            SkipReason::NoChangedFiles => {
                write!(f, "no files changed, and the workflow filters paths")
            }
            SkipReason::ActionNotListed { action, types } => write!(
                f,
                "pull request action `{action}` is not in `types` ({})",
                types.join(", ")
            ),
            SkipReason::InvalidPattern { pattern, error } => {
                write!(f, "invalid filter pattern `{pattern}`: {error}")
            }
        }
    }
}

/// The pull request activity types that run when `types` is not given.
pub const DEFAULT_PR_TYPES: [&str; 3] = ["opened", "synchronize", "reopened"];

/// Does a push to `git_ref` (`refs/heads/main`, `refs/tags/v1`) that
/// changed `changed` (`None`: unknown) run a workflow with this `on.push`?
pub fn push_matches(filter: &RefFilter, git_ref: &str, changed: Option<&[String]>) -> Match {
    let branch_filtered = !filter.branches.is_empty() || !filter.branches_ignore.is_empty();
    let tag_filtered = !filter.tags.is_empty() || !filter.tags_ignore.is_empty();
    if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
        if branch_filtered {
            if let Err(skip) = check_branch(filter, branch) {
                return Match::Skip(skip);
            }
        } else if tag_filtered {
            return Match::Skip(SkipReason::OnlyTagsFiltered {
                branch: branch.to_owned(),
            });
        }
        return paths_match(filter, changed);
    }
    if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
        if tag_filtered {
            let inc = match included(&filter.tags, tag) {
                Ok(v) => v,
                Err(skip) => return Match::Skip(skip),
            };
            if !filter.tags.is_empty() && !inc {
                return Match::Skip(SkipReason::TagNotIncluded {
                    tag: tag.to_owned(),
                });
            }
            match included(&filter.tags_ignore, tag) {
                Ok(true) => {
                    return Match::Skip(SkipReason::TagIgnored {
                        tag: tag.to_owned(),
                    });
                }
                Ok(false) => {}
                Err(skip) => return Match::Skip(skip),
            }
        } else if branch_filtered {
            return Match::Skip(SkipReason::OnlyBranchesFiltered {
                tag: tag.to_owned(),
            });
        }
        return Match::Run;
    }
    Match::Skip(SkipReason::NotABranchOrTag {
        git_ref: git_ref.to_owned(),
    })
}

/// Does a pull request event run a workflow with this `on.pull_request`?
/// `action` is GitHub's name (`opened`, `synchronize`, `closed` …);
/// `base_ref` is the target branch, with or without `refs/heads/`.
pub fn pull_request_matches(
    trigger: &PullRequestTrigger,
    action: &str,
    base_ref: &str,
    changed: Option<&[String]>,
) -> Match {
    let listed = if trigger.types.is_empty() {
        DEFAULT_PR_TYPES.contains(&action)
    } else {
        trigger.types.iter().any(|t| t == action)
    };
    if !listed {
        let types = if trigger.types.is_empty() {
            DEFAULT_PR_TYPES.iter().map(|s| (*s).to_owned()).collect()
        } else {
            trigger.types.clone()
        };
        return Match::Skip(SkipReason::ActionNotListed {
            action: action.to_owned(),
            types,
        });
    }
    let branch = base_ref.strip_prefix("refs/heads/").unwrap_or(base_ref);
    if let Err(skip) = check_branch(&trigger.filter, branch) {
        return Match::Skip(skip);
    }
    paths_match(&trigger.filter, changed)
}

fn check_branch(filter: &RefFilter, branch: &str) -> Result<(), SkipReason> {
    if !filter.branches.is_empty() && !included(&filter.branches, branch)? {
        return Err(SkipReason::BranchNotIncluded {
            branch: branch.to_owned(),
        });
    }
    if included(&filter.branches_ignore, branch)? {
        return Err(SkipReason::BranchIgnored {
            branch: branch.to_owned(),
        });
    }
    Ok(())
}

fn paths_match(filter: &RefFilter, changed: Option<&[String]>) -> Match {
    if filter.paths.is_empty() && filter.paths_ignore.is_empty() {
        return Match::Run;
    }
    let Some(files) = changed else {
        return Match::Run;
    };
    if files.is_empty() {
        return Match::Skip(SkipReason::NoChangedFiles);
    }
    let result = (|| {
        if !filter.paths.is_empty() {
            let mut any = false;
            for f in files {
                if included(&filter.paths, f)? {
                    any = true;
                    break;
                }
            }
            if !any {
                return Err(SkipReason::NoPathIncluded { files: files.len() });
            }
        }
        if !filter.paths_ignore.is_empty() {
            let mut all = true;
            for f in files {
                if !included(&filter.paths_ignore, f)? {
                    all = false;
                    break;
                }
            }
            if all {
                return Err(SkipReason::AllPathsIgnored { files: files.len() });
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Match::Run,
        Err(skip) => Match::Skip(skip),
    }
}

/// Read `patterns` in order; the last one that matches `subject` decides.
fn included(patterns: &[String], subject: &str) -> Result<bool, SkipReason> {
    let mut inc = false;
    for raw in patterns {
        let p = Pattern::compile(raw).map_err(|error| SkipReason::InvalidPattern {
            pattern: raw.clone(),
            error,
        })?;
        if p.matches(subject) {
            inc = !p.negated;
        }
    }
    Ok(inc)
}
