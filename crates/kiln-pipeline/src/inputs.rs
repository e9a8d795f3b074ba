//! `workflow_dispatch` inputs: raw `key=value` strings checked against the
//! declared inputs and turned into typed values (the `inputs` context).
//!
//! Shared by `kiln exec --input` and `kiln trigger --input`, so both refuse
//! the same bad values with the same words.

use kiln_model::Value;
use kiln_model::workflow::{Dispatch, InputKind};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("`{0}` is not KEY=VALUE")]
    Syntax(String),
    #[error("flag `{0}`: a flag name uses letters, digits, `-` and `_`")]
    BadFlag(String),
    #[error("unknown input `{name}`; this workflow declares {declared}")]
    Unknown { name: String, declared: String },
    #[error("input `{name}` is a boolean: expected true or false, got `{value}`")]
    NotBoolean { name: String, value: String },
    #[error("input `{name}` is a number: `{value}` is not a number")]
    NotNumber { name: String, value: String },
    #[error("input `{name}` must be one of {options}, got `{value}`")]
    NotAChoice {
        name: String,
        value: String,
        options: String,
    },
    #[error("input `{name}` is required and has no default: pass --input {name}=VALUE")]
    Missing { name: String },
}

/// `NAME` and `NAME=VALUE` flags as the `kiln.flags` object (`true` for a
/// bare name). Shared by `kiln exec --flag` and triggers.
pub fn flags(raw: &[String]) -> Result<Value, InputError> {
    let mut out = BTreeMap::new();
    for f in raw {
        let (k, v) = match f.split_once('=') {
            Some((k, v)) => (k, Value::str(v)),
            None => (f.as_str(), Value::Bool(true)),
        };
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(InputError::BadFlag(f.clone()));
        }
        out.insert(k.to_owned(), v);
    }
    Ok(Value::Object(out))
}

/// Split `KEY=VALUE` arguments.
pub fn parse_pairs(raw: &[String]) -> Result<Vec<(String, String)>, InputError> {
    raw.iter()
        .map(|r| match r.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            Some(_) | None => Err(InputError::Syntax(r.clone())),
        })
        .collect()
}

/// The `inputs` context for a dispatch with `given` values.
pub fn resolve(dispatch: &Dispatch, given: &[(String, String)]) -> Result<Value, InputError> {
    let mut out = BTreeMap::new();
    for (name, raw) in given {
        let Some(decl) = dispatch.inputs.iter().find(|i| &i.name == name) else {
            let declared = if dispatch.inputs.is_empty() {
                "no inputs".to_owned()
            } else {
                dispatch
                    .inputs
                    .iter()
                    .map(|i| format!("`{}`", i.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(InputError::Unknown {
                name: name.clone(),
                declared,
            });
        };
        let value = match &decl.kind {
            InputKind::String | InputKind::Environment => Value::String(raw.clone()),
            InputKind::Boolean => match raw.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => {
                    return Err(InputError::NotBoolean {
                        name: name.clone(),
                        value: raw.clone(),
                    });
                }
            },
            InputKind::Number => match raw.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Value::Number(n),
                Ok(_) | Err(_) => {
                    return Err(InputError::NotNumber {
                        name: name.clone(),
                        value: raw.clone(),
                    });
                }
            },
            InputKind::Choice(options) => {
                if !options.iter().any(|o| o == raw) {
                    return Err(InputError::NotAChoice {
                        name: name.clone(),
                        value: raw.clone(),
                        options: options
                            .iter()
                            .map(|o| format!("`{o}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                Value::String(raw.clone())
            }
        };
        out.insert(name.clone(), value);
    }
    for decl in &dispatch.inputs {
        if out.contains_key(&decl.name) {
            continue;
        }
        match &decl.default {
            Some(d) => {
                out.insert(decl.name.clone(), d.clone());
            }
            None if decl.required => {
                return Err(InputError::Missing {
                    name: decl.name.clone(),
                });
            }
            None => {
                let empty = match decl.kind {
                    InputKind::Boolean => Value::Bool(false),
                    InputKind::String
                    | InputKind::Number
                    | InputKind::Choice(_)
                    | InputKind::Environment => Value::String(String::new()),
                };
                out.insert(decl.name.clone(), empty);
            }
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_model::workflow::{DispatchInput, Loc};

    fn input(name: &str, kind: InputKind, required: bool, default: Option<Value>) -> DispatchInput {
        DispatchInput {
            name: name.into(),
            description: None,
            required,
            default,
            kind,
            loc: Loc::default(),
        }
    }

    fn dispatch() -> Dispatch {
        Dispatch {
            inputs: vec![
                input("level", InputKind::Number, false, Some(Value::Number(1.0))),
                input("dry", InputKind::Boolean, false, None),
                input(
                    "env",
                    InputKind::Choice(vec!["staging".into(), "prod".into()]),
                    true,
                    None,
                ),
                input("note", InputKind::String, false, Some(Value::str("hi"))),
            ],
        }
    }

    fn pairs(raw: &[&str]) -> Vec<(String, String)> {
        parse_pairs(&raw.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn typed_values_and_defaults() {
        let v = resolve(&dispatch(), &pairs(&["level=3", "dry=TRUE", "env=prod"])).unwrap();
        assert_eq!(v.get_ci("level"), Some(&Value::Number(3.0)));
        assert_eq!(v.get_ci("dry"), Some(&Value::Bool(true)));
        assert_eq!(v.get_ci("env"), Some(&Value::str("prod")));
        assert_eq!(v.get_ci("note"), Some(&Value::str("hi")));
    }

    #[test]
    fn bad_values_are_explained() {
        let d = dispatch();
        let e = resolve(&d, &pairs(&["level=high", "env=prod"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `level` is a number: `high` is not a number"
        );
        let e = resolve(&d, &pairs(&["dry=yes", "env=prod"])).unwrap_err();
        assert!(matches!(e, InputError::NotBoolean { .. }));
        let e = resolve(&d, &pairs(&["env=dev"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `env` must be one of `staging`, `prod`, got `dev`"
        );
        let e = resolve(&d, &pairs(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `env` is required and has no default: pass --input env=VALUE"
        );
        let e = resolve(&d, &pairs(&["colour=red", "env=prod"])).unwrap_err();
        assert!(
            e.to_string()
                .contains("declares `level`, `dry`, `env`, `note`"),
            "{e}"
        );
        assert!(matches!(
            parse_pairs(&["novalue".into()]),
            Err(InputError::Syntax(_))
        ));
    }
}
