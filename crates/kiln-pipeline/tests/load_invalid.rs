//! Each file in `tests/fixtures/invalid/` has one problem or a few; the
//! rendered diagnostics of each are held in a snapshot.

use kiln_pipeline::diag;
use kiln_pipeline::load;

#[test]
fn invalid_fixtures() {
    let dir = format!("{}/tests/fixtures/invalid", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15);
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        let src = std::fs::read_to_string(&path).expect("read");
        let loaded = load::load(&name, &src);
        assert!(loaded.has_errors(), "{name} should have errors");
        let mut out = diag::render(&loaded.diagnostics, |_| Some(src.as_str()), false);
        out.push_str("\n\n");
        out.push_str(&diag::summary(&loaded.diagnostics, &name).unwrap_or_default());
        insta::assert_snapshot!(name.trim_end_matches(".yml"), out);
    }
}
