//! Comment commands: `!testme --extra --only build` on a pull request.
//!
//! A workflow opts in with `on: comment: {command: "!testme"}`. A comment
//! runs it when its first word is exactly the command; the flags after it
//! become the `kiln.flags` object that expressions read
//! (`kiln.flags.extra == true`, `kiln.flags.only == 'build'`).
//!
//! The rules, decided here once:
//! - Leading whitespace (blank lines included) is skipped; the first word
//!   must equal the command byte for byte (`!testmexyz`, `!TestMe` and
//!   `> !testme` do not match).
//! - Only the command's line counts; the lines after it are free text for
//!   humans (a reason, a quote), never read as flags.
//! - On that line every word after the command is a flag. A flag is
//!   `--name` (boolean: `true`) or, for a flag declared as taking a value,
//!   `--name VALUE` or `--name=VALUE`. Values may be quoted with `"` or `'`
//!   to hold spaces.
//! - Anything else is answered, not ignored: an unknown flag, a word that is
//!   not a flag, a value flag without its value, a value given to a boolean
//!   flag, a value flag given twice. Repeating a boolean flag is harmless.
//!   The caller posts the error's message as a reply and starts nothing.

use kiln_model::Value;
use std::collections::BTreeMap;

/// What a comment means for one workflow's command.
#[derive(Clone, Debug, PartialEq)]
pub enum CommentMatch {
    /// The comment does not start with the command: nothing to do, no reply.
    NoMatch,
    /// Run the workflow; `flags` is the `kiln.flags` object.
    Run { flags: Value },
    /// The command was meant but cannot run as written: reply with the
    /// error, start nothing.
    Rejected(CommandError),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown flag `{flag}`; {command} takes {known}")]
    UnknownFlag {
        flag: String,
        command: String,
        known: String,
    },
    #[error("`{word}` is not a flag; {command} takes {known}")]
    NotAFlag {
        word: String,
        command: String,
        known: String,
    },
    #[error("flag `--{flag}` needs a value: `--{flag} VALUE` or `--{flag}=VALUE`")]
    MissingValue { flag: String },
    #[error("flag `--{flag}` takes no value")]
    UnexpectedValue { flag: String },
    #[error("flag `--{flag}` is given twice")]
    Repeated { flag: String },
    #[error("unclosed quote in `{text}`")]
    UnclosedQuote { text: String },
}

/// Match `body` against `command`.
///
/// `known_flags` declares the command's flags by name, without dashes; a
/// name ending in `=` takes a value (`["extra", "only="]` accepts `--extra`
/// and `--only JOB`).
pub fn parse_comment(body: &str, command: &str, known_flags: &[&str]) -> CommentMatch {
    let line = body.trim_start().lines().next().unwrap_or_default();
    let (first, rest) = match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, ""),
    };
    if command.is_empty() || first != command {
        return CommentMatch::NoMatch;
    }
    match flags(rest, command, known_flags) {
        Ok(flags) => CommentMatch::Run { flags },
        Err(e) => CommentMatch::Rejected(e),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Takes,
}

fn declared<'a>(known_flags: &[&'a str]) -> Vec<(&'a str, Kind)> {
    known_flags
        .iter()
        .map(|f| match f.strip_suffix('=') {
            Some(name) => (name, Kind::Takes),
            None => (*f, Kind::Bool),
        })
        .collect()
}

fn describe(decl: &[(&str, Kind)]) -> String {
    if decl.is_empty() {
        return "no flags".to_owned();
    }
    decl.iter()
        .map(|(n, k)| match k {
            Kind::Bool => format!("`--{n}`"),
            Kind::Takes => format!("`--{n} VALUE`"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn flags(rest: &str, command: &str, known_flags: &[&str]) -> Result<Value, CommandError> {
    let decl = declared(known_flags);
    let words = split_words(rest)?;
    let mut out = BTreeMap::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let Some(spec) = word.strip_prefix("--").filter(|s| !s.is_empty()) else {
            return Err(if word.starts_with('-') {
                CommandError::UnknownFlag {
                    flag: word,
                    command: command.to_owned(),
                    known: describe(&decl),
                }
            } else {
                CommandError::NotAFlag {
                    word,
                    command: command.to_owned(),
                    known: describe(&decl),
                }
            });
        };
        let (name, inline) = match spec.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (spec, None),
        };
        let Some(&(name, kind)) = decl.iter().find(|(n, _)| *n == name) else {
            return Err(CommandError::UnknownFlag {
                flag: format!("--{name}"),
                command: command.to_owned(),
                known: describe(&decl),
            });
        };
        match kind {
            Kind::Bool => {
                if inline.is_some() {
                    return Err(CommandError::UnexpectedValue {
                        flag: name.to_owned(),
                    });
                }
                out.insert(name.to_owned(), Value::Bool(true));
            }
            Kind::Takes => {
                let value = match inline {
                    Some(v) => v,
                    None => match words.next() {
                        Some(v) if !v.starts_with("--") => v,
                        Some(_) | None => {
                            return Err(CommandError::MissingValue {
                                flag: name.to_owned(),
                            });
                        }
                    },
                };
                if value.is_empty() {
                    return Err(CommandError::MissingValue {
                        flag: name.to_owned(),
                    });
                }
                if out.insert(name.to_owned(), Value::String(value)).is_some() {
                    return Err(CommandError::Repeated {
                        flag: name.to_owned(),
                    });
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Whitespace-separated words; `"…"` and `'…'` group (no escapes inside).
fn split_words(s: &str) -> Result<Vec<String>, CommandError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(CommandError::UnclosedQuote {
            text: s.trim().to_owned(),
        });
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["extra", "only="];

    fn run(pairs: &[(&str, Value)]) -> CommentMatch {
        CommentMatch::Run {
            flags: Value::object(pairs.iter().cloned()),
        }
    }

    fn rejected(body: &str) -> CommandError {
        match parse_comment(body, "!testme", KNOWN) {
            CommentMatch::Rejected(e) => e,
            other => panic!("{body:?}: expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn matching_table() {
        let t = Value::Bool(true);
        let cases: Vec<(&str, CommentMatch)> = vec![
            ("!testme", run(&[])),
            ("!testme\n", run(&[])),
            ("   !testme", run(&[])),
            ("\n\n  \t!testme --extra", run(&[("extra", t.clone())])),
            ("!testme\r\nplease look at the flaky test", run(&[])),
            (
                "!testme --extra\n--only build",
                run(&[("extra", t.clone())]),
            ),
            ("!testme --extra --extra", run(&[("extra", t.clone())])),
            (
                "!testme --only build",
                run(&[("only", Value::str("build"))]),
            ),
            (
                "!testme --only=build",
                run(&[("only", Value::str("build"))]),
            ),
            (
                "!testme --only \"test (linux)\" --extra",
                run(&[("only", Value::str("test (linux)")), ("extra", t.clone())]),
            ),
            ("!testme --only='a b'", run(&[("only", Value::str("a b"))])),
            ("!testmexyz", CommentMatch::NoMatch),
            ("!testmexyz --extra", CommentMatch::NoMatch),
            ("!TESTME", CommentMatch::NoMatch),
            ("> !testme --extra", CommentMatch::NoMatch),
            ("please !testme", CommentMatch::NoMatch),
            ("\"!testme\"", CommentMatch::NoMatch),
            ("", CommentMatch::NoMatch),
            ("LGTM\n!testme", CommentMatch::NoMatch),
        ];
        for (body, want) in cases {
            assert_eq!(parse_comment(body, "!testme", KNOWN), want, "{body:?}");
        }
    }

    #[test]
    fn mistakes_are_answered() {
        assert_eq!(
            rejected("!testme --extar"),
            CommandError::UnknownFlag {
                flag: "--extar".into(),
                command: "!testme".into(),
                known: "`--extra`, `--only VALUE`".into(),
            }
        );
        assert_eq!(
            rejected("!testme --extar").to_string(),
            "unknown flag `--extar`; !testme takes `--extra`, `--only VALUE`"
        );
        assert!(
            matches!(rejected("!testme -x"), CommandError::UnknownFlag { flag, .. } if flag == "-x")
        );
        assert!(matches!(
            rejected("!testme --"),
            CommandError::UnknownFlag { .. }
        ));
        assert!(
            matches!(rejected("!testme please"), CommandError::NotAFlag { word, .. } if word == "please")
        );
        assert_eq!(
            rejected("!testme --only"),
            CommandError::MissingValue {
                flag: "only".into()
            }
        );
        assert_eq!(
            rejected("!testme --only --extra"),
            CommandError::MissingValue {
                flag: "only".into()
            }
        );
        assert_eq!(
            rejected("!testme --only="),
            CommandError::MissingValue {
                flag: "only".into()
            }
        );
        assert_eq!(
            rejected("!testme --extra=yes"),
            CommandError::UnexpectedValue {
                flag: "extra".into()
            }
        );
        assert_eq!(
            rejected("!testme --only a --only b"),
            CommandError::Repeated {
                flag: "only".into()
            }
        );
        assert!(matches!(
            rejected("!testme --only \"a b"),
            CommandError::UnclosedQuote { .. }
        ));
    }

    #[test]
    fn a_command_without_flags_says_so() {
        let m = parse_comment("!deploy --extra", "!deploy", &[]);
        let CommentMatch::Rejected(e) = m else {
            panic!("expected a rejection")
        };
        assert_eq!(
            e.to_string(),
            "unknown flag `--extra`; !deploy takes no flags"
        );
    }

    #[test]
    fn an_empty_command_matches_nothing() {
        assert_eq!(parse_comment("anything", "", KNOWN), CommentMatch::NoMatch);
        assert_eq!(parse_comment("", "", KNOWN), CommentMatch::NoMatch);
    }
}
