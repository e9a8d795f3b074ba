//! Rendering of diagnostics, plain and coloured, and the summary line.

use kiln_model::workflow::Loc;
use kiln_pipeline::diag::{self, Diagnostic, Severity};

fn d(
    severity: Severity,
    line: u32,
    col: u32,
    len: u32,
    message: &str,
    help: Option<&str>,
) -> Diagnostic {
    Diagnostic {
        severity,
        file: ".kiln/workflows/ci.yml".into(),
        loc: Loc { line, col },
        len,
        message: message.into(),
        help: help.map(Into::into),
    }
}

const SRC: &str = "on: push\njobs:\n  build:\n    runs_on: ubuntu-latest\n";

#[test]
fn rustc_style() {
    let ds = [
        d(
            Severity::Error,
            4,
            5,
            7,
            "unknown key `runs_on` in job `build`",
            Some("did you mean `runs-on`?"),
        ),
        d(Severity::Warning, 1, 5, 4, "a warning", None),
    ];
    let out = diag::render(&ds, |_| Some(SRC), false);
    insta::assert_snapshot!(out, @r"
    error: unknown key `runs_on` in job `build`
     --> .kiln/workflows/ci.yml:4:5
      |
    4 |     runs_on: ubuntu-latest
      |     ^^^^^^^
      |
      = help: did you mean `runs-on`?

    warning: a warning
     --> .kiln/workflows/ci.yml:1:5
      |
    1 | on: push
      |     ^^^^
    ");
}

#[test]
fn without_source_or_past_the_line_end() {
    let ds = [d(Severity::Error, 4, 30, 3, "at the end", None)];
    // Clamped to the end of the line rather than panicking.
    let out = diag::render(&ds, |_| Some(SRC), false);
    assert!(out.contains("ci.yml:4:27"), "{out}");
    let out = diag::render(&ds, |_| None, false);
    assert!(out.starts_with("error: at the end\n"), "{out}");
    assert!(out.contains(".kiln/workflows/ci.yml:4:30"), "{out}");
}

#[test]
fn color_adds_escapes() {
    let ds = [d(Severity::Error, 1, 1, 2, "bad", None)];
    assert!(diag::render(&ds, |_| Some(SRC), true).contains('\u{1b}'));
    assert!(!diag::render(&ds, |_| Some(SRC), false).contains('\u{1b}'));
}

#[test]
fn summary_line() {
    let e = d(Severity::Error, 1, 1, 1, "e", None);
    let w = d(Severity::Warning, 1, 1, 1, "w", None);
    let f = ".kiln/workflows/ci.yml";
    assert_eq!(diag::summary(&[], f), None);
    assert_eq!(
        diag::summary(std::slice::from_ref(&e), f).as_deref(),
        Some("error: 1 error in .kiln/workflows/ci.yml")
    );
    assert_eq!(
        diag::summary(&[e.clone(), e.clone(), e.clone(), w.clone()], f).as_deref(),
        Some("error: 3 errors and 1 warning in .kiln/workflows/ci.yml")
    );
    assert_eq!(
        diag::summary(&[w.clone(), w], f).as_deref(),
        Some("warning: 2 warnings in .kiln/workflows/ci.yml")
    );
}
