//! Expression errors point at the exact character, whatever the scalar style.

use kiln_model::workflow::Loc;
use kiln_pipeline::load;

/// The (line, col) of each diagnostic of a one-job workflow whose step is `step`.
fn positions(step: &str) -> Vec<(u32, u32, String)> {
    let src = format!("on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n{step}");
    load::load("ci.yml", &src)
        .diagnostics
        .into_iter()
        .map(|d| (d.loc.line, d.loc.col, d.message))
        .collect()
}

fn locs(step: &str) -> Vec<Loc> {
    positions(step)
        .into_iter()
        .map(|(line, col, _)| Loc { line, col })
        .collect()
}

#[test]
fn plain_scalar() {
    assert_eq!(
        locs("      - run: echo ${{ foo.x }}\n"),
        [Loc { line: 6, col: 23 }]
    );
}

#[test]
fn multi_line_plain_scalar() {
    assert_eq!(
        locs("      - run: echo a\n          b ${{ foo }}\n"),
        [Loc { line: 7, col: 17 }]
    );
}

#[test]
fn single_quoted_with_escaped_quote() {
    // `''` is one character of the value but two of the source.
    assert_eq!(
        locs("      - run: 'it''s ${{ foo }}'\n"),
        [Loc { line: 6, col: 25 }]
    );
}

#[test]
fn double_quoted_with_escapes() {
    assert_eq!(
        locs("      - run: \"a\\tb\\\"c ${{ foo }}\"\n"),
        [Loc { line: 6, col: 27 }]
    );
}

#[test]
fn literal_block() {
    let step = "      - run: |\n          echo one\n            echo ${{ github.sha }}\n          echo ${{ foo.bar }}\n";
    assert_eq!(locs(step), [Loc { line: 9, col: 20 }]);
}

#[test]
fn literal_block_with_blank_lines() {
    let step = "      - run: |\n\n          echo one\n\n          echo ${{ foo }}\n";
    assert_eq!(locs(step), [Loc { line: 10, col: 20 }]);
}

#[test]
fn folded_block() {
    let step = "      - run: >-\n          echo one\n          two ${{ foo }}\n";
    assert_eq!(locs(step), [Loc { line: 8, col: 19 }]);
}

#[test]
fn syntax_error_in_block() {
    let step = "      - run: |\n          echo ok\n          echo ${{ github.sha == }}\n";
    let p = positions(step);
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].0, p[0].1), (8, 33));
    assert!(p[0].2.starts_with("invalid expression"), "{}", p[0].2);
}

#[test]
fn bare_condition() {
    let src = "on: push\njobs:\n  build:\n    runs-on: x\n    if: github.ref == 'x' && foo.y\n    steps:\n      - run: make\n";
    let d = load::load("ci.yml", src).diagnostics;
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].loc, d[0].len), (Loc { line: 5, col: 30 }, 3));
}
