//! The syntax tree of an expression and its canonical printing.
//!
//! Offsets on nodes are byte offsets relative to the start of the expression
//! text that was parsed; `&&` and `||` are n-ary with nested chains flattened
//! (as GitHub's parser does), so `a && (b && c)` and `(a && b) && c` are the
//! same tree. Printing produces source that parses back to the same tree.

use std::fmt;

use super::functions::Func;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    /// A named context (`github`, `env`…), its name lower-cased.
    Context {
        name: String,
        offset: usize,
    },
    /// `target.name`, `target[index]`, `target.*`, `target[*]`.
    Index {
        target: Box<Node>,
        index: Index,
    },
    Not(Box<Node>),
    Compare {
        op: CmpOp,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Call {
        func: Func,
        args: Vec<Node>,
        offset: usize,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Index {
    /// `.name`: a property name, matched case-insensitively.
    Property(String),
    /// `[expr]`.
    Expr(Box<Node>),
    /// `.*` or `[*]`: the object filter.
    Wildcard,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn precedence(self) -> u8 {
        match self {
            CmpOp::Eq | CmpOp::Ne => PREC_EQ,
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => PREC_CMP,
        }
    }
}

// GitHub's precedence, loosest first.
const PREC_OR: u8 = 1;
const PREC_AND: u8 = 2;
const PREC_EQ: u8 = 3;
const PREC_CMP: u8 = 4;
const PREC_NOT: u8 = 5;
const PREC_POSTFIX: u8 = 6;

impl Node {
    /// Logical `&&` of `items`, flattening nested `&&` as the parser does.
    pub(crate) fn and(items: Vec<Node>) -> Node {
        let mut flat = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Node::And(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        Node::And(flat)
    }

    /// Logical `||` of `items`, flattening nested `||`.
    pub(crate) fn or(items: Vec<Node>) -> Node {
        let mut flat = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Node::Or(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        Node::Or(flat)
    }

    fn precedence(&self) -> u8 {
        match self {
            Node::Or(_) => PREC_OR,
            Node::And(_) => PREC_AND,
            Node::Compare { op, .. } => op.precedence(),
            Node::Not(_) => PREC_NOT,
            Node::Null
            | Node::Bool(_)
            | Node::Number(_)
            | Node::String(_)
            | Node::Context { .. }
            | Node::Index { .. }
            | Node::Call { .. } => PREC_POSTFIX,
        }
    }

    fn is_literal(&self) -> bool {
        matches!(
            self,
            Node::Null | Node::Bool(_) | Node::Number(_) | Node::String(_)
        )
    }

    /// Children in source order.
    pub(crate) fn children(&self) -> Vec<&Node> {
        match self {
            Node::Null
            | Node::Bool(_)
            | Node::Number(_)
            | Node::String(_)
            | Node::Context { .. } => Vec::new(),
            Node::Index { target, index } => match index {
                Index::Expr(e) => vec![target, e],
                Index::Property(_) | Index::Wildcard => vec![target],
            },
            Node::Not(inner) => vec![inner],
            Node::Compare { lhs, rhs, .. } => vec![lhs, rhs],
            Node::And(items) | Node::Or(items) => items.iter().collect(),
            Node::Call { args, .. } => args.iter().collect(),
        }
    }

    /// Tree depth counted as GitHub's parser does (a property name or `*`
    /// is a leaf of its index node), for the 50-level limit.
    pub(crate) fn depth(&self) -> usize {
        let leaf_index = match self {
            Node::Index {
                index: Index::Property(_) | Index::Wildcard,
                ..
            } => 1,
            _ => 0,
        };
        let below = self.children().iter().map(|c| c.depth()).max().unwrap_or(0);
        1 + below.max(leaf_index)
    }

    /// Adds `delta` to every offset in the tree.
    pub(crate) fn shift(&mut self, delta: usize) {
        match self {
            Node::Null | Node::Bool(_) | Node::Number(_) | Node::String(_) => {}
            Node::Context { offset, .. } => *offset += delta,
            Node::Index { target, index } => {
                target.shift(delta);
                match index {
                    Index::Expr(e) => e.shift(delta),
                    Index::Property(_) | Index::Wildcard => {}
                }
            }
            Node::Not(inner) => inner.shift(delta),
            Node::Compare { lhs, rhs, .. } => {
                lhs.shift(delta);
                rhs.shift(delta);
            }
            Node::And(items) | Node::Or(items) => items.iter_mut().for_each(|n| n.shift(delta)),
            Node::Call { args, offset, .. } => {
                *offset += delta;
                args.iter_mut().for_each(|n| n.shift(delta));
            }
        }
    }
}

/// Writes `s` as a single-quoted literal.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Whether `s` can follow `.` as a property name.
pub(crate) fn is_keyword(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn write_number(f: &mut fmt::Formatter<'_>, n: f64) -> fmt::Result {
    if n.is_nan() {
        f.write_str("NaN")
    } else if n.is_infinite() {
        f.write_str(if n > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        // Rust's shortest round-trip form, never in exponent notation.
        write!(f, "{n}")
    }
}

/// Writes `node`, parenthesised when it binds looser than `min`.
fn write_operand(f: &mut fmt::Formatter<'_>, node: &Node, min: u8) -> fmt::Result {
    if node.precedence() < min {
        write!(f, "({node})")
    } else {
        write!(f, "{node}")
    }
}

/// Writes an `&&` or `||` chain. Nested chains of the same operator are
/// flattened by the parser, so only looser operands need parentheses; a
/// same-operator operand can only come from a hand-built tree and stays grouped.
fn write_chain(f: &mut fmt::Formatter<'_>, items: &[Node], sep: &str, prec: u8) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write_operand(f, item, prec + 1)?;
    }
    Ok(())
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Null => f.write_str("null"),
            Node::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Node::Number(n) => write_number(f, *n),
            Node::String(s) => f.write_str(&quote(s)),
            Node::Context { name, .. } => f.write_str(name),
            Node::Index { target, index } => {
                // GitHub rejects `'abc'[0]` but accepts `('abc')[0]`.
                if target.is_literal() {
                    write!(f, "({target})")?;
                } else {
                    write_operand(f, target, PREC_POSTFIX)?;
                }
                match index {
                    Index::Property(name) if is_keyword(name) => write!(f, ".{name}"),
                    Index::Property(name) => write!(f, "[{}]", quote(name)),
                    Index::Expr(e) => write!(f, "[{e}]"),
                    Index::Wildcard => f.write_str(".*"),
                }
            }
            Node::Not(inner) => {
                f.write_str("!")?;
                write_operand(f, inner, PREC_NOT)
            }
            Node::Compare { op, lhs, rhs } => {
                let prec = op.precedence();
                write_operand(f, lhs, prec)?;
                write!(f, " {} ", op.symbol())?;
                // Left-associative: an equal-precedence right operand needs parentheses.
                write_operand(f, rhs, prec + 1)
            }
            Node::And(items) => write_chain(f, items, " && ", PREC_AND),
            Node::Or(items) => write_chain(f, items, " || ", PREC_OR),
            Node::Call { func, args, .. } => {
                write!(f, "{}(", func.name())?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                f.write_str(")")
            }
        }
    }
}
