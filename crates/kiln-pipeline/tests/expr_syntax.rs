//! Parsing: errors with offsets and messages, templates, conditions, the
//! context list the loader checks.

use kiln_model::Value;
use kiln_pipeline::expr::{self, Context, StaticContext, StatusCheck};
use serde_json::json;

fn parse_err(src: &str) -> (usize, String) {
    match expr::parse(src) {
        Ok(e) => panic!("{src:?} parsed as {e}"),
        Err(e) => (e.offset, e.message),
    }
}

#[test]
fn syntax_errors_point_at_the_problem() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "expected an expression"),
        ("   ", 3, "expected an expression"),
        (
            "contain('a', 'b')",
            0,
            "unknown function `contain`, did you mean `contains`?",
        ),
        (
            "1 == tojsn(x)",
            5,
            "unknown function `tojsn`, did you mean `toJSON`?",
        ),
        (
            "contains('a')",
            0,
            "`contains` takes 2 arguments, but 1 was given",
        ),
        (
            "a || success(1)",
            5,
            "`success` takes no arguments, but 1 was given",
        ),
        (
            "join()",
            0,
            "`join` takes 1 to 2 arguments, but none were given",
        ),
        (
            "format()",
            0,
            "`format` takes at least 1 argument, but none were given",
        ),
        (
            "format('{0}', a",
            15,
            "expected `)` to close the call to `format`",
        ),
        (
            "format('{0}' a)",
            13,
            "expected `,` or `)` in the call to `format`, found `a`",
        ),
        (
            "format('{1}', a)",
            7,
            "invalid format string: it references {1} but only 1 argument was given after the format string",
        ),
        (
            "format('{0', a)",
            7,
            "invalid format string: `{` at byte 0 does not start a placeholder such as `{0}`; write `{{` for a literal `{`",
        ),
        (
            "(a == b",
            7,
            "unexpected end of expression: expected `)` to close `(`",
        ),
        (
            "a[0",
            3,
            "unexpected end of expression: expected `]` to close `[`",
        ),
        (
            "a == ",
            5,
            "unexpected end of expression: expected a value after `==`",
        ),
        ("a && || b", 5, "expected a value after `&&`, found `||`"),
        (
            "a b",
            2,
            "expected an operator or the end of the expression, found `b`",
        ),
        ("a)", 1, "unmatched `)`"),
        (
            "a == \"b\"",
            5,
            "strings use single quotes: write 'text', not \"text\"",
        ),
        ("a = b", 2, "unexpected `=`: compare with `==`"),
        ("a & b", 2, "unexpected `&`: the logical and is `&&`"),
        (
            "'abc",
            0,
            "unterminated string: add a closing `'` (write `''` for a quote inside a string)",
        ),
        (
            "1 + 2",
            2,
            "invalid number `+`: there are no arithmetic operators",
        ),
        ("1.2.3", 0, "invalid number `1.2.3`"),
        (
            "'abc'[0]",
            5,
            "a literal cannot be indexed: `[` cannot follow it",
        ),
        (
            "'abc'.length",
            5,
            "a literal has no properties: `.` cannot follow it",
        ),
        (
            "a.",
            2,
            "unexpected end of expression: expected a property name or `*` after `.`",
        ),
        (
            "a.(b)",
            2,
            "expected a property name or `*` after `.`, found `(`",
        ),
        (
            "*",
            0,
            "unexpected `*`: it only filters, as in `a.*` or `a[*]`",
        ),
        (
            "github.ref()",
            10,
            "expected an operator or the end of the expression, found `(`",
        ),
        ("a # b", 2, "unexpected character `#`"),
        (
            "a.b$c",
            2,
            "invalid name `b$c`: names are letters, digits, `_` and `-`",
        ),
    ];
    let mut failures = Vec::new();
    for (src, offset, message) in cases {
        let got = parse_err(src);
        if got != (*offset, (*message).to_owned()) {
            failures.push(format!(
                "{src:?}\n   want {offset}: {message}\n    got {}: {}",
                got.0, got.1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn limits_match_github() {
    let deep = format!("{}a{}", "(".repeat(1000), ")".repeat(1000));
    assert!(
        expr::parse(&deep)
            .unwrap_err()
            .message
            .contains("nested too deeply")
    );
    // Parentheses do not add depth; property chains do.
    assert!(expr::parse(&format!("{}a{}", "(".repeat(60), ")".repeat(60))).is_ok());
    assert!(expr::parse(&format!("a{}", ".b".repeat(48))).is_ok());
    assert!(expr::parse(&format!("a{}", ".b".repeat(50))).is_err());
    assert!(expr::parse(&"!".repeat(5000)).is_err());
    let long = format!("'{}'", "x".repeat(21_000));
    assert!(
        expr::parse(&long)
            .unwrap_err()
            .message
            .contains("longer than 21000")
    );
}

#[test]
fn names_and_keywords() {
    let e = expr::parse("steps.my-step.outputs.x-y && a.null && a.true && Matrix.OS").unwrap();
    assert_eq!(
        e.contexts(),
        vec![
            ("steps".to_owned(), 0),
            ("a".to_owned(), 29),
            ("a".to_owned(), 39),
            ("matrix".to_owned(), 49)
        ]
    );
    assert_eq!(
        e.to_string(),
        "steps.my-step.outputs.x-y && a.null && a.true && matrix.OS"
    );
    // `True` is not the literal (keywords are case-sensitive): it is a context.
    assert_eq!(
        expr::parse("True").unwrap().contexts(),
        vec![("true".to_owned(), 0)]
    );
    assert!(expr::parse("TOJSON(x)").is_ok());
    assert!(expr::parse("fromJson (x)").is_ok());
}

#[test]
fn status_functions_are_found_anywhere() {
    assert!(
        expr::parse("a || !Failure()")
            .unwrap()
            .has_status_function()
    );
    assert!(
        expr::parse("contains(format('{0}', always()), 'x')")
            .unwrap()
            .has_status_function()
    );
    assert!(!expr::parse("github.success").unwrap().has_status_function());
}

fn ctx() -> StaticContext {
    StaticContext::new()
        .with(
            "github",
            Value::from(json!({"ref": "refs/heads/main", "event_name": "push"})),
        )
        .with("env", Value::from(json!({"name": "kiln", "empty": ""})))
        .with("matrix", Value::from(json!({"node": 20, "os": ["a", "b"]})))
}

#[test]
fn templates_render_and_keep_values() {
    let cases: &[(&str, Value)] = &[
        ("plain text", Value::str("plain text")),
        ("${{ matrix.node }}", Value::Number(20.0)),
        ("  ${{ matrix.os }}\n", Value::from(json!(["a", "b"]))),
        ("node-${{ matrix.node }}", Value::str("node-20")),
        ("${{ env.name }}${{ matrix.node }}", Value::str("kiln20")),
        (
            "${{ matrix.os }} and ${{ env.missing }}!",
            Value::str("Array and !"),
        ),
        ("${{ '}}' }}", Value::str("}}")),
        ("${{ 'it''s }}' }} x", Value::str("it's }} x")),
        ("a }} b {{ c", Value::str("a }} b {{ c")),
        ("${{ format('{{{0}}}', 1) }}", Value::str("{1}")),
        ("$${{ 1 }}", Value::str("$1")),
        ("${{ 1 }}}", Value::str("1}")),
    ];
    for (src, want) in cases {
        let t = expr::parse_template(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(&t.eval(&ctx()).unwrap(), want, "{src}");
        if src.contains("${{") && !matches!(want, Value::String(_)) {
            continue;
        }
        assert_eq!(t.render(&ctx()).unwrap(), expr::to_string(want), "{src}");
    }
    let t = expr::parse_template("  ${{ matrix.os }}\n").unwrap();
    assert_eq!(t.render(&ctx()).unwrap(), "  Array\n");
}

#[test]
fn template_offsets_are_into_the_source() {
    let src = "run: ${{  github.ref }} / ${{env.name}}";
    let t = expr::parse_template(src).unwrap();
    let exprs = t.exprs();
    assert_eq!(exprs.len(), 2);
    assert_eq!(exprs[0].1, 10);
    assert_eq!(&src[exprs[0].1..exprs[0].1 + 6], "github");
    assert_eq!(exprs[1].1, 29);
    let (ctx_name, rel) = &exprs[1].0.contexts()[0];
    assert_eq!(
        (
            ctx_name.as_str(),
            &src[exprs[1].1 + rel..exprs[1].1 + rel + 3]
        ),
        ("env", "env")
    );

    let cases: &[(&str, usize, &str)] = &[
        (
            "x ${{ a == }}",
            10,
            "unexpected end of expression: expected a value after `==`",
        ),
        (
            "x ${{ contain(a) }}",
            6,
            "unknown function `contain`, did you mean `contains`?",
        ),
        ("x ${{ a ", 2, "`${{` is not closed: expected `}}`"),
        ("x ${{ 'a }}", 2, "`${{` is not closed: expected `}}`"),
        (
            "x ${{   }}",
            2,
            "expected an expression between `${{` and `}}`",
        ),
    ];
    for (src, offset, message) in cases {
        let e = expr::parse_template(src).unwrap_err();
        assert_eq!((e.offset, e.message.as_str()), (*offset, *message), "{src}");
    }
}

struct Status(StatusCheck);

impl Context for Status {
    fn context(&self, name: &str) -> Option<&Value> {
        match name {
            "github" => Some(&Value::Null),
            _ => None,
        }
    }
    fn status(&self) -> StatusCheck {
        self.0
    }
    fn hash_files(&self, _: &[String]) -> Result<String, String> {
        Err("no files".to_owned())
    }
}

#[test]
fn conditions_imply_success() {
    use StatusCheck::{Cancelled, Failure, Success};
    let table: &[(&str, [bool; 3])] = &[
        // [on success, on failure, on cancel]
        ("true", [true, false, false]),
        ("${{ true }}", [true, false, false]),
        ("false", [false, false, false]),
        ("", [true, false, false]),
        ("always()", [true, true, true]),
        ("${{ always() }}", [true, true, true]),
        ("failure()", [false, true, false]),
        ("cancelled()", [false, false, true]),
        ("success() || failure()", [true, true, false]),
        ("!cancelled()", [true, true, false]),
        ("github.x == null", [true, false, false]),
        // Text around `${{ }}` makes a non-empty string: truthy.
        ("${{ false }} == true", [true, false, false]),
        ("${{ failure() }} x", [true, true, true]),
        ("${{ '' }}", [false, false, false]),
        ("${{ '' }}${{ '' }}", [false, false, false]),
    ];
    for (src, want) in table {
        let c = expr::parse_condition(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        let got = [Success, Failure, Cancelled].map(|s| c.eval(&Status(s)).unwrap());
        assert_eq!(&got, want, "{src:?}");
    }
    // Without a status function the expression is not even evaluated on failure.
    let c = expr::parse_condition("secrets.x").unwrap();
    assert_eq!(c.eval(&Status(Failure)), Ok(false));
    assert!(c.eval(&Status(Success)).is_err());
}

#[test]
fn condition_offsets() {
    let src = "  ${{ github.ref == 'x' }}  ";
    let c = expr::parse_condition(src).unwrap();
    let (e, offset) = c.expr();
    assert_eq!(offset, 6);
    assert_eq!(e.to_string(), "github.ref == 'x'");
    assert_eq!(e.contexts(), vec![("github".to_owned(), 0)]);

    let (e, offset) = expr::parse_condition("github.ref")
        .map(|c| (c.expr().0.clone(), c.expr().1))
        .unwrap();
    assert_eq!((e.to_string().as_str(), offset), ("github.ref", 0));

    // Mixed text: GitHub's `format` rewrite, offsets into the whole source.
    let src = "${{ github.ref }} == {x}";
    let c = expr::parse_condition(src).unwrap();
    let (e, offset) = c.expr();
    assert_eq!(e.to_string(), "format('{0} == {{x}}', github.ref)");
    assert_eq!((offset, e.contexts()), (0, vec![("github".to_owned(), 4)]));

    let err = expr::parse_condition("${{ a == }}").unwrap_err();
    assert_eq!(err.offset, 8);
    let err = expr::parse_condition("a ==").unwrap_err();
    assert_eq!(err.offset, 4);
}
