//! The four real workflows load; kiln names exactly their unsupported
//! actions and warns of GitHub-hosted runner labels (held in snapshots),
//! and their matrices expand as on GitHub.

use kiln_model::workflow::{Dyn, Matrix, StepAction, Workflow};
use kiln_pipeline::diag::{self, Severity};
use kiln_pipeline::load::{self, Loaded};
use kiln_pipeline::matrix;

fn read(name: &str) -> String {
    let path = format!(
        "{}/../../../shared/fixtures/workflows/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn load_fixture(name: &str) -> (Loaded, String) {
    let src = read(name);
    (load::load(name, &src), src)
}

fn check(name: &str) -> Workflow {
    let (loaded, src) = load_fixture(name);
    // Every diagnostic is an unsupported action, and every unsupported action has one.
    let unsupported: Vec<&String> = loaded
        .workflow
        .iter()
        .flat_map(|w| &w.jobs)
        .flat_map(|j| &j.steps)
        .filter_map(|s| match &s.action {
            StepAction::Unsupported { uses } => Some(uses),
            StepAction::Run { .. } | StepAction::Uses { .. } => None,
        })
        .collect();
    // Besides, only warnings that a `runs-on` names a GitHub-hosted runner.
    let (errors, warnings): (Vec<_>, Vec<_>) = loaded
        .diagnostics
        .iter()
        .partition(|d| d.severity == Severity::Error);
    for w in &warnings {
        assert!(
            w.message.ends_with("is a GitHub-hosted runner label"),
            "{w:#?}"
        );
    }
    assert_eq!(errors.len(), unsupported.len(), "{:#?}", loaded.diagnostics);
    for (d, uses) in errors.iter().zip(&unsupported) {
        assert_eq!(d.severity, Severity::Error);
        assert_eq!(
            d.message,
            format!("action `{uses}` is not supported by kiln")
        );
        let line = src.lines().nth(d.loc.line as usize - 1).unwrap_or_default();
        let at: String = line
            .chars()
            .skip(d.loc.col as usize - 1)
            .take(d.len as usize)
            .collect();
        assert_eq!(&at, *uses);
    }
    let rendered = diag::render(&loaded.diagnostics, |_| Some(src.as_str()), false);
    insta::assert_snapshot!(name, rendered);
    loaded.workflow.expect("workflow")
}

/// The number of combinations of each job's literal matrix.
fn matrix_sizes(wf: &Workflow) -> Vec<(String, usize)> {
    wf.jobs
        .iter()
        .filter_map(|j| match &j.strategy.matrix {
            Some(Matrix::Static(spec)) => {
                let axes: Vec<_> = spec
                    .axes
                    .iter()
                    .map(|(k, v)| match v {
                        Dyn::Lit(v) => (k.clone(), v.clone()),
                        Dyn::Expr(_) => panic!("dynamic axis"),
                    })
                    .collect();
                let lit = |d: &Dyn<Vec<kiln_model::Value>>| match d {
                    Dyn::Lit(v) => v.clone(),
                    Dyn::Expr(_) => panic!("dynamic include/exclude"),
                };
                let combos = matrix::expand(&axes, &lit(&spec.include), &lit(&spec.exclude))
                    .expect("expands");
                Some((j.id.to_string(), combos.len()))
            }
            Some(Matrix::Dynamic(_)) | None => None,
        })
        .collect()
}

#[test]
fn ripgrep() {
    let wf = check("burntsushi-ripgrep-ci.yml");
    assert_eq!(wf.jobs.len(), 5);
    assert_eq!(matrix_sizes(&wf), vec![("test".to_owned(), 18)]);
    assert_eq!(wf.on.schedule[0].cron, "00 01 * * *");
}

#[test]
fn just() {
    let wf = check("casey-just-ci.yaml");
    assert_eq!(matrix_sizes(&wf), vec![("all".to_owned(), 3)]);
    assert_eq!(
        wf.on
            .pull_request
            .as_ref()
            .map(|p| p.filter.branches.clone()),
        Some(vec!["*".to_owned()])
    );
}

#[test]
fn flask() {
    let wf = check("pallets-flask-tests.yaml");
    assert_eq!(matrix_sizes(&wf), vec![("tests".to_owned(), 11)]);
    let push = wf.on.push.as_ref().expect("push");
    assert_eq!(push.paths_ignore, vec!["docs/**", "*.md", "*.rst"]);
}

#[test]
fn fd() {
    let wf = check("sharkdp-fd-cicd.yml");
    assert_eq!(matrix_sizes(&wf), vec![("build".to_owned(), 14)]);
    assert!(wf.on.workflow_dispatch.is_some());
    let winget = wf
        .jobs
        .iter()
        .find(|j| j.id.as_str() == "winget")
        .expect("winget");
    assert_eq!(winget.needs, vec!["build".into()]);
}

#[test]
fn default_display_names() {
    let wf = check("casey-just-ci.yaml");
    let Some(Matrix::Static(spec)) = &wf.jobs[0].strategy.matrix else {
        panic!("matrix")
    };
    let Dyn::Lit(os) = &spec.axes[0].1 else {
        panic!("axis")
    };
    let combos = matrix::expand(&[("os".into(), os.clone())], &[], &[]).expect("expands");
    let names: Vec<String> = combos
        .iter()
        .map(|c| matrix::display_name("all", c))
        .collect();
    assert_eq!(
        names,
        [
            "all (ubuntu-latest)",
            "all (macos-latest)",
            "all (windows-latest)"
        ]
    );
}
