//! Laws of the language, checked on generated values and expressions.

use kiln_model::Value;
use kiln_pipeline::expr::{self, StaticContext};
use proptest::prelude::*;

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_map(Value::Number),
        (-1000i32..1000).prop_map(|n| Value::Number(f64::from(n))),
        prop_oneof![
            Just(String::new()),
            Just(" ".to_owned()),
            Just("0".to_owned()),
            "[a-cA-C0-9 .]{0,4}",
            "\\PC{0,8}"
        ]
        .prop_map(Value::String),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,4}", inner, 0..4).prop_map(Value::Object),
        ]
    })
}

/// Values that survive a trip through JSON text: finite numbers that print
/// exactly in 15 significant digits.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1_000_000_000_000i64..1_000_000_000_000).prop_map(|n| Value::Number(n as f64)),
        (-100_000i32..100_000).prop_map(|n| Value::Number(f64::from(n) / 100.0)),
        "\\PC{0,12}".prop_map(Value::String),
        "[\"\\\\\n\t\r\u{1}\u{1f}\u{85}\u{2028}a]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,5}", inner, 0..4).prop_map(Value::Object),
        ]
    })
}

fn eval_with(src: &str, ctx: &StaticContext) -> Value {
    expr::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .eval(ctx)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn ab(a: &Value, b: &Value) -> StaticContext {
    StaticContext::new()
        .with("a", a.clone())
        .with("b", b.clone())
}

fn as_bool(v: Value) -> bool {
    match v {
        Value::Bool(b) => b,
        other => panic!("expected a bool, got {other:?}"),
    }
}

/// Source text of a generated expression (not always meaningful, always valid).
fn expr_source() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("NaN".to_owned()),
        Just("-Infinity".to_owned()),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(|n| format!("{n:e}")),
        (0u32..100_000).prop_map(|n| format!("0x{n:x}")),
        (-50i32..50).prop_map(|n| n.to_string()),
        "\\PC{0,6}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
        prop_oneof![Just("a"), Just("b"), Just("GitHub"), Just("env")].prop_map(str::to_owned),
    ];
    leaf.prop_recursive(5, 40, 3, |inner| {
        let ops = prop_oneof![
            Just("=="),
            Just("!="),
            Just("<"),
            Just("<="),
            Just(">"),
            Just(">="),
            Just("&&"),
            Just("||"),
        ];
        prop_oneof![
            (inner.clone(), ops, inner.clone()).prop_map(|(l, op, r)| format!("{l} {op} {r}")),
            inner.clone().prop_map(|e| format!("!{e}")),
            inner.clone().prop_map(|e| format!("({e})")),
            (inner.clone(), "[a-zA-Z_][a-zA-Z0-9_-]{0,4}").prop_map(|(e, p)| format!("({e}).{p}")),
            (inner.clone(), inner.clone()).prop_map(|(e, i)| format!("({e})[{i}]")),
            inner.clone().prop_map(|e| format!("({e}).*")),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("contains({l}, {r})")),
            (inner.clone(), inner.clone())
                .prop_map(|(l, r)| format!("format('{{0}}-{{1}}', {l}, {r})")),
            inner.clone().prop_map(|e| format!("toJSON({e})")),
            (inner.clone(), inner).prop_map(|(l, r)| format!("join({l}, {r})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printing_then_reparsing_is_a_fixpoint(src in expr_source()) {
        let first = expr::parse(&src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        let printed = first.to_string();
        let second = expr::parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        prop_assert_eq!(second.to_string(), printed.clone());
        let ctx = StaticContext::new()
            .with("a", Value::str("x"))
            .with("b", Value::Array(vec![Value::Number(1.0)]))
            .with("github", Value::object([("x", Value::Bool(true))]))
            .with("env", Value::Null);
        let (one, two) = (first.eval(&ctx), second.eval(&ctx));
        // NaN results are never equal to themselves: compare their string forms.
        prop_assert_eq!(
            one.map(|v| expr::to_string(&v)),
            two.map(|v| expr::to_string(&v)),
            "{} vs {}", src, printed
        );
    }

    #[test]
    fn double_negation_is_truthiness(a in any_value()) {
        prop_assert_eq!(eval_with("!!a", &ab(&a, &Value::Null)), Value::Bool(expr::truthy(&a)));
        prop_assert_eq!(eval_with("!a", &ab(&a, &Value::Null)), Value::Bool(!expr::truthy(&a)));
    }

    #[test]
    fn equality_is_symmetric_and_ne_is_its_negation(a in any_value(), b in any_value()) {
        let ctx = ab(&a, &b);
        let eq = as_bool(eval_with("a == b", &ctx));
        prop_assert_eq!(eq, as_bool(eval_with("b == a", &ctx)));
        prop_assert_eq!(!eq, as_bool(eval_with("a != b", &ctx)));
        // `<=` is `<` or `==`, and `<` mirrors `>`.
        let lt = as_bool(eval_with("a < b", &ctx));
        prop_assert_eq!(lt, as_bool(eval_with("b > a", &ctx)));
        prop_assert_eq!(lt || eq, as_bool(eval_with("a <= b", &ctx)));
        prop_assert!(!(lt && as_bool(eval_with("a > b", &ctx))));
    }

    #[test]
    fn a_value_from_a_context_equals_itself_unless_nan(a in any_value()) {
        let nan = matches!(a, Value::Number(n) if n.is_nan());
        prop_assert_eq!(as_bool(eval_with("a == a", &ab(&a, &Value::Null))), !nan);
    }

    #[test]
    fn and_or_return_the_documented_operand(a in any_value(), b in any_value()) {
        let ctx = ab(&a, &b);
        let and = eval_with("a && b", &ctx);
        let or = eval_with("a || b", &ctx);
        let (want_and, want_or) = if expr::truthy(&a) { (&b, &a) } else { (&a, &b) };
        // Compare through JSON text so NaN compares equal to itself.
        prop_assert_eq!(format!("{and:?}"), format!("{want_and:?}"));
        prop_assert_eq!(format!("{or:?}"), format!("{want_or:?}"));
    }

    #[test]
    fn from_json_inverts_to_json(v in json_value()) {
        let ctx = StaticContext::new().with("v", v.clone());
        let json = eval_with("toJSON(v)", &ctx);
        prop_assert_eq!(eval_with("fromJSON(toJSON(v))", &ctx), v.clone());
        // It is also what serde_json reads.
        if let Value::String(text) = json {
            let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(Value::from(parsed), v);
        } else {
            prop_assert!(false, "toJSON gave {:?}", json);
        }
    }

    #[test]
    fn format_round_trips_text_and_arguments(text in "\\PC{0,20}", arg in any_value()) {
        let escaped = text.replace('{', "{{").replace('}', "}}");
        let ctx = StaticContext::new().with("t", Value::String(escaped)).with("a", arg.clone());
        prop_assert_eq!(eval_with("format(t)", &ctx), Value::String(text.clone()));
        prop_assert_eq!(eval_with("format('{0}', a)", &ctx), Value::String(expr::to_string(&arg)));
        let src = format!("format('{}{{0}}', a)", text.replace('\'', "''").replace('{', "{{").replace('}', "}}"));
        prop_assert_eq!(eval_with(&src, &ctx), Value::String(format!("{text}{}", expr::to_string(&arg))));
    }

    #[test]
    fn text_without_expressions_is_itself(text in "\\PC{0,30}") {
        prop_assume!(!text.contains("${{"));
        let t = expr::parse_template(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(t.render(&StaticContext::new()), Ok(text.clone()));
        prop_assert!(t.exprs().is_empty());
    }

    #[test]
    fn number_comparisons_match_f64(x in any::<f64>(), y in any::<f64>()) {
        let ctx = ab(&Value::Number(x), &Value::Number(y));
        prop_assert_eq!(as_bool(eval_with("a < b", &ctx)), x < y);
        prop_assert_eq!(as_bool(eval_with("a >= b", &ctx)), x >= y);
        prop_assert_eq!(as_bool(eval_with("a == b", &ctx)), x == y);
    }

    #[test]
    fn string_comparison_ignores_ascii_case(s in "[a-zA-Z0-9 ]{0,10}") {
        let ctx = ab(&Value::String(s.to_ascii_uppercase()), &Value::String(s.to_ascii_lowercase()));
        prop_assert!(as_bool(eval_with("a == b", &ctx)));
        prop_assert!(as_bool(eval_with("startsWith(a, b) && endsWith(b, a) && contains(a, b)", &ctx)));
    }

    #[test]
    fn numbers_print_and_parse_back(n in any::<f64>().prop_filter("finite", |n| n.is_finite())) {
        let printed = expr::to_string(&Value::Number(n));
        let back: f64 = printed.parse().map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        // 15 significant digits survive.
        prop_assert!((back - n).abs() <= n.abs() * 1e-14, "{} printed as {}", n, printed);
        prop_assert!(!printed.ends_with(".0"));
    }
}
