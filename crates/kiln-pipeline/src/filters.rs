//! Branch, tag and path filters of `on.push` and `on.pull_request`, with
//! GitHub's semantics.
//!
//! Given a workflow's [`RefFilter`] and what an event touched (a ref, the
//! changed files), decide [`Match::Run`] or [`Match::Skip`] with the reason
//! a user sees. Pure: the caller computes the changed files (from the
//! webhook payload or with git) and passes them in.
//!
//! # Patterns
//!
//! GitHub's filter patterns are not shell globs, so they are matched here by
//! hand rather than with `globset`: `?` and `+` are quantifiers on the
//! preceding character (`*.jsx?` matches `page.js` and `page.jsx`;
//! `v[12].[0-9]+.[0-9]+` matches `v1.10.1`), and `**` may stand inside a
//! path component (`**.js`, which `globset` rejects). The language:
//! - `*` any run of characters except `/`; `**` any run of characters;
//!   `**/` zero or more whole leading directories (`**/README.md` matches
//!   `README.md` and `js/README.md`);
//! - `?` zero or one, `+` one or more, of the preceding character or class
//!   (at the start of a pattern they are literal);
//! - `[...]` one character from the list; ranges only within `a-z`, `A-Z`
//!   or `0-9`;
//! - `\` makes the next character literal; every other character (`.`
//!   included) is itself;
//! - a leading `!` negates the pattern. The whole pattern must match.
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

use kiln_model::workflow::{PullRequestTrigger, RefFilter};
use std::fmt;

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

/// What is wrong with a filter pattern.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("`[` at {at} is never closed")]
    UnclosedBracket { at: usize },
    #[error("empty brackets `[]` at {at}")]
    EmptyBrackets { at: usize },
    #[error("range `{lo}-{hi}` must lie within a-z, A-Z or 0-9")]
    BadRange { lo: char, hi: char },
    #[error("trailing `\\`")]
    TrailingEscape,
    #[error("empty pattern")]
    Empty,
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

/// Check a pattern's syntax, for diagnostics at load time.
pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
    Pattern::compile(pattern).map(|_| ())
}

/// Does `pattern` (without a leading `!`, which is literal here) match
/// `subject`? `None` when the pattern is invalid.
pub fn pattern_matches(pattern: &str, subject: &str) -> Option<bool> {
    let p = Pattern::compile_body(pattern).ok()?;
    Some(p.matches(subject))
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

#[derive(Clone, Debug, PartialEq)]
enum Atom {
    Char(char),
    /// Inclusive ranges; a single character is `(c, c)`.
    Class(Vec<(char, char)>),
    /// Any character but `/` (`*`'s element).
    NotSlash,
    /// Any character (`**`'s element).
    Any,
    /// `**/`: nothing, or one or more characters ending in `/`.
    Dirs,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rep {
    One,
    Optional,
    Many,
}

#[derive(Debug)]
struct Pattern {
    negated: bool,
    pieces: Vec<(Atom, Rep)>,
}

impl Pattern {
    fn compile(raw: &str) -> Result<Pattern, PatternError> {
        match raw.strip_prefix('!') {
            Some(body) => Ok(Pattern {
                negated: true,
                ..Pattern::compile_body(body)?
            }),
            None => Pattern::compile_body(raw),
        }
    }

    fn compile_body(src: &str) -> Result<Pattern, PatternError> {
        if src.is_empty() {
            return Err(PatternError::Empty);
        }
        let chars: Vec<char> = src.chars().collect();
        let mut pieces: Vec<(Atom, Rep)> = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '*' => {
                    if chars.get(i + 1) == Some(&'*') {
                        if chars.get(i + 2) == Some(&'/') {
                            pieces.push((Atom::Dirs, Rep::One));
                            i += 3;
                        } else {
                            pieces.push((Atom::Any, Rep::Many));
                            i += 2;
                        }
                    } else {
                        pieces.push((Atom::NotSlash, Rep::Many));
                        i += 1;
                    }
                }
                '?' | '+' => {
                    let quantifiable = matches!(
                        pieces.last(),
                        Some((Atom::Char(_) | Atom::Class(_), Rep::One))
                    );
                    match pieces.last_mut() {
                        Some((_, rep)) if quantifiable && c == '?' => *rep = Rep::Optional,
                        Some((atom, _)) if quantifiable => {
                            // `a+` is `a` then `a*`.
                            let atom = atom.clone();
                            pieces.push((atom, Rep::Many));
                        }
                        // After a wildcard or another quantifier the set of
                        // matches does not change.
                        Some(_) => {}
                        // At the start there is nothing to repeat: literal.
                        None => pieces.push((Atom::Char(c), Rep::One)),
                    }
                    i += 1;
                }
                '[' => {
                    let start = i;
                    i += 1;
                    if chars.get(i) == Some(&']') {
                        return Err(PatternError::EmptyBrackets { at: start });
                    }
                    let mut set = Vec::new();
                    loop {
                        let Some(&c) = chars.get(i) else {
                            return Err(PatternError::UnclosedBracket { at: start });
                        };
                        if c == ']' {
                            i += 1;
                            break;
                        }
                        if chars.get(i + 1) == Some(&'-')
                            && chars.get(i + 2).is_some_and(|&h| h != ']')
                        {
                            let hi = chars[i + 2];
                            let same_kind = (c.is_ascii_lowercase() && hi.is_ascii_lowercase())
                                || (c.is_ascii_uppercase() && hi.is_ascii_uppercase())
                                || (c.is_ascii_digit() && hi.is_ascii_digit());
                            if !same_kind || c > hi {
                                return Err(PatternError::BadRange { lo: c, hi });
                            }
                            set.push((c, hi));
                            i += 3;
                        } else {
                            set.push((c, c));
                            i += 1;
                        }
                    }
                    pieces.push((Atom::Class(set), Rep::One));
                }
                '\\' => {
                    let Some(&next) = chars.get(i + 1) else {
                        return Err(PatternError::TrailingEscape);
                    };
                    pieces.push((Atom::Char(next), Rep::One));
                    i += 2;
                }
                c => {
                    pieces.push((Atom::Char(c), Rep::One));
                    i += 1;
                }
            }
        }
        Ok(Pattern {
            negated: false,
            pieces,
        })
    }

    fn matches(&self, subject: &str) -> bool {
        let text: Vec<char> = subject.chars().collect();
        // memo[p * (n + 1) + t]: does pieces[p..] match text[t..]?
        let n = text.len();
        let mut memo: Vec<Option<bool>> = vec![None; (self.pieces.len() + 1) * (n + 1)];
        self.match_from(0, 0, &text, &mut memo)
    }

    fn match_from(&self, p: usize, t: usize, text: &[char], memo: &mut [Option<bool>]) -> bool {
        let n = text.len();
        let key = p * (n + 1) + t;
        if let Some(v) = memo[key] {
            return v;
        }
        let result = match self.pieces.get(p) {
            None => t == n,
            Some((Atom::Dirs, _)) => {
                self.match_from(p + 1, t, text, memo)
                    || (t + 1..n)
                        .any(|j| text[j] == '/' && self.match_from(p + 1, j + 1, text, memo))
            }
            Some((atom, Rep::One)) => {
                t < n && accepts(atom, text[t]) && self.match_from(p + 1, t + 1, text, memo)
            }
            Some((atom, Rep::Optional)) => {
                self.match_from(p + 1, t, text, memo)
                    || (t < n
                        && accepts(atom, text[t])
                        && self.match_from(p + 1, t + 1, text, memo))
            }
            Some((atom, Rep::Many)) => {
                self.match_from(p + 1, t, text, memo)
                    || (t < n && accepts(atom, text[t]) && self.match_from(p, t + 1, text, memo))
            }
        };
        memo[key] = Some(result);
        result
    }
}

fn accepts(atom: &Atom, c: char) -> bool {
    match atom {
        Atom::Char(x) => *x == c,
        Atom::Class(set) => set.iter().any(|&(lo, hi)| lo <= c && c <= hi),
        Atom::NotSlash => c != '/',
        Atom::Any => true,
        Atom::Dirs => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    /// GitHub's "Filter pattern cheat sheet": patterns to match branches
    /// and tags, and patterns to match file paths. Each row: the pattern,
    /// subjects it matches, subjects it does not.
    #[test]
    fn cheat_sheet() {
        let rows: &[(&str, &[&str], &[&str])] = &[
            (
                "feature/*",
                &["feature/my-branch", "feature/your-branch"],
                &["feature/beta-a/my-branch", "feature"],
            ),
            (
                "feature/**",
                &[
                    "feature/beta-a/my-branch",
                    "feature/your-branch",
                    "feature/mona/the/octocat",
                ],
                &["features/x"],
            ),
            ("main", &["main"], &["main2", "mainline", "x/main"]),
            (
                "releases/mona-the-octocat",
                &["releases/mona-the-octocat"],
                &["releases/mona"],
            ),
            ("*", &["main", "releases"], &["releases/v1", "feature/x"]),
            ("**", &["all/the/branches", "every/tag", "main"], &[]),
            (
                "*feature",
                &["mona-feature", "feature", "ver-10-feature"],
                &["feature-x", "a/feature"],
            ),
            ("v2*", &["v2", "v2.0", "v2.9"], &["v1.0", "v2/x"]),
            (
                "v[12].[0-9]+.[0-9]+",
                &["v1.10.1", "v2.0.0"],
                &["v3.0.0", "v1.x.1", "v1.1", "v12.0.0"],
            ),
            // Paths.
            ("*", &["README.md", "server.rb"], &["docs/README.md"]),
            (
                "*.jsx?",
                &["page.js", "page.jsx"],
                &["page.jsxx", "src/page.js"],
            ),
            ("**", &["all/the/files.md"], &[]),
            ("*.js", &["app.js", "index.js"], &["js/index.js", "app.jsx"]),
            (
                "**.js",
                &["index.js", "js/index.js", "src/js/app.js"],
                &["index.jsx"],
            ),
            (
                "docs/*",
                &["docs/README.md", "docs/file.txt"],
                &["docs/mona/octocat.txt"],
            ),
            (
                "docs/**",
                &["docs/README.md", "docs/mona/octocat.txt"],
                &["README.md", "mydocs/a"],
            ),
            (
                "docs/**/*.md",
                &[
                    "docs/README.md",
                    "docs/mona/hello-world.md",
                    "docs/a/markdown/file.md",
                ],
                &["docs/a.txt", "README.md"],
            ),
            (
                "**/docs/**",
                &[
                    "docs/hello.md",
                    "dir/docs/my-file.txt",
                    "space/docs/plan/space.doc",
                ],
                &["mydocs/a"],
            ),
            (
                "**/README.md",
                &["README.md", "js/README.md"],
                &["README.mdx", "js/README"],
            ),
            (
                "**/*src/**",
                &["a/src/app.js", "my-src/code/js/app.js"],
                &["src.js"],
            ),
            (
                "**/*-post.md",
                &["my-post.md", "path/their-post.md"],
                &["post.md"],
            ),
            (
                "**/migrate-*.sql",
                &[
                    "migrate-10909.sql",
                    "db/migrate-v1.0.sql",
                    "db/sept/migrate-v1.sql",
                ],
                &["migrate.sql"],
            ),
            // The syntax list's examples.
            ("[CB]at", &["Cat", "Bat"], &["Hat", "at"]),
            ("[1-2]00", &["100", "200"], &["300"]),
            ("a+b", &["ab", "aab", "aaab"], &["b"]),
            ("+x", &["+x"], &["x"]),
            ("a\\*b", &["a*b"], &["axb"]),
        ];
        for (pattern, yes, no) in rows {
            for subject in *yes {
                assert_eq!(
                    pattern_matches(pattern, subject),
                    Some(true),
                    "{pattern} should match {subject}"
                );
            }
            for subject in *no {
                assert_eq!(
                    pattern_matches(pattern, subject),
                    Some(false),
                    "{pattern} should not match {subject}"
                );
            }
        }
    }

    #[test]
    fn negation_order() {
        // The cheat sheet's two path examples with `!`.
        let f = s(&["*.md", "!README.md"]);
        assert_eq!(included(&f, "hello.md"), Ok(true));
        assert_eq!(included(&f, "README.md"), Ok(false));
        assert_eq!(included(&f, "docs/hello.md"), Ok(false));
        let f = s(&["*.md", "!README.md", "README*"]);
        for yes in ["hello.md", "README.md", "README.doc"] {
            assert_eq!(included(&f, yes), Ok(true), "{yes}");
        }
        // A negation alone includes nothing.
        assert_eq!(included(&s(&["!main"]), "main"), Ok(false));
        assert_eq!(included(&s(&["!main"]), "dev"), Ok(false));
        // The branch example: releases, but not alpha releases.
        let f = s(&["releases/**", "!releases/**-alpha"]);
        assert_eq!(included(&f, "releases/10"), Ok(true));
        assert_eq!(included(&f, "releases/10-alpha"), Ok(false));
        assert_eq!(included(&f, "releases/beta/3-alpha"), Ok(false));
        // `!` not first is literal.
        assert_eq!(pattern_matches("a!b", "a!b"), Some(true));
    }

    fn push_filter(f: impl FnOnce(&mut RefFilter)) -> RefFilter {
        let mut r = RefFilter::default();
        f(&mut r);
        r
    }

    #[test]
    fn push_branches_and_tags() {
        let any = RefFilter::default();
        assert_eq!(push_matches(&any, "refs/heads/x", None), Match::Run);
        assert_eq!(push_matches(&any, "refs/tags/v1", None), Match::Run);
        assert!(matches!(
            push_matches(&any, "refs/pull/1/head", None),
            Match::Skip(SkipReason::NotABranchOrTag { .. })
        ));

        let branches = push_filter(|f| f.branches = s(&["main", "releases/**"]));
        assert_eq!(push_matches(&branches, "refs/heads/main", None), Match::Run);
        assert_eq!(
            push_matches(&branches, "refs/heads/releases/1.0", None),
            Match::Run
        );
        assert_eq!(
            push_matches(&branches, "refs/heads/dev", None),
            Match::Skip(SkipReason::BranchNotIncluded {
                branch: "dev".into()
            })
        );
        // Only branches named: tags do not run.
        assert_eq!(
            push_matches(&branches, "refs/tags/v1", None),
            Match::Skip(SkipReason::OnlyBranchesFiltered { tag: "v1".into() })
        );

        let tags = push_filter(|f| f.tags = s(&["v[0-9]+.*"]));
        assert_eq!(push_matches(&tags, "refs/tags/v1.2", None), Match::Run);
        assert_eq!(
            push_matches(&tags, "refs/tags/nightly", None),
            Match::Skip(SkipReason::TagNotIncluded {
                tag: "nightly".into()
            })
        );
        assert_eq!(
            push_matches(&tags, "refs/heads/main", None),
            Match::Skip(SkipReason::OnlyTagsFiltered {
                branch: "main".into()
            })
        );

        let both = push_filter(|f| {
            f.branches = s(&["main"]);
            f.tags = s(&["v*"]);
        });
        assert_eq!(push_matches(&both, "refs/heads/main", None), Match::Run);
        assert_eq!(push_matches(&both, "refs/tags/v2", None), Match::Run);

        let ignore = push_filter(|f| f.branches_ignore = s(&["dependabot/**", "!dependabot/keep"]));
        assert_eq!(push_matches(&ignore, "refs/heads/main", None), Match::Run);
        assert_eq!(
            push_matches(&ignore, "refs/heads/dependabot/keep", None),
            Match::Run
        );
        assert_eq!(
            push_matches(&ignore, "refs/heads/dependabot/npm/x", None),
            Match::Skip(SkipReason::BranchIgnored {
                branch: "dependabot/npm/x".into()
            })
        );
        // branches-ignore alone counts as a branch filter: tags do not run.
        assert!(matches!(
            push_matches(&ignore, "refs/tags/v1", None),
            Match::Skip(SkipReason::OnlyBranchesFiltered { .. })
        ));

        let tag_ignore = push_filter(|f| f.tags_ignore = s(&["*-rc*"]));
        assert_eq!(push_matches(&tag_ignore, "refs/tags/v1", None), Match::Run);
        assert!(matches!(
            push_matches(&tag_ignore, "refs/tags/v1-rc1", None),
            Match::Skip(SkipReason::TagIgnored { .. })
        ));
        assert!(matches!(
            push_matches(&tag_ignore, "refs/heads/main", None),
            Match::Skip(SkipReason::OnlyTagsFiltered { .. })
        ));
    }

    #[test]
    fn push_paths() {
        let docs = push_filter(|f| f.paths = s(&["docs/**"]));
        let changed = s(&["src/main.rs", "docs/a.md"]);
        assert_eq!(
            push_matches(&docs, "refs/heads/main", Some(&changed)),
            Match::Run
        );
        let code_only = s(&["src/main.rs"]);
        assert_eq!(
            push_matches(&docs, "refs/heads/main", Some(&code_only)),
            Match::Skip(SkipReason::NoPathIncluded { files: 1 })
        );
        // Unknown changes: paths are not evaluated.
        assert_eq!(push_matches(&docs, "refs/heads/main", None), Match::Run);
        assert_eq!(
            push_matches(&docs, "refs/heads/main", Some(&[])),
            Match::Skip(SkipReason::NoChangedFiles)
        );
        // Tags: paths are not evaluated.
        assert_eq!(
            push_matches(&docs, "refs/tags/v1", Some(&code_only)),
            Match::Run
        );

        let ignore_docs = push_filter(|f| f.paths_ignore = s(&["docs/**", "**.md"]));
        let all_docs = s(&["docs/a.txt", "README.md"]);
        assert_eq!(
            push_matches(&ignore_docs, "refs/heads/main", Some(&all_docs)),
            Match::Skip(SkipReason::AllPathsIgnored { files: 2 })
        );
        let mixed = s(&["docs/a.txt", "src/lib.rs"]);
        assert_eq!(
            push_matches(&ignore_docs, "refs/heads/main", Some(&mixed)),
            Match::Run
        );

        // Branch and paths both given: both must pass.
        let both = push_filter(|f| {
            f.branches = s(&["main"]);
            f.paths = s(&["src/**"]);
        });
        assert_eq!(
            push_matches(&both, "refs/heads/main", Some(&mixed)),
            Match::Run
        );
        assert!(matches!(
            push_matches(&both, "refs/heads/dev", Some(&mixed)),
            Match::Skip(SkipReason::BranchNotIncluded { .. })
        ));
        assert!(matches!(
            push_matches(&both, "refs/heads/main", Some(&all_docs)),
            Match::Skip(SkipReason::NoPathIncluded { .. })
        ));

        // The cheat sheet's negation example, as a filter.
        let md = push_filter(|f| f.paths = s(&["*.md", "!README.md"]));
        assert!(matches!(
            push_matches(&md, "refs/heads/main", Some(&s(&["README.md"]))),
            Match::Skip(_)
        ));
        assert_eq!(
            push_matches(&md, "refs/heads/main", Some(&s(&["README.md", "hello.md"]))),
            Match::Run
        );
    }

    #[test]
    fn pull_requests() {
        let default = PullRequestTrigger::default();
        for a in ["opened", "synchronize", "reopened"] {
            assert_eq!(
                pull_request_matches(&default, a, "main", None),
                Match::Run,
                "{a}"
            );
        }
        assert_eq!(
            pull_request_matches(&default, "closed", "main", None),
            Match::Skip(SkipReason::ActionNotListed {
                action: "closed".into(),
                types: s(&["opened", "synchronize", "reopened"]),
            })
        );
        let closed = PullRequestTrigger {
            types: s(&["closed"]),
            filter: RefFilter::default(),
        };
        assert_eq!(
            pull_request_matches(&closed, "closed", "main", None),
            Match::Run
        );
        assert!(matches!(
            pull_request_matches(&closed, "opened", "main", None),
            Match::Skip(_)
        ));

        let to_main = PullRequestTrigger {
            types: Vec::new(),
            filter: push_filter(|f| {
                f.branches = s(&["main", "release/*"]);
                f.paths_ignore = s(&["docs/**"]);
            }),
        };
        assert_eq!(
            pull_request_matches(&to_main, "opened", "refs/heads/main", None),
            Match::Run
        );
        assert_eq!(
            pull_request_matches(&to_main, "opened", "release/2", None),
            Match::Run
        );
        assert!(matches!(
            pull_request_matches(&to_main, "opened", "dev", None),
            Match::Skip(SkipReason::BranchNotIncluded { .. })
        ));
        assert!(matches!(
            pull_request_matches(&to_main, "synchronize", "main", Some(&s(&["docs/x.md"]))),
            Match::Skip(SkipReason::AllPathsIgnored { .. })
        ));
    }

    #[test]
    fn invalid_patterns() {
        assert_eq!(
            check_pattern("[abc"),
            Err(PatternError::UnclosedBracket { at: 0 })
        );
        assert_eq!(
            check_pattern("x[]"),
            Err(PatternError::EmptyBrackets { at: 1 })
        );
        assert_eq!(
            check_pattern("[a-Z]"),
            Err(PatternError::BadRange { lo: 'a', hi: 'Z' })
        );
        assert_eq!(
            check_pattern("[z-a]"),
            Err(PatternError::BadRange { lo: 'z', hi: 'a' })
        );
        assert_eq!(check_pattern("a\\"), Err(PatternError::TrailingEscape));
        assert_eq!(check_pattern("!"), Err(PatternError::Empty));
        assert_eq!(check_pattern("[a-]"), Ok(()));
        let f = push_filter(|f| f.branches = s(&["[main"]));
        let Match::Skip(reason) = push_matches(&f, "refs/heads/main", None) else {
            panic!("an invalid pattern runs nothing")
        };
        assert_eq!(
            reason.to_string(),
            "invalid filter pattern `[main`: `[` at 0 is never closed"
        );
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let p = "*a*a*a*a*a*a*a*a*a*a*b";
        let subject = "a".repeat(200);
        assert_eq!(pattern_matches(p, &subject), Some(false));
        assert_eq!(
            pattern_matches("**a**a**a**a**a**b", &"a/".repeat(100)),
            Some(false)
        );
    }
}
