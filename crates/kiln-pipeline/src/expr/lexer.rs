//! Tokens of the expression language, read on demand by the parser.
//!
//! Like GitHub's lexer, it looks at the previous token to tell apart forms
//! that share characters: `.5` is a number where a value may start and `.`
//! dereferences elsewhere; a word after `.` is always a property name (so
//! `a.null` and `a.true` are properties); a word followed by `(` is a
//! function name. Words are `[A-Za-z_][A-Za-z0-9_-]*` (`-` is allowed after
//! the first character, as in `steps.my-step`).

use super::ExprError;
use super::coerce;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Null,
    True,
    False,
    Number(f64),
    Str(String),
    /// A context name.
    Ident(String),
    /// A word directly followed (whitespace aside) by `(`.
    Func(String),
    /// A word after `.`.
    Prop(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Star,
    Not,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl Tok {
    /// How the token reads in a message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Null => "`null`".to_owned(),
            Tok::True => "`true`".to_owned(),
            Tok::False => "`false`".to_owned(),
            Tok::Number(n) => format!("number `{}`", coerce::format_number(*n)),
            Tok::Str(s) => format!("string {}", super::ast::quote(s)),
            Tok::Ident(s) | Tok::Func(s) | Tok::Prop(s) => format!("`{s}`"),
            other => format!("`{}`", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Star => "*",
            Tok::Not => "!",
            Tok::Eq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::And => "&&",
            Tok::Or => "||",
            Tok::Null
            | Tok::True
            | Tok::False
            | Tok::Number(_)
            | Tok::Str(_)
            | Tok::Ident(_)
            | Tok::Func(_)
            | Tok::Prop(_) => "",
        }
    }

    /// Whether a value may start right after this token (so `.` begins a number).
    fn expects_operand(&self) -> bool {
        matches!(
            self,
            Tok::Comma
                | Tok::LParen
                | Tok::LBracket
                | Tok::Not
                | Tok::Eq
                | Tok::Ne
                | Tok::Lt
                | Tok::Le
                | Tok::Gt
                | Tok::Ge
                | Tok::And
                | Tok::Or
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) start: usize,
}

pub(crate) struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    last: Option<Tok>,
}

/// Characters that end a word or number.
fn is_boundary(c: char) -> bool {
    matches!(
        c,
        '(' | '[' | ')' | ']' | ',' | '.' | '!' | '>' | '<' | '=' | '&' | '|'
    ) || c.is_whitespace()
}

fn err(offset: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        offset,
        message: message.into(),
    }
}

impl<'s> Lexer<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Lexer {
            src,
            pos: 0,
            last: None,
        }
    }

    /// Offset of the end of input.
    pub(crate) fn end(&self) -> usize {
        self.src.len()
    }

    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn skip_whitespace(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    /// The next token, `None` at the end of input.
    pub(crate) fn next_token(&mut self) -> Result<Option<Token>, ExprError> {
        self.skip_whitespace();
        let start = self.pos;
        let Some(c) = self.rest().chars().next() else {
            return Ok(None);
        };
        let expects_operand = self.last.as_ref().is_none_or(Tok::expects_operand);
        let tok = match c {
            '(' => self.single(Tok::LParen),
            ')' => self.single(Tok::RParen),
            '[' => self.single(Tok::LBracket),
            ']' => self.single(Tok::RBracket),
            ',' => self.single(Tok::Comma),
            '*' => self.single(Tok::Star),
            '.' if !expects_operand => self.single(Tok::Dot),
            '\'' => self.string()?,
            '"' => {
                return Err(err(
                    start,
                    "strings use single quotes: write 'text', not \"text\"",
                ));
            }
            '!' | '<' | '>' | '=' | '&' | '|' => self.operator()?,
            '.' | '+' | '-' | '0'..='9' => self.number()?,
            _ => self.word()?,
        };
        self.last = Some(tok.clone());
        Ok(Some(Token { tok, start }))
    }

    fn single(&mut self, tok: Tok) -> Tok {
        self.pos += 1;
        tok
    }

    /// Up to the next boundary (a `.` included when `keep_dots`).
    fn take_word(&mut self, keep_dots: bool) -> &'s str {
        let start = self.pos;
        let mut chars = self.rest().char_indices();
        chars.next();
        let len = chars
            .find(|&(_, c)| is_boundary(c) && !(keep_dots && c == '.'))
            .map_or(self.rest().len(), |(i, _)| i);
        self.pos += len;
        &self.src[start..self.pos]
    }

    fn string(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        let mut value = String::new();
        let mut chars = self.src[start + 1..].char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if let Some((_, '\'')) = chars.peek() {
                    chars.next();
                } else {
                    self.pos = start + 1 + i + 1;
                    return Ok(Tok::Str(value));
                }
            }
            value.push(c);
        }
        Err(err(
            start,
            "unterminated string: add a closing `'` (write `''` for a quote inside a string)",
        ))
    }

    fn operator(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        let two = self.rest().get(..2).unwrap_or("");
        let tok = match two {
            "==" => Some(Tok::Eq),
            "!=" => Some(Tok::Ne),
            "<=" => Some(Tok::Le),
            ">=" => Some(Tok::Ge),
            "&&" => Some(Tok::And),
            "||" => Some(Tok::Or),
            _ => None,
        };
        if let Some(tok) = tok {
            self.pos += 2;
            return Ok(tok);
        }
        let one = &self.rest()[..1];
        self.pos += 1;
        match one {
            "!" => Ok(Tok::Not),
            "<" => Ok(Tok::Lt),
            ">" => Ok(Tok::Gt),
            "=" => Err(err(start, "unexpected `=`: compare with `==`")),
            "&" => Err(err(start, "unexpected `&`: the logical and is `&&`")),
            _ => Err(err(start, "unexpected `|`: the logical or is `||`")),
        }
    }

    fn number(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        let raw = self.take_word(true);
        let n = coerce::parse_number(raw);
        if n.is_nan() {
            let hint = if raw == "-" || raw == "+" {
                ": there are no arithmetic operators"
            } else {
                ""
            };
            return Err(err(start, format!("invalid number `{raw}`{hint}")));
        }
        Ok(Tok::Number(n))
    }

    fn word(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        let after_dot = matches!(self.last, Some(Tok::Dot));
        let word = self.take_word(false);
        if !super::ast::is_keyword(word) {
            let first = word.chars().next().unwrap_or(' ');
            let message =
                if word.chars().count() == 1 || !(first.is_ascii_alphabetic() || first == '_') {
                    format!("unexpected character `{first}`")
                } else {
                    format!("invalid name `{word}`: names are letters, digits, `_` and `-`")
                };
            return Err(err(start, message));
        }
        if after_dot {
            return Ok(Tok::Prop(word.to_owned()));
        }
        Ok(match word {
            "null" => Tok::Null,
            "true" => Tok::True,
            "false" => Tok::False,
            "NaN" => Tok::Number(f64::NAN),
            "Infinity" => Tok::Number(f64::INFINITY),
            _ if self.rest().trim_start().starts_with('(') => Tok::Func(word.to_owned()),
            _ => Tok::Ident(word.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(src: &str) -> Result<Vec<Tok>, ExprError> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        while let Some(t) = lexer.next_token()? {
            out.push(t.tok);
        }
        Ok(out)
    }

    #[test]
    fn dots_words_and_numbers() {
        assert_eq!(
            lex("a.b-c.null[.5]").unwrap(),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Prop("b-c".into()),
                Tok::Dot,
                Tok::Prop("null".into()),
                Tok::LBracket,
                Tok::Number(0.5),
                Tok::RBracket,
            ]
        );
        assert_eq!(lex("-2.99e-2").unwrap(), vec![Tok::Number(-0.0299)]);
        assert_eq!(lex("0xff").unwrap(), vec![Tok::Number(255.0)]);
        assert_eq!(
            lex("-Infinity").unwrap(),
            vec![Tok::Number(f64::NEG_INFINITY)]
        );
        assert_eq!(
            lex("f (").unwrap(),
            vec![Tok::Func("f".into()), Tok::LParen]
        );
        assert_eq!(lex("'It''s'").unwrap(), vec![Tok::Str("It's".into())]);
        assert_eq!(
            lex("a!=b").unwrap(),
            vec![Tok::Ident("a".into()), Tok::Ne, Tok::Ident("b".into())]
        );
    }

    #[test]
    fn lexical_errors_point_at_the_token() {
        let e = lex("a == \"x\"").unwrap_err();
        assert_eq!(e.offset, 5);
        assert!(e.message.contains("single quotes"));
        assert_eq!(lex("a = b").unwrap_err().offset, 2);
        assert_eq!(lex("x && 'abc").unwrap_err().offset, 5);
        assert_eq!(lex("1.2.3").unwrap_err().message, "invalid number `1.2.3`");
        assert!(lex("a - b").unwrap_err().message.contains("arithmetic"));
        assert_eq!(
            lex("a # b").unwrap_err().message,
            "unexpected character `#`"
        );
    }
}
