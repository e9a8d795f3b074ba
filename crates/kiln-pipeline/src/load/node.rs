//! What marked-yaml's nodes mean in a workflow: where they are, how a
//! scalar was written, and its YAML 1.2 core-schema type (a plain `1.70` is
//! the number 1.7, a quoted `'1.70'` stays a string, as on GitHub).

use super::source::{Source, Style};
use kiln_model::Value;
use kiln_model::workflow::Loc;
use marked_yaml::Node;
use marked_yaml::types::{MarkedScalarNode, Span};

/// A place in the file and how many characters to underline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct At {
    pub(crate) loc: Loc,
    pub(crate) len: u32,
}

pub(crate) fn loc(span: &Span) -> Loc {
    span.start()
        .map(|m| Loc {
            line: m.line() as u32,
            col: m.column() as u32,
        })
        .unwrap_or(Loc { line: 1, col: 1 })
}

/// The loader parses with coercion off for non-plain scalars, so
/// `may_coerce` tells plain scalars apart; the first character tells quoted
/// ones from blocks.
pub(crate) fn style(src: &Source<'_>, s: &MarkedScalarNode) -> Style {
    if s.may_coerce() {
        return Style::Plain;
    }
    match src.char_at(loc(s.span())) {
        Some('\'') => Style::SingleQuoted,
        Some('"') => Style::DoubleQuoted,
        _ => Style::Block,
    }
}

/// A scalar with its style.
pub(crate) struct Scalar<'n> {
    pub(crate) node: &'n MarkedScalarNode,
    pub(crate) style: Style,
}

impl Scalar<'_> {
    pub(crate) fn is_null(&self) -> bool {
        self.style == Style::Plain
            && matches!(self.node.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }

    /// The scalar's value under the YAML 1.2 core schema.
    pub(crate) fn value(&self) -> Value {
        let s = self.node.as_str();
        if self.style != Style::Plain {
            return Value::String(s.to_owned());
        }
        if self.is_null() {
            return Value::Null;
        }
        match s {
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                return Value::Number(f64::INFINITY);
            }
            "-.inf" | "-.Inf" | "-.INF" => return Value::Number(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => return Value::Number(f64::NAN),
            _ => {}
        }
        if let Some(n) = number(s) {
            return Value::Number(n);
        }
        Value::String(s.to_owned())
    }
}

fn number(s: &str) -> Option<f64> {
    if let Some(hex) = s.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(|n| n as f64);
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(|n| n as f64);
    }
    // The core schema's decimal forms: no `_`, no bare `.`, no `inf`/`nan` words.
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let ok = body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        && body.chars().any(|c| c.is_ascii_digit());
    if ok { s.parse().ok() } else { None }
}

/// "a mapping", "a string", … for "expected X, found Y".
pub(crate) fn kind(src: &Source<'_>, n: &Node) -> &'static str {
    match n {
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
        Node::Scalar(s) => match (Scalar {
            node: s,
            style: style(src, s),
        })
        .value()
        {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) | Value::Array(_) | Value::Object(_) => "a string",
        },
    }
}

/// A whole node as a value (matrix entries).
pub(crate) fn to_value(src: &Source<'_>, n: &Node) -> Value {
    match n {
        Node::Scalar(s) => Scalar {
            node: s,
            style: style(src, s),
        }
        .value(),
        Node::Sequence(items) => Value::Array(items.iter().map(|i| to_value(src, i)).collect()),
        Node::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().to_owned(), to_value(src, v)))
                .collect(),
        ),
    }
}
