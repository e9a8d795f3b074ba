//! `${{ }}` templates and `if:` conditions: finding the expressions in text.
//!
//! An expression ends at the first `}}` outside a single-quoted string, so
//! `${{ '}}' }}` is one expression (GitHub's scanner does the same). Offsets
//! of parts are byte offsets into the template source, pointing at the first
//! non-blank character after `${{`; errors inside an expression are shifted
//! to be offsets into the template too.

use super::ast::Node;
use super::functions::Func;
use super::{Condition, Expr, ExprError, Template, parser};

const OPEN: &str = "${{";

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Part {
    Text(String),
    Expr { expr: Expr, offset: usize },
}

/// Index of the first `}` of the `}}` that closes an expression whose text
/// starts at `from`.
fn find_close(src: &str, from: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut in_string = false;
    for i in from..bytes.len() {
        match bytes[i] {
            b'\'' => in_string = !in_string,
            b'}' if !in_string && i > from && bytes[i - 1] == b'}' => return Some(i - 1),
            _ => {}
        }
    }
    None
}

fn push_text(parts: &mut Vec<Part>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Part::Text(last)) = parts.last_mut() {
        last.push_str(text);
    } else {
        parts.push(Part::Text(text.to_owned()));
    }
}

pub(crate) fn parse_template(src: &str) -> Result<Template, ExprError> {
    let mut parts = Vec::new();
    let mut pos = 0;
    while let Some(rel) = src[pos..].find(OPEN) {
        let open = pos + rel;
        push_text(&mut parts, &src[pos..open]);
        let body_start = open + OPEN.len();
        let close = find_close(src, body_start).ok_or_else(|| ExprError {
            offset: open,
            message: "`${{` is not closed: expected `}}`".to_owned(),
        })?;
        let body = &src[body_start..close];
        let text = body.trim();
        if text.is_empty() {
            return Err(ExprError {
                offset: open,
                message: "expected an expression between `${{` and `}}`".to_owned(),
            });
        }
        let offset = body_start + (body.len() - body.trim_start().len());
        let root = parser::parse_node(text).map_err(|e| ExprError {
            offset: e.offset + offset,
            message: e.message,
        })?;
        parts.push(Part::Expr {
            expr: Expr { root },
            offset,
        });
        pos = close + 2;
    }
    push_text(&mut parts, &src[pos..]);
    Ok(Template { parts })
}

impl Template {
    /// The expression when the template is exactly one `${{ }}`, blanks aside.
    pub(crate) fn single(&self) -> Option<(&Expr, usize)> {
        let mut found = None;
        for part in &self.parts {
            match part {
                Part::Text(t) if t.trim().is_empty() => {}
                Part::Text(_) => return None,
                Part::Expr { expr, offset } => {
                    if found.is_some() {
                        return None;
                    }
                    found = Some((expr, *offset));
                }
            }
        }
        found
    }
}

pub(crate) fn has_status_function(node: &Node) -> bool {
    match node {
        Node::Call { func, .. } if func.is_status() => true,
        _ => node.children().into_iter().any(has_status_function),
    }
}

pub(crate) fn parse_condition(src: &str) -> Result<Condition, ExprError> {
    let (expr, offset) = if src.contains(OPEN) {
        let template = parse_template(src)?;
        match template.single() {
            Some((expr, offset)) => (expr.clone(), offset),
            None => (as_format_call(template), 0),
        }
    } else if src.trim().is_empty() {
        // GitHub treats an empty `if:` as the default, `success()`.
        (
            Expr {
                root: Node::Bool(true),
            },
            0,
        )
    } else {
        (
            Expr {
                root: parser::parse_node(src)?,
            },
            0,
        )
    };
    let implicit_success = !has_status_function(&expr.root);
    Ok(Condition {
        expr,
        offset,
        implicit_success,
    })
}

/// A template with text around its expressions, as GitHub turns it into one
/// expression: `format('text {0} more', expr)`. Offsets in the result are
/// into the template source (the call itself is at 0).
fn as_format_call(template: Template) -> Expr {
    let mut pattern = String::new();
    let mut args = vec![Node::Null];
    for part in template.parts {
        match part {
            Part::Text(t) => pattern.push_str(&t.replace('{', "{{").replace('}', "}}")),
            Part::Expr { mut expr, offset } => {
                pattern.push_str(&format!("{{{}}}", args.len() - 1));
                expr.root.shift(offset);
                args.push(expr.root);
            }
        }
    }
    args[0] = Node::String(pattern);
    Expr {
        root: Node::Call {
            func: Func::Format,
            args,
            offset: 0,
        },
    }
}
