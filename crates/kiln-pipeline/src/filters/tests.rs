//! The filters against GitHub's documented examples, and patterns that
//! must stay fast.

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
