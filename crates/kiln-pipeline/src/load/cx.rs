//! The loader's working state: the file, its text, and the diagnostics
//! gathered so far, plus the typed readers every section uses (a string, a
//! template, a boolean or an expression, a list, `NAME: value` pairs), each
//! reporting a wrong type where it found it and carrying on.

use super::exprs;
use super::node::{self, At, Scalar};
use super::source::Source;
use super::suggest;
use crate::diag::{Diagnostic, Severity};
use kiln_model::Value;
use kiln_model::workflow::{Cond, Dyn, Loc, Pairs, Template};
use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};

pub(crate) struct Cx<'s> {
    pub(crate) file: &'s str,
    pub(crate) src: Source<'s>,
    pub(crate) diags: Vec<Diagnostic>,
}

impl<'s> Cx<'s> {
    pub(crate) fn new(file: &'s str, text: &'s str) -> Self {
        Cx {
            file,
            src: Source::new(text),
            diags: Vec::new(),
        }
    }

    pub(crate) fn push(
        &mut self,
        severity: Severity,
        at: At,
        message: String,
        help: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            file: self.file.to_owned(),
            loc: at.loc,
            len: at.len.max(1),
            message,
            help,
        });
    }

    pub(crate) fn error(&mut self, at: At, message: impl Into<String>) {
        self.push(Severity::Error, at, message.into(), None);
    }

    pub(crate) fn error_help(
        &mut self,
        at: At,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.push(Severity::Error, at, message.into(), Some(help.into()));
    }

    pub(crate) fn warn(&mut self, at: At, message: impl Into<String>, help: Option<String>) {
        self.push(Severity::Warning, at, message.into(), help);
    }

    /// Where a node is, for pointing at it.
    pub(crate) fn at(&self, n: &Node) -> At {
        match n {
            Node::Scalar(s) => self.at_scalar(s),
            Node::Mapping(m) => match m.keys().next() {
                Some(k) => At {
                    loc: node::loc(k.span()),
                    len: 1,
                },
                None => At {
                    loc: node::loc(m.span()),
                    len: 1,
                },
            },
            Node::Sequence(s) => At {
                loc: node::loc(s.span()),
                len: 1,
            },
        }
    }

    pub(crate) fn at_scalar(&self, s: &MarkedScalarNode) -> At {
        let loc = node::loc(s.span());
        let style = node::style(&self.src, s);
        At {
            loc,
            len: self.src.extent(loc, style, s.as_str()),
        }
    }

    pub(crate) fn scalar<'n>(&self, s: &'n MarkedScalarNode) -> Scalar<'n> {
        Scalar {
            node: s,
            style: node::style(&self.src, s),
        }
    }

    /// Where byte `offset` of a scalar's value is.
    pub(crate) fn at_offset(&self, s: &MarkedScalarNode, offset: usize, len: u32) -> At {
        let start = node::loc(s.span());
        At {
            loc: self
                .src
                .locate(start, node::style(&self.src, s), s.as_str(), offset),
            len,
        }
    }

    fn wrong_type(&mut self, n: &Node, expected: &str, what: &str) {
        let found = node::kind(&self.src, n);
        self.error(
            self.at(n),
            format!("expected {expected} for {what}, found {found}"),
        );
    }

    pub(crate) fn mapping<'n>(&mut self, n: &'n Node, what: &str) -> Option<&'n MarkedMappingNode> {
        match n {
            Node::Mapping(m) => Some(m),
            Node::Scalar(_) | Node::Sequence(_) => {
                self.wrong_type(n, "a mapping", what);
                None
            }
        }
    }

    /// A mapping, where an empty value (`pull_request:`) means an empty mapping.
    pub(crate) fn opt_mapping<'n>(
        &mut self,
        n: &'n Node,
        what: &str,
    ) -> Option<Option<&'n MarkedMappingNode>> {
        match n {
            Node::Scalar(s) if self.scalar(s).is_null() => Some(None),
            _ => self.mapping(n, what).map(Some),
        }
    }

    pub(crate) fn sequence<'n>(
        &mut self,
        n: &'n Node,
        what: &str,
    ) -> Option<&'n MarkedSequenceNode> {
        match n {
            Node::Sequence(s) => Some(s),
            Node::Scalar(_) | Node::Mapping(_) => {
                self.wrong_type(n, "a list", what);
                None
            }
        }
    }

    /// Any scalar, as text.
    pub(crate) fn string(&mut self, n: &Node, what: &str) -> Option<String> {
        self.scalar_node(n, what).map(|s| s.as_str().to_owned())
    }

    pub(crate) fn scalar_node<'n>(
        &mut self,
        n: &'n Node,
        what: &str,
    ) -> Option<&'n MarkedScalarNode> {
        match n {
            Node::Scalar(s) => Some(s),
            Node::Mapping(_) | Node::Sequence(_) => {
                self.wrong_type(n, "a string", what);
                None
            }
        }
    }

    /// A scalar that may hold `${{ }}` parts, syntax and contexts checked.
    /// `null` reads as the empty text.
    pub(crate) fn template(&mut self, n: &Node, what: &str) -> Option<Template> {
        let s = self.scalar_node(n, what)?;
        Some(self.template_of(s))
    }

    pub(crate) fn template_of(&mut self, s: &MarkedScalarNode) -> Template {
        let text = if self.scalar(s).is_null() {
            ""
        } else {
            s.as_str()
        };
        exprs::check_template(self, s, text);
        Template::new(text, node::loc(s.span()))
    }

    /// An `if:` condition (bare or in `${{ }}`), syntax and contexts checked.
    pub(crate) fn cond(&mut self, n: &Node) -> Option<Cond> {
        let s = self.scalar_node(n, "`if`")?;
        exprs::check_condition(self, s);
        Some(Cond {
            src: s.as_str().to_owned(),
            loc: node::loc(s.span()),
        })
    }

    /// A boolean, or an expression yielding one.
    pub(crate) fn dyn_bool(&mut self, n: &Node, what: &str) -> Option<Dyn<bool>> {
        if let Some(t) = self.expression(n) {
            return Some(Dyn::Expr(t));
        }
        match n {
            Node::Scalar(s) => match self.scalar(s).value() {
                Value::Bool(b) => Some(Dyn::Lit(b)),
                _ => {
                    self.wrong_type(n, "a boolean", what);
                    None
                }
            },
            Node::Mapping(_) | Node::Sequence(_) => {
                self.wrong_type(n, "a boolean", what);
                None
            }
        }
    }

    /// A number, or an expression yielding one.
    pub(crate) fn dyn_number(&mut self, n: &Node, what: &str) -> Option<Dyn<f64>> {
        if let Some(t) = self.expression(n) {
            return Some(Dyn::Expr(t));
        }
        match n {
            Node::Scalar(s) => match self.scalar(s).value() {
                Value::Number(x) if x.is_finite() => Some(Dyn::Lit(x)),
                _ => {
                    self.wrong_type(n, "a number", what);
                    None
                }
            },
            Node::Mapping(_) | Node::Sequence(_) => {
                self.wrong_type(n, "a number", what);
                None
            }
        }
    }

    /// A scalar holding `${{`, checked, as a template; `None` otherwise.
    pub(crate) fn expression(&mut self, n: &Node) -> Option<Template> {
        match n {
            Node::Scalar(s) if s.as_str().contains("${{") => Some(self.template_of(s)),
            Node::Scalar(_) | Node::Mapping(_) | Node::Sequence(_) => None,
        }
    }

    /// One string or a list of strings (`needs`, `branches`, `types`).
    pub(crate) fn string_list(&mut self, n: &Node, what: &str) -> Vec<(String, At)> {
        match n {
            Node::Scalar(s) if self.scalar(s).is_null() => Vec::new(),
            Node::Scalar(s) => vec![(s.as_str().to_owned(), self.at_scalar(s))],
            Node::Sequence(items) => items
                .iter()
                .filter_map(|item| {
                    let s = self.scalar_node(item, what)?;
                    Some((s.as_str().to_owned(), self.at_scalar(s)))
                })
                .collect(),
            Node::Mapping(_) => {
                self.wrong_type(n, "a string or a list", what);
                Vec::new()
            }
        }
    }

    /// `NAME: value` pairs with template values (`env`, `with`, `outputs`).
    pub(crate) fn pairs(&mut self, n: &Node, what: &str) -> Pairs {
        if let Some(t) = self.expression(n) {
            // `env: ${{ fromJSON(...) }}` is valid GitHub, but kiln's IR holds
            // literal names.
            self.error(
                At { loc: t.loc, len: self.at(n).len },
                format!("{what} must be written out as a mapping; kiln does not accept an expression here"),
            );
            return Vec::new();
        }
        let Some(Some(map)) = self.opt_mapping(n, what) else {
            return Vec::new();
        };
        map.iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_owned(),
                    self.template(v, &format!("`{}`", k.as_str()))?,
                ))
            })
            .collect()
    }

    /// Report an unknown key, suggesting the closest allowed one.
    /// Returns the suggestion, so callers can avoid a second error for the
    /// key the user meant ("no `runs-on`" after "unknown key `runs_on`").
    pub(crate) fn unknown_key<'a>(
        &mut self,
        key: &MarkedScalarNode,
        place: &str,
        allowed: &[&'a str],
    ) -> Option<&'a str> {
        let at = self.at_scalar(key);
        let message = format!("unknown key `{}` in {place}", key.as_str());
        let suggestion = suggest::closest(key.as_str(), allowed.iter().copied());
        let help = match suggestion {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("expected one of {}", suggest::list(allowed)),
        };
        self.error_help(at, message, help);
        suggestion
    }

    /// The location of the start of the file, for things that are missing.
    pub(crate) fn top(&self) -> At {
        At {
            loc: Loc { line: 1, col: 1 },
            len: 1,
        }
    }
}
