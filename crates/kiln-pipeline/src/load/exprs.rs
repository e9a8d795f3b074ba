//! Expression checks at load time: syntax (through the expression module's
//! parser) and references to contexts the language does not have. Offsets
//! from the parser are into the scalar's value; they are turned into file
//! positions through [`super::source::Source::locate`].

use super::cx::Cx;
use super::suggest;
use crate::expr::{self, Expr, ExprError};
use marked_yaml::types::MarkedScalarNode;

pub(crate) fn check_template(cx: &mut Cx<'_>, s: &MarkedScalarNode, text: &str) {
    if !text.contains("${{") {
        return;
    }
    match expr::parse_template(text) {
        Ok(t) => {
            for (e, offset) in t.exprs() {
                check_contexts(cx, s, e, offset);
            }
        }
        Err(e) => syntax_error(cx, s, &e),
    }
}

pub(crate) fn check_condition(cx: &mut Cx<'_>, s: &MarkedScalarNode) {
    match expr::parse_condition(s.as_str()) {
        Ok(c) => {
            let (e, offset) = c.expr();
            check_contexts(cx, s, e, offset);
        }
        Err(e) => syntax_error(cx, s, &e),
    }
}

fn syntax_error(cx: &mut Cx<'_>, s: &MarkedScalarNode, e: &ExprError) {
    let at = cx.at_offset(s, e.offset, 1);
    cx.error(at, format!("invalid expression: {}", e.message));
}

fn check_contexts(cx: &mut Cx<'_>, s: &MarkedScalarNode, e: &Expr, expr_offset: usize) {
    let text = s.as_str();
    for (name, offset) in e.contexts() {
        let lower = name.to_lowercase();
        if expr::CONTEXTS.contains(&lower.as_str()) {
            continue;
        }
        let offset = name_offset(text, &name, expr_offset, offset);
        let at = cx.at_offset(s, offset, name.chars().count() as u32);
        let help = match suggest::closest(&name, expr::CONTEXTS.iter().copied()) {
            Some(c) => format!("did you mean `{c}`?"),
            None => format!("expressions can read {}", suggest::list(expr::CONTEXTS)),
        };
        cx.error_help(at, format!("unknown context `{name}`"), help);
    }
}

/// The byte offset of a context reference in the scalar's text. The
/// expression module gives offsets relative to the expression; if the text
/// there is not the name, fall back to the first occurrence after the
/// expression's start.
fn name_offset(text: &str, name: &str, expr_offset: usize, offset: usize) -> usize {
    let at = |o: usize| text.get(o..).is_some_and(|t| t.starts_with(name));
    if at(expr_offset + offset) {
        expr_offset + offset
    } else if at(offset) {
        offset
    } else {
        text.get(expr_offset..)
            .and_then(|t| t.find(name))
            .map_or(expr_offset, |i| expr_offset + i)
    }
}
