//! The loader never panics, whatever the input.

use kiln_pipeline::load;
use proptest::prelude::*;

#[test]
fn odd_inputs() {
    for src in [
        "",
        "# only a comment\n",
        "on: [push, {x: 1}]\njobs: []\n",
        "on: push\r\njobs:\r\n  a:\r\n    runs-on: x\r\n    steps:\r\n      - run: \"${{ foo }}\"\r\n",
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: \"\\u00e9 ${{ ",
        "a: &x 1\nb: *x\n",
        "---\non: push\n---\njobs: {}\n",
        "on: push\njobs:\n  a:\n    strategy:\n      matrix: {include: [1, {}], exclude: x}\n",
    ] {
        let _ = load::load("w.yml", src);
    }
}

proptest! {
    #[test]
    fn never_panics(src in "[a-z:{}\\[\\]$ '\"|>#\\-\n]{0,80}") {
        let _ = load::load("w.yml", &src);
    }

    #[test]
    fn never_panics_in_a_run_script(script in "[a-z.$ {}()'\"=!&|\\\\\n]{0,40}") {
        let src = format!("on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: |\n          {}\n", script.replace('\n', "\n          "));
        let _ = load::load("w.yml", &src);
    }
}
