//! The built-in functions: their names, arities and behaviour.
//!
//! Names match case-insensitively (`tojson` is `toJSON`); the arity is checked
//! when parsing so a misspelt or mis-called function is reported at load
//! time, not when the job runs. Arguments are evaluated lazily where GitHub
//! does (`contains` skips its second argument when the first is neither a
//! primitive nor a non-empty array; `format` evaluates only the arguments it
//! uses), which matters for errors such as an unavailable context.

use kiln_model::Value;

use super::ast::Node;
use super::coerce;
use super::eval::{Val, cow_operand, eval, operand_of};
use super::format::{self, Segment};
use super::json;
use super::{Context, EvalError, StatusCheck};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Contains,
    StartsWith,
    EndsWith,
    Format,
    Join,
    ToJson,
    FromJson,
    HashFiles,
    Success,
    Failure,
    Always,
    Cancelled,
}

pub(crate) const ALL: &[Func] = &[
    Func::Contains,
    Func::StartsWith,
    Func::EndsWith,
    Func::Format,
    Func::Join,
    Func::ToJson,
    Func::FromJson,
    Func::HashFiles,
    Func::Success,
    Func::Failure,
    Func::Always,
    Func::Cancelled,
];

impl Func {
    /// The canonical spelling.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Func::Contains => "contains",
            Func::StartsWith => "startsWith",
            Func::EndsWith => "endsWith",
            Func::Format => "format",
            Func::Join => "join",
            Func::ToJson => "toJSON",
            Func::FromJson => "fromJSON",
            Func::HashFiles => "hashFiles",
            Func::Success => "success",
            Func::Failure => "failure",
            Func::Always => "always",
            Func::Cancelled => "cancelled",
        }
    }

    /// Minimum and maximum number of arguments (GitHub's limits).
    pub(crate) fn arity(self) -> (usize, usize) {
        match self {
            Func::Contains | Func::StartsWith | Func::EndsWith => (2, 2),
            Func::Format | Func::HashFiles => (1, 255),
            Func::Join => (1, 2),
            Func::ToJson | Func::FromJson => (1, 1),
            Func::Success | Func::Failure | Func::Always | Func::Cancelled => (0, 0),
        }
    }

    pub(crate) fn is_status(self) -> bool {
        match self {
            Func::Success | Func::Failure | Func::Always | Func::Cancelled => true,
            Func::Contains
            | Func::StartsWith
            | Func::EndsWith
            | Func::Format
            | Func::Join
            | Func::ToJson
            | Func::FromJson
            | Func::HashFiles => false,
        }
    }

    pub(crate) fn lookup(name: &str) -> Option<Func> {
        ALL.iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The closest known name to a misspelt one, if any is close.
    pub(crate) fn suggest(name: &str) -> Option<Func> {
        let name = name.to_ascii_lowercase();
        ALL.iter()
            .map(|f| {
                (
                    strsim::jaro_winkler(&name, &f.name().to_ascii_lowercase()),
                    *f,
                )
            })
            .filter(|(score, _)| *score >= 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, f)| f)
    }

    /// "2 arguments", "1 or 2 arguments", "at least 1 argument".
    pub(crate) fn arity_text(self) -> String {
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        match self.arity() {
            (0, 0) => "no arguments".to_owned(),
            (min, max) if min == max => format!("{min} {}", plural(min)),
            (min, 255) => format!("at least {min} {}", plural(min)),
            (min, max) => format!("{min} to {max} arguments"),
        }
    }
}

fn bool_val<'c>(b: bool) -> Val<'c> {
    Val::Owned(Value::Bool(b))
}

fn string_val<'c>(s: String) -> Val<'c> {
    Val::Owned(Value::String(s))
}

/// Evaluates a call; `args` has passed the arity check.
pub(crate) fn call<'c>(
    func: Func,
    args: &[Node],
    ctx: &'c dyn Context,
) -> Result<Val<'c>, EvalError> {
    let arg = |i: usize| -> Result<Val<'c>, EvalError> {
        match args.get(i) {
            Some(node) => eval(node, ctx),
            None => Ok(Val::Owned(Value::Null)),
        }
    };
    match func {
        Func::Contains => {
            let haystack = arg(0)?;
            if haystack.is_primitive() {
                let needle = arg(1)?;
                let found = needle.is_primitive()
                    && coerce::contains_ignore_case(&haystack.to_str(), &needle.to_str());
                return Ok(bool_val(found));
            }
            let found = match &haystack {
                Val::Filtered(items) if !items.is_empty() => {
                    let needle = arg(1)?;
                    items
                        .iter()
                        .any(|item| coerce::loose_eq(needle.operand(), cow_operand(item)))
                }
                Val::Ref(Value::Array(items)) if !items.is_empty() => {
                    let needle = arg(1)?;
                    items
                        .iter()
                        .any(|item| coerce::loose_eq(needle.operand(), operand_of(item, true)))
                }
                Val::Owned(Value::Array(items)) if !items.is_empty() => {
                    let needle = arg(1)?;
                    items
                        .iter()
                        .any(|item| coerce::loose_eq(needle.operand(), operand_of(item, false)))
                }
                Val::Filtered(_) | Val::Ref(_) | Val::Owned(_) => false,
            };
            Ok(bool_val(found))
        }
        Func::StartsWith | Func::EndsWith => {
            let s = arg(0)?;
            if !s.is_primitive() {
                return Ok(bool_val(false));
            }
            let affix = arg(1)?;
            if !affix.is_primitive() {
                return Ok(bool_val(false));
            }
            let (s, affix) = (s.to_str(), affix.to_str());
            Ok(bool_val(if func == Func::StartsWith {
                coerce::starts_with_ignore_case(&s, &affix)
            } else {
                coerce::ends_with_ignore_case(&s, &affix)
            }))
        }
        Func::Format => {
            let pattern = arg(0)?.to_str().into_owned();
            let segments = format::parse(&pattern, args.len() - 1).map_err(|e| EvalError {
                message: format!("invalid format string {}: {e}", super::ast::quote(&pattern)),
            })?;
            let mut cache: Vec<Option<String>> = vec![None; args.len() - 1];
            let mut out = String::new();
            for segment in segments {
                match segment {
                    Segment::Text(t) => out.push_str(&t),
                    Segment::Arg(i) => {
                        if cache[i].is_none() {
                            cache[i] = Some(arg(i + 1)?.to_str().into_owned());
                        }
                        out.push_str(cache[i].as_deref().unwrap_or_default());
                    }
                }
            }
            Ok(string_val(out))
        }
        Func::Join => {
            let items = arg(0)?;
            match items.array_items() {
                Some(list) if !list.is_empty() => {
                    let separator = if args.len() > 1 && list.len() > 1 {
                        let sep = arg(1)?;
                        if sep.is_primitive() {
                            sep.to_str().into_owned()
                        } else {
                            ",".to_owned()
                        }
                    } else {
                        ",".to_owned()
                    };
                    let parts: Vec<String> = list.iter().map(|v| coerce::to_string(v)).collect();
                    Ok(string_val(parts.join(&separator)))
                }
                Some(_) | None if items.is_primitive() => {
                    Ok(string_val(items.to_str().into_owned()))
                }
                Some(_) | None => Ok(string_val(String::new())),
            }
        }
        Func::ToJson => {
            let v = arg(0)?;
            Ok(string_val(match &v {
                Val::Filtered(items) => json::to_json_items(items.iter().map(|c| &**c)),
                Val::Ref(_) | Val::Owned(_) => json::to_json(v.value().unwrap_or(&Value::Null)),
            }))
        }
        Func::FromJson => {
            let text = arg(0)?.to_str().into_owned();
            json::from_json(&text)
                .map(Val::Owned)
                .map_err(|e| EvalError {
                    message: format!("fromJSON could not parse {}: {e}", super::ast::quote(&text)),
                })
        }
        Func::HashFiles => {
            let mut patterns = Vec::with_capacity(args.len());
            for i in 0..args.len() {
                patterns.push(arg(i)?.to_str().into_owned());
            }
            ctx.hash_files(&patterns)
                .map(string_val)
                .map_err(|e| EvalError {
                    message: format!("hashFiles failed: {e}"),
                })
        }
        Func::Always => Ok(bool_val(true)),
        Func::Success => Ok(bool_val(ctx.status() == StatusCheck::Success)),
        Func::Failure => Ok(bool_val(ctx.status() == StatusCheck::Failure)),
        Func::Cancelled => Ok(bool_val(ctx.status() == StatusCheck::Cancelled)),
    }
}
