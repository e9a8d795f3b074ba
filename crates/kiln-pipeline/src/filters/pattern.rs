//! GitHub's filter patterns, for branches, tags and paths, compiled and
//! matched.
//!
//! GitHub's filter patterns are not shell globs, so they are matched here by
//! hand rather than with `globset`: `?` and `+` are quantifiers on the
//! preceding character (`*.jsx?` matches `page.js` and `page.jsx`;
//! `v[12].[0-9]+.[0-9]+` matches `v1.10.1`), and `**` may stand inside a
//! path component (`**.js`, which `globset` rejects). The language:
//! - `*` any run of characters except `/`; `**` any run of characters;
//!   `**/` zero or more whole leading directories (`**/README.md` matches
//!   `README.md` and `js/README.md`);
//! - `?` zero or one, `+` one or more, of the preceding character or class
//!   (at the start of a pattern they are literal);
//! - `[...]` one character from the list; ranges only within `a-z`, `A-Z`
//!   or `0-9`;
//! - `\` makes the next character literal; every other character (`.`
//!   included) is itself;
//! - a leading `!` negates the pattern. The whole pattern must match.

/// What is wrong with a filter pattern.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("`[` at {at} is never closed")]
    UnclosedBracket { at: usize },
    #[error("empty brackets `[]` at {at}")]
    EmptyBrackets { at: usize },
    #[error("range `{lo}-{hi}` must lie within a-z, A-Z or 0-9")]
    BadRange { lo: char, hi: char },
    #[error("trailing `\\`")]
    TrailingEscape,
    #[error("empty pattern")]
    Empty,
}

/// Check a pattern's syntax, for diagnostics at load time.
pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
    Pattern::compile(pattern).map(|_| ())
}

/// Does `pattern` (without a leading `!`, which is literal here) match
/// `subject`? `None` when the pattern is invalid.
pub fn pattern_matches(pattern: &str, subject: &str) -> Option<bool> {
    let p = Pattern::compile_body(pattern).ok()?;
    Some(p.matches(subject))
}

#[derive(Clone, Debug, PartialEq)]
enum Atom {
    Char(char),
    /// Inclusive ranges; a single character is `(c, c)`.
    Class(Vec<(char, char)>),
    /// Any character but `/` (`*`'s element).
    NotSlash,
    /// Any character (`**`'s element).
    Any,
    /// `**/`: nothing, or one or more characters ending in `/`.
    Dirs,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rep {
    One,
    Optional,
    Many,
}

#[derive(Debug)]
pub(super) struct Pattern {
    pub(super) negated: bool,
    pieces: Vec<(Atom, Rep)>,
}

impl Pattern {
    pub(super) fn compile(raw: &str) -> Result<Pattern, PatternError> {
        match raw.strip_prefix('!') {
            Some(body) => Ok(Pattern {
                negated: true,
                ..Pattern::compile_body(body)?
            }),
            None => Pattern::compile_body(raw),
        }
    }

    fn compile_body(src: &str) -> Result<Pattern, PatternError> {
        if src.is_empty() {
            return Err(PatternError::Empty);
        }
        let chars: Vec<char> = src.chars().collect();
        let mut pieces: Vec<(Atom, Rep)> = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '*' => {
                    if chars.get(i + 1) == Some(&'*') {
                        if chars.get(i + 2) == Some(&'/') {
                            pieces.push((Atom::Dirs, Rep::One));
                            i += 3;
                        } else {
                            pieces.push((Atom::Any, Rep::Many));
                            i += 2;
                        }
                    } else {
                        pieces.push((Atom::NotSlash, Rep::Many));
                        i += 1;
                    }
                }
                '?' | '+' => {
                    let quantifiable = matches!(
                        pieces.last(),
                        Some((Atom::Char(_) | Atom::Class(_), Rep::One))
                    );
                    match pieces.last_mut() {
                        Some((_, rep)) if quantifiable && c == '?' => *rep = Rep::Optional,
                        Some((atom, _)) if quantifiable => {
                            // `a+` is `a` then `a*`.
                            let atom = atom.clone();
                            pieces.push((atom, Rep::Many));
                        }
                        // After a wildcard or another quantifier the set of
                        // matches does not change.
                        Some(_) => {}
                        // At the start there is nothing to repeat: literal.
                        None => pieces.push((Atom::Char(c), Rep::One)),
                    }
                    i += 1;
                }
                '[' => {
                    let start = i;
                    i += 1;
                    if chars.get(i) == Some(&']') {
                        return Err(PatternError::EmptyBrackets { at: start });
                    }
                    let mut set = Vec::new();
                    loop {
                        let Some(&c) = chars.get(i) else {
                            return Err(PatternError::UnclosedBracket { at: start });
                        };
                        if c == ']' {
                            i += 1;
                            break;
                        }
                        if chars.get(i + 1) == Some(&'-')
                            && chars.get(i + 2).is_some_and(|&h| h != ']')
                        {
                            let hi = chars[i + 2];
                            let same_kind = (c.is_ascii_lowercase() && hi.is_ascii_lowercase())
                                || (c.is_ascii_uppercase() && hi.is_ascii_uppercase())
                                || (c.is_ascii_digit() && hi.is_ascii_digit());
                            if !same_kind || c > hi {
                                return Err(PatternError::BadRange { lo: c, hi });
                            }
                            set.push((c, hi));
                            i += 3;
                        } else {
                            set.push((c, c));
                            i += 1;
                        }
                    }
                    pieces.push((Atom::Class(set), Rep::One));
                }
                '\\' => {
                    let Some(&next) = chars.get(i + 1) else {
                        return Err(PatternError::TrailingEscape);
                    };
                    pieces.push((Atom::Char(next), Rep::One));
                    i += 2;
                }
                c => {
                    pieces.push((Atom::Char(c), Rep::One));
                    i += 1;
                }
            }
        }
        Ok(Pattern {
            negated: false,
            pieces,
        })
    }

    pub(super) fn matches(&self, subject: &str) -> bool {
        let text: Vec<char> = subject.chars().collect();
        // memo[p * (n + 1) + t]: does pieces[p..] match text[t..]?
        let n = text.len();
        let mut memo: Vec<Option<bool>> = vec![None; (self.pieces.len() + 1) * (n + 1)];
        self.match_from(0, 0, &text, &mut memo)
    }

    fn match_from(&self, p: usize, t: usize, text: &[char], memo: &mut [Option<bool>]) -> bool {
        let n = text.len();
        let key = p * (n + 1) + t;
        if let Some(v) = memo[key] {
            return v;
        }
        let result = match self.pieces.get(p) {
            None => t == n,
            Some((Atom::Dirs, _)) => {
                self.match_from(p + 1, t, text, memo)
                    || (t + 1..n)
                        .any(|j| text[j] == '/' && self.match_from(p + 1, j + 1, text, memo))
            }
            Some((atom, Rep::One)) => {
                t < n && accepts(atom, text[t]) && self.match_from(p + 1, t + 1, text, memo)
            }
            Some((atom, Rep::Optional)) => {
                self.match_from(p + 1, t, text, memo)
                    || (t < n
                        && accepts(atom, text[t])
                        && self.match_from(p + 1, t + 1, text, memo))
            }
            Some((atom, Rep::Many)) => {
                self.match_from(p + 1, t, text, memo)
                    || (t < n && accepts(atom, text[t]) && self.match_from(p, t + 1, text, memo))
            }
        };
        memo[key] = Some(result);
        result
    }
}

fn accepts(atom: &Atom, c: char) -> bool {
    match atom {
        Atom::Char(x) => *x == c,
        Atom::Class(set) => set.iter().any(|&(lo, hi)| lo <= c && c <= hi),
        Atom::NotSlash => c != '/',
        Atom::Any => true,
        Atom::Dirs => false,
    }
}
