//! Recursive-descent parser: tokens to [`Node`]s, with GitHub's precedence.
//!
//! Loosest to tightest: `||`, `&&`, `==` `!=`, `<` `<=` `>` `>=`, `!`, then
//! `.` `[]` and calls. Binary operators are left-associative. GitHub's
//! restrictions are kept: a bare literal cannot be indexed (`'a'[0]` is an
//! error, `('a')[0]` is not), function names and arities are checked here,
//! a tree deeper than 50 levels or an expression longer than 21,000
//! characters is rejected. Every error carries the byte offset of the
//! offending token.

use super::ExprError;
use super::ast::{CmpOp, Index, Node};
use super::format;
use super::functions::{self, Func};
use super::lexer::{Lexer, Tok, Token};

/// GitHub's limit on tree depth.
const MAX_DEPTH: usize = 50;
/// GitHub's limit on expression length (UTF-16 code units).
const MAX_LENGTH: usize = 21_000;
/// Recursion guard for pathological nesting such as 10,000 parentheses.
const MAX_NESTING: usize = 64;

pub(crate) fn parse_node(src: &str) -> Result<Node, ExprError> {
    if src.encode_utf16().count() > MAX_LENGTH {
        return Err(ExprError {
            offset: 0,
            message: format!("expression is longer than {MAX_LENGTH} characters"),
        });
    }
    let mut p = Parser {
        lexer: Lexer::new(src),
        peeked: None,
        prev: None,
    };
    if p.peek()?.is_none() {
        return Err(ExprError {
            offset: src.len(),
            message: "expected an expression".to_owned(),
        });
    }
    let node = p.expr(0)?;
    if let Some(t) = p.bump()? {
        let message = match t.tok {
            Tok::RParen | Tok::RBracket => format!("unmatched {}", t.tok.describe()),
            _ => format!(
                "expected an operator or the end of the expression, found {}",
                t.tok.describe()
            ),
        };
        return Err(ExprError {
            offset: t.start,
            message,
        });
    }
    if node.depth() > MAX_DEPTH {
        return Err(ExprError {
            offset: 0,
            message: format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
        });
    }
    Ok(node)
}

struct Parser<'s> {
    lexer: Lexer<'s>,
    peeked: Option<Option<Token>>,
    /// The last token consumed, for messages ("expected a value after `&&`").
    prev: Option<Tok>,
}

impl Parser<'_> {
    fn peek(&mut self) -> Result<Option<&Token>, ExprError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        Ok(self.peeked.as_ref().and_then(Option::as_ref))
    }

    fn peek_tok(&mut self) -> Result<Option<&Tok>, ExprError> {
        Ok(self.peek()?.map(|t| &t.tok))
    }

    fn bump(&mut self) -> Result<Option<Token>, ExprError> {
        let t = match self.peeked.take() {
            Some(t) => t,
            None => self.lexer.next_token()?,
        };
        if let Some(t) = &t {
            self.prev = Some(t.tok.clone());
        }
        Ok(t)
    }

    /// Offset of the next token, or of the end of input.
    fn here(&mut self) -> Result<usize, ExprError> {
        let end = self.lexer.end();
        Ok(self.peek()?.map_or(end, |t| t.start))
    }

    /// An error at the next token: "expected X, found Y", or at the end of input.
    fn expected(&mut self, what: &str) -> ExprError {
        let end = self.lexer.end();
        match self.peek() {
            Ok(Some(t)) => ExprError {
                offset: t.start,
                message: format!("expected {what}, found {}", t.tok.describe()),
            },
            Ok(None) => ExprError {
                offset: end,
                message: format!("unexpected end of expression: expected {what}"),
            },
            Err(e) => e,
        }
    }

    fn expr(&mut self, nesting: usize) -> Result<Node, ExprError> {
        if nesting > MAX_NESTING {
            let offset = self.here()?;
            return Err(ExprError {
                offset,
                message: "expression is nested too deeply".to_owned(),
            });
        }
        let mut items = vec![self.and(nesting)?];
        while self.peek_tok()? == Some(&Tok::Or) {
            self.bump()?;
            items.push(self.and(nesting)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::or(items)
        })
    }

    fn and(&mut self, nesting: usize) -> Result<Node, ExprError> {
        let mut items = vec![self.equality(nesting)?];
        while self.peek_tok()? == Some(&Tok::And) {
            self.bump()?;
            items.push(self.equality(nesting)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::and(items)
        })
    }

    fn equality(&mut self, nesting: usize) -> Result<Node, ExprError> {
        let mut lhs = self.comparison(nesting)?;
        loop {
            let op = match self.peek_tok()? {
                Some(Tok::Eq) => CmpOp::Eq,
                Some(Tok::Ne) => CmpOp::Ne,
                _ => return Ok(lhs),
            };
            self.bump()?;
            let rhs = self.comparison(nesting)?;
            lhs = Node::Compare {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
    }

    fn comparison(&mut self, nesting: usize) -> Result<Node, ExprError> {
        let mut lhs = self.unary(nesting)?;
        loop {
            let op = match self.peek_tok()? {
                Some(Tok::Lt) => CmpOp::Lt,
                Some(Tok::Le) => CmpOp::Le,
                Some(Tok::Gt) => CmpOp::Gt,
                Some(Tok::Ge) => CmpOp::Ge,
                _ => return Ok(lhs),
            };
            self.bump()?;
            let rhs = self.unary(nesting)?;
            lhs = Node::Compare {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
    }

    fn unary(&mut self, nesting: usize) -> Result<Node, ExprError> {
        if self.peek_tok()? == Some(&Tok::Not) {
            self.bump()?;
            if nesting > MAX_NESTING {
                let offset = self.here()?;
                return Err(ExprError {
                    offset,
                    message: "expression is nested too deeply".to_owned(),
                });
            }
            return Ok(Node::Not(Box::new(self.unary(nesting + 1)?)));
        }
        self.postfix(nesting)
    }

    fn postfix(&mut self, nesting: usize) -> Result<Node, ExprError> {
        let (mut node, literal) = self.primary(nesting)?;
        loop {
            let start = self.here()?;
            let index = match self.peek_tok()? {
                Some(Tok::Dot) => {
                    if literal {
                        return Err(ExprError {
                            offset: start,
                            message: "a literal has no properties: `.` cannot follow it".to_owned(),
                        });
                    }
                    self.bump()?;
                    match self.peek_tok()? {
                        Some(Tok::Prop(name)) => {
                            let name = name.clone();
                            self.bump()?;
                            Index::Property(name)
                        }
                        Some(Tok::Star) => {
                            self.bump()?;
                            Index::Wildcard
                        }
                        Some(Tok::Number(_)) => {
                            return Err(self.expected(
                                "a property name or `*` after `.` (index arrays with `[0]`)",
                            ));
                        }
                        _ => return Err(self.expected("a property name or `*` after `.`")),
                    }
                }
                Some(Tok::LBracket) => {
                    if literal {
                        return Err(ExprError {
                            offset: start,
                            message: "a literal cannot be indexed: `[` cannot follow it".to_owned(),
                        });
                    }
                    self.bump()?;
                    let index = if self.peek_tok()? == Some(&Tok::Star) {
                        self.bump()?;
                        Index::Wildcard
                    } else {
                        Index::Expr(Box::new(self.expr(nesting + 1)?))
                    };
                    if self.peek_tok()? != Some(&Tok::RBracket) {
                        return Err(self.expected("`]` to close `[`"));
                    }
                    self.bump()?;
                    index
                }
                _ => return Ok(node),
            };
            node = Node::Index {
                target: Box::new(node),
                index,
            };
        }
    }

    /// A value, and whether it is a bare literal.
    fn primary(&mut self, nesting: usize) -> Result<(Node, bool), ExprError> {
        let what = match &self.prev {
            Some(prev) if !matches!(prev, Tok::LParen | Tok::LBracket | Tok::Comma) => {
                format!("a value after {}", prev.describe())
            }
            Some(_) | None => "a value".to_owned(),
        };
        let Some(token) = self.peek()?.cloned() else {
            return Err(self.expected(&what));
        };
        let literal = |node| Ok((node, true));
        match token.tok {
            Tok::Null => {
                self.bump()?;
                literal(Node::Null)
            }
            Tok::True | Tok::False => {
                self.bump()?;
                literal(Node::Bool(token.tok == Tok::True))
            }
            Tok::Number(n) => {
                self.bump()?;
                literal(Node::Number(n))
            }
            Tok::Str(s) => {
                self.bump()?;
                literal(Node::String(s))
            }
            Tok::Ident(name) => {
                self.bump()?;
                Ok((
                    Node::Context {
                        name: name.to_ascii_lowercase(),
                        offset: token.start,
                    },
                    false,
                ))
            }
            Tok::Func(name) => {
                self.bump()?;
                Ok((self.call(&name, token.start, nesting)?, false))
            }
            Tok::LParen => {
                self.bump()?;
                let inner = self.expr(nesting + 1)?;
                if self.peek_tok()? != Some(&Tok::RParen) {
                    return Err(self.expected("`)` to close `(`"));
                }
                self.bump()?;
                Ok((inner, false))
            }
            Tok::Star => Err(ExprError {
                offset: token.start,
                message: "unexpected `*`: it only filters, as in `a.*` or `a[*]`".to_owned(),
            }),
            Tok::Prop(_)
            | Tok::RParen
            | Tok::LBracket
            | Tok::RBracket
            | Tok::Comma
            | Tok::Dot
            | Tok::Not
            | Tok::Eq
            | Tok::Ne
            | Tok::Lt
            | Tok::Le
            | Tok::Gt
            | Tok::Ge
            | Tok::And
            | Tok::Or => Err(self.expected(&what)),
        }
    }

    /// After the name of a function: `( args )`, checked against the function.
    fn call(&mut self, name: &str, offset: usize, nesting: usize) -> Result<Node, ExprError> {
        let Some(func) = Func::lookup(name) else {
            let message = match Func::suggest(name) {
                Some(f) => format!("unknown function `{name}`, did you mean `{}`?", f.name()),
                None => {
                    let names: Vec<&str> = functions::ALL.iter().map(|f| f.name()).collect();
                    format!(
                        "unknown function `{name}`; the functions are {}",
                        names.join(", ")
                    )
                }
            };
            return Err(ExprError { offset, message });
        };
        // The lexer only produces `Func` when `(` follows.
        self.bump()?;
        let mut args = Vec::new();
        let mut arg_offsets = Vec::new();
        if self.peek_tok()? == Some(&Tok::RParen) {
            self.bump()?;
        } else {
            loop {
                arg_offsets.push(self.here()?);
                args.push(self.expr(nesting + 1)?);
                match self.peek_tok()? {
                    Some(Tok::Comma) => {
                        self.bump()?;
                    }
                    Some(Tok::RParen) => {
                        self.bump()?;
                        break;
                    }
                    Some(_) => {
                        return Err(
                            self.expected(&format!("`,` or `)` in the call to `{}`", func.name()))
                        );
                    }
                    None => {
                        return Err(ExprError {
                            offset: self.lexer.end(),
                            message: format!("expected `)` to close the call to `{}`", func.name()),
                        });
                    }
                }
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            let given = match args.len() {
                0 => "none were given".to_owned(),
                1 => "1 was given".to_owned(),
                n => format!("{n} were given"),
            };
            return Err(ExprError {
                offset,
                message: format!("`{}` takes {}, but {given}", func.name(), func.arity_text()),
            });
        }
        if let (Func::Format, Some(Node::String(pattern))) = (func, args.first())
            && let Err(e) = format::parse(pattern, args.len() - 1)
        {
            return Err(ExprError {
                offset: arg_offsets.first().copied().unwrap_or(offset),
                message: format!("invalid format string: {e}"),
            });
        }
        Ok(Node::Call { func, args, offset })
    }
}
