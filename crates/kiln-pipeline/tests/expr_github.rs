//! GitHub's documented expression examples, and the runner's behaviour where
//! the documentation is silent, as a table: expression, expected value.

use kiln_model::Value;
use kiln_pipeline::expr::{self, StaticContext};
use serde_json::json;

fn ctx() -> StaticContext {
    StaticContext::new()
        .with(
            "github",
            Value::from(json!({
                "event_name": "push",
                "ref": "refs/heads/main",
                "event": {
                    "issue": {"labels": [{"name": "bug"}, {"name": "help wanted"}]},
                    "number": 42,
                },
            })),
        )
        .with(
            "env",
            Value::from(json!({
                "continue": "true",
                "time": "3",
                "json": "{\"include\":[{\"project\":\"foo\",\"config\":\"Debug\"}]}",
            })),
        )
        .with("job", Value::from(json!({"status": "success"})))
        .with(
            "fruits",
            Value::from(json!([
                {"name": "apple", "quantity": 1},
                {"name": "orange", "quantity": 2},
                {"name": "pear", "quantity": 1},
            ])),
        )
        .with(
            "vegetables",
            Value::from(json!({
                "scallions": {"colors": ["green", "white", "red"], "ediblePortions": ["roots", "stalks"]},
                "beets": {"colors": ["purple", "red", "gold", "white", "pink"], "ediblePortions": ["roots", "stems", "leaves"]},
                "artichokes": {"colors": ["green", "purple", "red", "black"], "ediblePortions": ["hearts", "stems", "leaves"]},
            })),
        )
        .with("steps", Value::from(json!({"build": {"outputs": {"count": "10", "ok": "true"}, "outcome": "success"}})))
        .with("matrix", Value::from(json!({"os": "ubuntu-latest", "node": 20})))
        .with("empty", Value::from(json!({})))
        .with("arr", Value::from(json!([1, "two", [3], {"four": 4}])))
}

fn eval(src: &str) -> Value {
    let parsed = expr::parse(src)
        .unwrap_or_else(|e| panic!("{src}: parse error at {}: {}", e.offset, e.message));
    parsed
        .eval(&ctx())
        .unwrap_or_else(|e| panic!("{src}: eval error: {}", e.message))
}

fn v(j: serde_json::Value) -> Value {
    Value::from(j)
}

#[test]
fn documented_examples() {
    let cases: Vec<(&str, Value)> = vec![
        // Literals.
        ("null", Value::Null),
        ("false", v(json!(false))),
        ("711", v(json!(711))),
        ("-9.2", v(json!(-9.2))),
        ("0xff", v(json!(255))),
        ("-2.99e-2", v(json!(-0.0299))),
        ("'It''s open source!'", v(json!("It's open source!"))),
        // Functions, as documented.
        ("contains('Hello world', 'llo')", v(json!(true))),
        (
            "contains(github.event.issue.labels.*.name, 'bug')",
            v(json!(true)),
        ),
        (
            "contains(fromJSON('[\"push\", \"pull_request\"]'), github.event_name)",
            v(json!(true)),
        ),
        ("startsWith('Hello world', 'He')", v(json!(true))),
        ("endsWith('Hello world', 'ld')", v(json!(true))),
        (
            "format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')",
            v(json!("Hello Mona the Octocat")),
        ),
        (
            "format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')",
            v(json!("{Hello Mona the Octocat!}")),
        ),
        (
            "join(github.event.issue.labels.*.name, ', ')",
            v(json!("bug, help wanted")),
        ),
        ("toJSON(job)", v(json!("{\n  \"status\": \"success\"\n}"))),
        ("fromJSON(env.continue)", v(json!(true))),
        ("fromJSON(env.time)", v(json!(3))),
        ("fromJSON(env.json).include[0].project", v(json!("foo"))),
        // Object filters.
        ("fruits.*.name", v(json!(["apple", "orange", "pear"]))),
        (
            "vegetables.*.ediblePortions",
            // Sorted keys: artichokes, beets, scallions (GitHub keeps YAML order).
            v(json!([
                ["hearts", "stems", "leaves"],
                ["roots", "stems", "leaves"],
                ["roots", "stalks"]
            ])),
        ),
        (
            "vegetables.*.ediblePortions.*",
            v(json!([
                "hearts", "stems", "leaves", "roots", "stems", "leaves", "roots", "stalks"
            ])),
        ),
        ("fruits.*.name[0]", v(json!([]))),
        ("fruits[*].quantity", v(json!([1, 2, 1]))),
        (
            "vegetables.*.colors[1]",
            v(json!(["purple", "red", "white"])),
        ),
        ("contains(fruits.*.name, 'ORANGE')", v(json!(true))),
        ("github.nope.*", v(json!([]))),
        ("matrix.os.*", v(json!([]))),
        // Operators and loose equality.
        ("github.event_name == 'PUSH'", v(json!(true))),
        ("null == 0", v(json!(true))),
        ("null == ''", v(json!(true))),
        ("true == 1", v(json!(true))),
        ("true == '1'", v(json!(true))),
        ("'' == 0", v(json!(true))),
        ("' ' == 0", v(json!(true))),
        ("'abc' == 0", v(json!(false))),
        ("NaN == NaN", v(json!(false))),
        ("NaN != NaN", v(json!(true))),
        ("steps.build.outputs.count > 9", v(json!(true))),
        ("steps.build.outputs.count > '9'", v(json!(false))),
        ("'a' < 'B'", v(json!(true))),
        ("false < true", v(json!(true))),
        ("fruits == fruits", v(json!(true))),
        ("fruits[0] == fruits[0]", v(json!(true))),
        ("fruits[0] == fruits[1]", v(json!(false))),
        ("fromJSON('[]') == fromJSON('[]')", v(json!(false))),
        ("fruits.* == fruits.*", v(json!(false))),
        ("empty == 'Object'", v(json!(false))),
        ("empty < 1 || empty >= 1", v(json!(false))),
        ("1 < 2 < 3", v(json!(true))),
        ("3 > 2 > 1", v(json!(false))),
        ("!2 < 3", v(json!(true))),
        ("!(2 < 3)", v(json!(false))),
        ("1 == 1 && 2 == 2 || 3 == 4", v(json!(true))),
        ("false || 0 || ''", v(json!(""))),
        ("'a' && 0 && 'b'", v(json!(0))),
        ("'a' && 'b'", v(json!("b"))),
        ("null || 'fallback'", v(json!("fallback"))),
        ("github.event.number || 'none'", v(json!(42))),
        ("(fruits.*.name || 'x')[1]", v(json!([]))),
        ("(fruits.*)[0].name", v(json!([]))),
        // Property access.
        ("GitHub.Event_Name", v(json!("push"))),
        ("github['event_name']", v(json!("push"))),
        ("github.nope", Value::Null),
        ("github.nope.deeper", Value::Null),
        ("github.event_name.length", Value::Null),
        ("arr[0]", v(json!(1))),
        ("arr[1.9]", v(json!("two"))),
        ("arr['1']", v(json!("two"))),
        ("arr[true]", v(json!("two"))),
        ("arr[null]", v(json!(1))),
        ("arr[-1]", Value::Null),
        ("arr[4]", Value::Null),
        ("arr['x']", Value::Null),
        ("arr[2][0]", v(json!(3))),
        ("arr[3].FOUR", v(json!(4))),
        ("matrix[1]", Value::Null),
        ("fromJSON('{\"1\": \"one\"}')[1]", v(json!("one"))),
        ("('abc')[0]", Value::Null),
        // Coercion to string.
        (
            "format('{0}', 0.84551240822557006)",
            v(json!("0.84551240822557")),
        ),
        ("format('{0}', -0)", v(json!("0"))),
        ("format('{0}', 1.2e2)", v(json!("120"))),
        ("format('{0}', 0o10)", v(json!("8"))),
        ("format('{0}', Infinity)", v(json!("Infinity"))),
        ("format('{0}', -Infinity)", v(json!("-Infinity"))),
        (
            "format('{0}|{1}|{2}|{3}', null, true, fruits, empty)",
            v(json!("|true|Array|Object")),
        ),
        ("format('{0}', 1e21)", v(json!("1E+21"))),
        // Other functions.
        ("contains(arr, 1)", v(json!(true))),
        ("contains(arr, '1')", v(json!(true))),
        ("contains(arr, arr[2])", v(json!(true))),
        ("contains(arr, fromJSON('[3]'))", v(json!(false))),
        ("contains(matrix, 'os')", v(json!(false))),
        ("contains(true, 'ru')", v(json!(true))),
        ("contains(null, '')", v(json!(true))),
        ("contains('abc', fruits)", v(json!(false))),
        ("startsWith(matrix.node, 2)", v(json!(true))),
        ("endsWith('abc', fruits)", v(json!(false))),
        ("join(fruits.*.quantity)", v(json!("1,2,1"))),
        ("join('abc', '-')", v(json!("abc"))),
        ("join(fruits, fruits)", v(json!("Object,Object,Object"))),
        ("join(fromJSON('[]'), '-')", v(json!(""))),
        ("join(matrix)", v(json!(""))),
        (
            "join(fromJSON('[1, null, true]'), fruits)",
            v(json!("1,,true")),
        ),
        ("toJSON('a\"b')", v(json!("\"a\\\"b\""))),
        (
            "toJSON(fruits.*.quantity)",
            v(json!("[\n  1,\n  2,\n  1\n]")),
        ),
        (
            "toJSON(fromJSON('{\"b\": [], \"a\": {}}'))",
            v(json!("{\n  \"a\": {},\n  \"b\": []\n}")),
        ),
        ("fromJSON('null')", Value::Null),
        ("FROMjson(' \"x\" ')", v(json!("x"))),
        ("always()", v(json!(true))),
        ("success()", v(json!(true))),
        ("failure() || cancelled()", v(json!(false))),
    ];
    let mut failures = Vec::new();
    for (src, want) in &cases {
        let got = eval(src);
        if &got != want {
            failures.push(format!("{src}\n   want {want:?}\n    got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn numbers_come_back_as_values_not_strings() {
    assert_eq!(eval("steps.build.outputs.count"), Value::str("10"));
    assert_eq!(
        eval("fromJSON(steps.build.outputs.count)"),
        Value::Number(10.0)
    );
}

#[test]
fn nan_is_falsy_and_unequal() {
    let v = eval("NaN");
    assert!(matches!(v, Value::Number(n) if n.is_nan()));
    assert!(!expr::truthy(&v));
}

#[test]
fn evaluation_errors_are_actionable() {
    let e = expr::parse("secrets.token")
        .unwrap()
        .eval(&ctx())
        .unwrap_err();
    assert_eq!(e.message, "the `secrets` context is not available here");
    let e = expr::parse("fromJSON('{')")
        .unwrap()
        .eval(&ctx())
        .unwrap_err();
    assert!(
        e.message.starts_with("fromJSON could not parse '{'"),
        "{}",
        e.message
    );
    let e = expr::parse("format(env.time, 1)").unwrap().eval(&ctx());
    assert_eq!(e.map_err(|e| e.message), Ok(Value::str("3")));
    let e = expr::parse("format(env.json, 1)")
        .unwrap()
        .eval(&ctx())
        .unwrap_err();
    assert!(
        e.message.starts_with("invalid format string"),
        "{}",
        e.message
    );
    let e = expr::parse("hashFiles('**/*.lock')")
        .unwrap()
        .eval(&ctx())
        .unwrap_err();
    assert_eq!(
        e.message,
        "hashFiles failed: hashFiles is not available here"
    );
    let with_hash = ctx().with_files_hash("abc123");
    assert_eq!(
        expr::parse("hashFiles('a', 'b')").unwrap().eval(&with_hash),
        Ok(Value::str("abc123"))
    );
}

#[test]
fn short_circuits_skip_errors() {
    // `secrets` is unavailable: evaluating it would fail.
    for src in [
        "false && secrets.x",
        "true || secrets.x",
        "matrix.os.name[secrets.x]",
        "contains(matrix, secrets.x)",
        "format('{0}', 'a', secrets.x)",
        "join(fromJSON('[1]'), secrets.x)",
    ] {
        assert!(expr::parse(src).unwrap().eval(&ctx()).is_ok(), "{src}");
    }
    assert!(
        expr::parse("true && secrets.x")
            .unwrap()
            .eval(&ctx())
            .is_err()
    );
}
