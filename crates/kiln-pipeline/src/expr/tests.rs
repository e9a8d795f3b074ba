//! Printing a syntax tree and parsing the text gives the same tree.

use proptest::prelude::*;

use super::ast::{CmpOp, Index, Node};
use super::functions::Func;
use super::parser::parse_node;

/// The tree with every offset set to 0, printed with `{:?}` (so a NaN
/// literal compares equal to itself).
fn shape(node: &Node) -> String {
    fn strip(node: &mut Node) {
        match node {
            Node::Null | Node::Bool(_) | Node::Number(_) | Node::String(_) => {}
            Node::Context { offset, .. } => *offset = 0,
            Node::Index { target, index } => {
                strip(target);
                if let Index::Expr(e) = index {
                    strip(e);
                }
            }
            Node::Not(inner) => strip(inner),
            Node::Compare { lhs, rhs, .. } => {
                strip(lhs);
                strip(rhs);
            }
            Node::And(items) | Node::Or(items) => items.iter_mut().for_each(strip),
            Node::Call { args, offset, .. } => {
                *offset = 0;
                args.iter_mut().for_each(strip);
            }
        }
    }
    let mut node = node.clone();
    strip(&mut node);
    format!("{node:?}")
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        Just(Node::Null),
        any::<bool>().prop_map(Node::Bool),
        any::<f64>().prop_map(Node::Number),
        Just(Node::Number(-0.0)),
        "\\PC{0,6}".prop_map(Node::String),
        prop_oneof![
            Just("github"),
            Just("env"),
            Just("nan"),
            Just("my-ctx"),
            Just("_x")
        ]
        .prop_map(|n| Node::Context {
            name: n.to_owned(),
            offset: 0
        }),
        prop_oneof![Just(Func::Success), Just(Func::Always)].prop_map(|func| Node::Call {
            func,
            args: vec![],
            offset: 0
        }),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(6, 48, 4, |inner| {
        let op = prop_oneof![
            Just(CmpOp::Eq),
            Just(CmpOp::Ne),
            Just(CmpOp::Lt),
            Just(CmpOp::Le),
            Just(CmpOp::Gt),
            Just(CmpOp::Ge),
        ];
        prop_oneof![
            inner.clone().prop_map(|n| Node::Not(Box::new(n))),
            (op, inner.clone(), inner.clone()).prop_map(|(op, l, r)| Node::Compare {
                op,
                lhs: Box::new(l),
                rhs: Box::new(r)
            }),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Node::and),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Node::or),
            (inner.clone(), "[A-Za-z_][A-Za-z0-9_-]{0,5}").prop_map(|(t, p)| Node::Index {
                target: Box::new(t),
                index: Index::Property(p)
            }),
            (inner.clone(), inner.clone()).prop_map(|(t, i)| Node::Index {
                target: Box::new(t),
                index: Index::Expr(Box::new(i))
            }),
            inner.clone().prop_map(|t| Node::Index {
                target: Box::new(t),
                index: Index::Wildcard
            }),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Node::Call {
                func: Func::Contains,
                args: vec![a, b],
                offset: 0
            }),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|mut args| {
                args.insert(0, Node::String("{{x}} {0}".to_owned()));
                args.push(Node::Null);
                Node::Call {
                    func: Func::Format,
                    args,
                    offset: 0,
                }
            }),
            inner.prop_map(|a| Node::Call {
                func: Func::ToJson,
                args: vec![a],
                offset: 0
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn printed_trees_parse_back_to_the_same_tree(tree in node()) {
        prop_assume!(tree.depth() <= 50);
        let printed = tree.to_string();
        let parsed = parse_node(&printed).map_err(|e| TestCaseError::fail(format!("{printed}: {e} at {}", e.offset)))?;
        prop_assert_eq!(shape(&parsed), shape(&tree), "printed as {}", printed);
    }
}

#[test]
fn precedence_and_grouping() {
    let cases = [
        ("a || b && c", "a || b && c"),
        ("(a || b) && c", "(a || b) && c"),
        ("a && (b && c)", "a && b && c"),
        ("!a == b", "!a == b"),
        ("!(a == b)", "!(a == b)"),
        ("a == (b == c)", "a == (b == c)"),
        ("(a == b) == c", "a == b == c"),
        ("a < b == c > d", "a < b == c > d"),
        ("(a == b) < c", "(a == b) < c"),
        ("!a.b[c].*", "!a.b[c].*"),
        ("(!a).b", "(!a).b"),
        ("a['b c']['d']", "a['b c']['d']"),
        ("('x')[0]", "('x')[0]"),
        ("ToJson(a)[0]", "toJSON(a)[0]"),
        ("a[*]", "a.*"),
        ("0xff == -2.5e1", "255 == -25"),
        ("'it''s'", "'it''s'"),
    ];
    for (src, printed) in cases {
        let node = parse_node(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(node.to_string(), printed, "{src}");
    }
}
