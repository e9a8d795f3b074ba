//! GitHub's matrix rules, with the examples from its documentation.

use kiln_model::Value;
use kiln_pipeline::matrix::{self, Combination, MatrixError};

fn v(s: &str) -> Value {
    serde_json::from_str::<serde_json::Value>(s)
        .expect("json")
        .into()
}

fn axes(spec: &[(&str, &str)]) -> Vec<(String, Vec<Value>)> {
    spec.iter()
        .map(|(k, vals)| match v(vals) {
            Value::Array(a) => (k.to_string(), a),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn list(s: &str) -> Vec<Value> {
    match v(s) {
        Value::Array(a) => a,
        other => panic!("{other:?}"),
    }
}

/// Each combination as compact `k=v` text, keys in combination order.
fn show(combos: &[Combination]) -> Vec<String> {
    combos
        .iter()
        .map(|c| {
            c.iter()
                .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn cartesian_product_in_axis_order() {
    let combos = matrix::expand(
        &axes(&[
            ("version", "[10, 12, 14]"),
            ("os", r#"["ubuntu", "windows"]"#),
        ]),
        &[],
        &[],
    )
    .expect("expands");
    assert_eq!(
        show(&combos),
        [
            r#"version=10.0 os="ubuntu""#,
            r#"version=10.0 os="windows""#,
            r#"version=12.0 os="ubuntu""#,
            r#"version=12.0 os="windows""#,
            r#"version=14.0 os="ubuntu""#,
            r#"version=14.0 os="windows""#,
        ]
    );
}

/// "Expanding or adding matrix configurations", GitHub's fruit/animal example.
#[test]
fn github_include_example() {
    let include = list(
        r#"[{"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"}]"#,
    );
    let combos = matrix::expand(
        &axes(&[
            ("fruit", r#"["apple", "pear"]"#),
            ("animal", r#"["cat", "dog"]"#),
        ]),
        &include,
        &[],
    )
    .expect("expands");
    assert_eq!(
        show(&combos),
        [
            r#"fruit="apple" animal="cat" color="pink" shape="circle""#,
            r#"fruit="apple" animal="dog" color="green" shape="circle""#,
            r#"fruit="pear" animal="cat" color="pink""#,
            r#"fruit="pear" animal="dog" color="green""#,
            r#"fruit="banana""#,
            r#"animal="cat" fruit="banana""#,
        ]
    );
}

/// "Excluding matrix configurations": a partial match is enough.
#[test]
fn github_exclude_example() {
    let exclude = list(
        r#"[{"os": "macos-latest", "version": 12, "environment": "production"},
            {"os": "windows-latest", "version": 16}]"#,
    );
    let combos = matrix::expand(
        &axes(&[
            ("os", r#"["macos-latest", "windows-latest"]"#),
            ("version", "[12, 14, 16]"),
            ("environment", r#"["staging", "production"]"#),
        ]),
        &[],
        &exclude,
    )
    .expect("expands");
    assert_eq!(combos.len(), 12 - 1 - 2);
}

#[test]
fn include_adds_back_an_excluded_combination() {
    let combos = matrix::expand(
        &axes(&[("os", r#"["linux", "mac"]"#), ("node", "[1, 2]")]),
        &list(r#"[{"os": "mac", "node": 2, "extra": true}]"#),
        &list(r#"[{"os": "mac", "node": 2}]"#),
    )
    .expect("expands");
    assert_eq!(
        show(&combos).last().map(String::as_str),
        Some(r#"node=2.0 os="mac" extra=true"#)
    );
    assert_eq!(combos.len(), 4);
}

#[test]
fn include_never_overwrites_an_axis_value_but_later_includes_overwrite_extras() {
    let combos = matrix::expand(
        &axes(&[("os", r#"["linux"]"#)]),
        &list(r#"[{"color": "red"}, {"os": "linux", "color": "blue"}, {"os": "mac", "color": "green"}]"#),
        &[],
    )
    .expect("expands");
    assert_eq!(
        show(&combos),
        [r#"os="linux" color="blue""#, r#"os="mac" color="green""#]
    );
}

#[test]
fn only_include_gives_one_combination_each() {
    let combos =
        matrix::expand(&[], &list(r#"[{"a": 1}, {"a": 2}, {"b": 3}]"#), &[]).expect("expands");
    assert_eq!(combos.len(), 3);
}

#[test]
fn exclude_matches_object_values_leaf_by_leaf_and_ignores_case() {
    let combos = matrix::expand(
        &axes(&[(
            "job",
            r#"[{"target": "x86", "os": "ubuntu"}, {"target": "arm", "os": "ubuntu"}, {"target": "x86", "os": "windows"}]"#,
        )]),
        &[],
        &list(r#"[{"job": {"os": "UBUNTU"}}]"#),
    )
    .expect("expands");
    assert_eq!(combos.len(), 1);
    assert_eq!(
        combos[0].get("job").and_then(|j| j.get_ci("os")),
        Some(&Value::str("windows"))
    );
}

#[test]
fn loose_equality_between_numbers_and_strings() {
    let combos = matrix::expand(
        &axes(&[("v", r#"[1, "2"]"#)]),
        &[],
        &list(r#"[{"v": "1"}, {"v": 2}]"#),
    )
    .err();
    assert_eq!(combos, Some(MatrixError::Empty));
}

#[test]
fn errors() {
    assert_eq!(matrix::expand(&[], &[], &[]), Err(MatrixError::NoAxes));
    assert_eq!(
        matrix::expand(&axes(&[("os", "[]")]), &[], &[]),
        Err(MatrixError::EmptyAxis { axis: "os".into() })
    );
    assert_eq!(
        matrix::expand(
            &axes(&[("os", r#"["a"]"#)]),
            &[],
            &list(r#"[{"arch": "x"}]"#)
        ),
        Err(MatrixError::UnknownExcludeKey { key: "arch".into() })
    );
    assert_eq!(
        matrix::expand(&axes(&[("os", r#"["a"]"#)]), &list("[{}]"), &[]),
        Err(MatrixError::EmptyEntry {
            key: "include",
            index: 0
        })
    );
    let many: Vec<Value> = (0..17).map(|n| Value::Number(f64::from(n))).collect();
    let big = vec![
        ("a".to_owned(), many.clone()),
        ("b".to_owned(), many[..16].to_vec()),
    ];
    assert_eq!(matrix::expand(&big, &[], &[]), Err(MatrixError::TooMany));
    let exactly = vec![
        ("a".to_owned(), many[..16].to_vec()),
        ("b".to_owned(), many[..16].to_vec()),
    ];
    assert_eq!(matrix::expand(&exactly, &[], &[]).map(|c| c.len()), Ok(256));
}

#[test]
fn split_a_dynamic_matrix() {
    let (axes, include, exclude) = matrix::split(&v(
        r#"{"os": ["a", "b"], "include": [{"os": "c"}], "exclude": [{"os": "a"}]}"#,
    ))
    .expect("splits");
    assert_eq!(
        axes,
        vec![("os".to_owned(), vec![Value::str("a"), Value::str("b")])]
    );
    assert_eq!(
        matrix::expand(&axes, &include, &exclude).map(|c| c.len()),
        Ok(2)
    );
    assert_eq!(
        matrix::split(&v(r#"{"os": "a"}"#)),
        Err(MatrixError::AxisNotAList {
            axis: "os".into(),
            found: "a string"
        })
    );
    assert_eq!(
        matrix::split(&v("[1]")),
        Err(MatrixError::NotAnObject { found: "a list" })
    );
}

#[test]
fn display_names() {
    let c: Combination = [("os", Value::str("ubuntu")), ("rust", Value::str("1.70"))]
        .into_iter()
        .collect();
    assert_eq!(matrix::display_name("build", &c), "build (ubuntu, 1.70)");
    let c: Combination = [
        ("n", Value::Number(3.0)),
        ("skip", Value::Null),
        ("ok", Value::Bool(true)),
    ]
    .into_iter()
    .collect();
    assert_eq!(matrix::display_name("t", &c), "t (3, true)");
    assert_eq!(matrix::display_name("t", &Combination::new()), "t");
}
