//! Evaluation of a syntax tree against a [`Context`].
//!
//! Values read from contexts are borrowed, not cloned, until the end: a
//! `github.event.pull_request.title` lookup copies one string, not the event.
//! Borrowing also gives arrays and objects the identity that GitHub's
//! equality uses (`github.event == github.event` is true, two `fromJSON('[]')`
//! are not equal).
//!
//! An object filter (`.*`) yields a *filtered array*: later `.name`, `[i]`
//! and `.*` apply to each of its items rather than to the array itself, so
//! `needs.*.result` is the list of every needed job's result. It becomes a
//! plain array when passed to a function or returned.

use std::borrow::Cow;

use kiln_model::Value;

use super::EvalError;
use super::ast::{CmpOp, Index, Node};
use super::coerce::{self, Operand};
use super::{Context, functions};

/// An intermediate result.
#[derive(Clone, Debug)]
pub(crate) enum Val<'c> {
    /// Part of a context value.
    Ref(&'c Value),
    /// Built during evaluation (a literal, a function result).
    Owned(Value),
    /// The result of an object filter.
    Filtered(Vec<Cow<'c, Value>>),
}

impl<'c> Val<'c> {
    pub(crate) fn from_cow(v: Cow<'c, Value>) -> Self {
        match v {
            Cow::Borrowed(r) => Val::Ref(r),
            Cow::Owned(o) => Val::Owned(o),
        }
    }

    /// The plain value, `None` for a filtered array.
    pub(crate) fn value(&self) -> Option<&Value> {
        match self {
            Val::Ref(v) => Some(v),
            Val::Owned(v) => Some(v),
            Val::Filtered(_) => None,
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            Val::Ref(v) => v.clone(),
            Val::Owned(v) => v,
            Val::Filtered(items) => Value::Array(items.into_iter().map(Cow::into_owned).collect()),
        }
    }

    pub(crate) fn is_primitive(&self) -> bool {
        match self.value() {
            Some(Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)) => true,
            Some(Value::Array(_) | Value::Object(_)) | None => false,
        }
    }

    pub(crate) fn truthy(&self) -> bool {
        self.value().is_none_or(coerce::truthy)
    }

    pub(crate) fn to_number(&self) -> f64 {
        self.value().map_or(f64::NAN, coerce::to_number)
    }

    pub(crate) fn to_str(&self) -> Cow<'_, str> {
        match self.value() {
            Some(Value::String(s)) => Cow::Borrowed(s),
            Some(v) => Cow::Owned(coerce::to_string(v)),
            None => Cow::Borrowed("Array"),
        }
    }

    /// The view comparisons work on.
    pub(crate) fn operand(&self) -> Operand<'_> {
        match self {
            Val::Ref(v) => operand_of(v, true),
            Val::Owned(v) => operand_of(v, false),
            Val::Filtered(_) => Operand::Array(None),
        }
    }

    /// The items when this is an array (plain or filtered), borrowed.
    pub(crate) fn array_items(&self) -> Option<Vec<&Value>> {
        match self {
            Val::Filtered(items) => Some(items.iter().map(|c| &**c).collect()),
            Val::Ref(Value::Array(items)) => Some(items.iter().collect()),
            Val::Owned(Value::Array(items)) => Some(items.iter().collect()),
            Val::Ref(_) | Val::Owned(_) => None,
        }
    }
}

/// The comparison view of a plain value; `identity` tells whether the value
/// lives in a context (and so has an address that stays put).
pub(crate) fn operand_of(v: &Value, identity: bool) -> Operand<'_> {
    let id = identity.then_some(std::ptr::from_ref(v) as usize);
    match v {
        Value::Null => Operand::Null,
        Value::Bool(b) => Operand::Bool(*b),
        Value::Number(n) => Operand::Num(*n),
        Value::String(s) => Operand::Str(s),
        Value::Array(_) => Operand::Array(id),
        Value::Object(_) => Operand::Object(id),
    }
}

/// Operand of an item of a filtered array: borrowed items keep their identity.
#[allow(clippy::ptr_arg)] // the Cow variant is the information used here
pub(crate) fn cow_operand<'a>(v: &'a Cow<'_, Value>) -> Operand<'a> {
    match v {
        Cow::Borrowed(r) => operand_of(r, true),
        Cow::Owned(o) => operand_of(o, false),
    }
}

pub(crate) fn eval<'c>(node: &Node, ctx: &'c dyn Context) -> Result<Val<'c>, EvalError> {
    match node {
        Node::Null => Ok(Val::Owned(Value::Null)),
        Node::Bool(b) => Ok(Val::Owned(Value::Bool(*b))),
        Node::Number(n) => Ok(Val::Owned(Value::Number(*n))),
        Node::String(s) => Ok(Val::Owned(Value::String(s.clone()))),
        Node::Context { name, .. } => match ctx.context(name) {
            Some(v) => Ok(Val::Ref(v)),
            None => Err(EvalError {
                message: format!("the `{name}` context is not available here"),
            }),
        },
        Node::Index { target, index } => {
            let target = eval(target, ctx)?;
            eval_index(target, index, ctx)
        }
        Node::Not(inner) => Ok(Val::Owned(Value::Bool(!eval(inner, ctx)?.truthy()))),
        Node::Compare { op, lhs, rhs } => {
            let l = eval(lhs, ctx)?;
            let r = eval(rhs, ctx)?;
            Ok(Val::Owned(Value::Bool(compare(
                *op,
                l.operand(),
                r.operand(),
            ))))
        }
        Node::And(items) => {
            let mut last = Val::Owned(Value::Null);
            for item in items {
                last = eval(item, ctx)?;
                if !last.truthy() {
                    break;
                }
            }
            Ok(last)
        }
        Node::Or(items) => {
            let mut last = Val::Owned(Value::Null);
            for item in items {
                last = eval(item, ctx)?;
                if last.truthy() {
                    break;
                }
            }
            Ok(last)
        }
        Node::Call { func, args, .. } => functions::call(*func, args, ctx),
    }
}

pub(crate) fn compare(op: CmpOp, l: Operand<'_>, r: Operand<'_>) -> bool {
    use std::cmp::Ordering;
    match op {
        CmpOp::Eq => coerce::loose_eq(l, r),
        CmpOp::Ne => !coerce::loose_eq(l, r),
        CmpOp::Lt => coerce::loose_cmp(l, r) == Some(Ordering::Less),
        CmpOp::Gt => coerce::loose_cmp(l, r) == Some(Ordering::Greater),
        CmpOp::Le => coerce::loose_eq(l, r) || coerce::loose_cmp(l, r) == Some(Ordering::Less),
        CmpOp::Ge => coerce::loose_eq(l, r) || coerce::loose_cmp(l, r) == Some(Ordering::Greater),
    }
}

/// What an index resolves to once evaluated.
enum Key {
    Wildcard,
    /// A primitive index: its string form (for objects) and integer form (for arrays).
    Primitive {
        name: String,
        position: Option<usize>,
    },
    /// An array or object used as an index: matches nothing.
    Collection,
}

fn eval_key(index: &Index, ctx: &dyn Context) -> Result<Key, EvalError> {
    Ok(match index {
        Index::Wildcard => Key::Wildcard,
        Index::Property(name) => Key::Primitive {
            position: position(coerce::parse_number(name)),
            name: name.clone(),
        },
        Index::Expr(e) => {
            let v = eval(e, ctx)?;
            if v.is_primitive() {
                Key::Primitive {
                    position: position(v.to_number()),
                    name: v.to_str().into_owned(),
                }
            } else {
                Key::Collection
            }
        }
    })
}

/// An array position from a number as GitHub takes it: floored, and only
/// when non-negative and within 32-bit range.
fn position(n: f64) -> Option<usize> {
    if n.is_nan() || n < 0.0 {
        return None;
    }
    let n = n.floor();
    if n > f64::from(i32::MAX) {
        return None;
    }
    // In 0..=i32::MAX after the checks above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(n as usize)
}

fn is_collection(v: &Value) -> bool {
    matches!(v, Value::Array(_) | Value::Object(_))
}

fn eval_index<'c>(target: Val<'c>, index: &Index, ctx: &dyn Context) -> Result<Val<'c>, EvalError> {
    match target {
        Val::Filtered(items) => {
            let key = eval_key(index, ctx)?;
            let mut out = Vec::new();
            for item in items {
                out.extend(select(item, &key));
            }
            Ok(Val::Filtered(out))
        }
        Val::Ref(v) if is_collection(v) => {
            let key = eval_key(index, ctx)?;
            Ok(apply(Cow::Borrowed(v), &key))
        }
        Val::Owned(v) if is_collection(&v) => {
            let key = eval_key(index, ctx)?;
            Ok(apply(Cow::Owned(v), &key))
        }
        // Not a collection: the index is not even evaluated.
        Val::Ref(_) | Val::Owned(_) => Ok(match index {
            Index::Wildcard => Val::Filtered(Vec::new()),
            Index::Property(_) | Index::Expr(_) => Val::Owned(Value::Null),
        }),
    }
}

/// Index applied to a plain collection.
fn apply<'c>(v: Cow<'c, Value>, key: &Key) -> Val<'c> {
    match key {
        Key::Wildcard => Val::Filtered(select(v, key)),
        Key::Primitive { .. } | Key::Collection => select(v, key)
            .into_iter()
            .next()
            .map_or(Val::Owned(Value::Null), Val::from_cow),
    }
}

/// The children of `v` that `key` selects (all of them for a wildcard, at
/// most one otherwise; none when `v` is not a collection).
fn select<'c>(v: Cow<'c, Value>, key: &Key) -> Vec<Cow<'c, Value>> {
    match (v, key) {
        (_, Key::Collection) => Vec::new(),
        (Cow::Borrowed(v), Key::Wildcard) => match v {
            Value::Array(items) => items.iter().map(Cow::Borrowed).collect(),
            Value::Object(map) => map.values().map(Cow::Borrowed).collect(),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Vec::new(),
        },
        (Cow::Owned(v), Key::Wildcard) => match v {
            Value::Array(items) => items.into_iter().map(Cow::Owned).collect(),
            Value::Object(map) => map.into_values().map(Cow::Owned).collect(),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Vec::new(),
        },
        (Cow::Borrowed(v), Key::Primitive { name, position }) => match v {
            Value::Array(items) => position
                .and_then(|i| items.get(i))
                .map(Cow::Borrowed)
                .into_iter()
                .collect(),
            Value::Object(_) => v.get_ci(name).map(Cow::Borrowed).into_iter().collect(),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Vec::new(),
        },
        (Cow::Owned(v), Key::Primitive { name, position }) => match v {
            Value::Array(mut items) => match position {
                Some(i) if *i < items.len() => vec![Cow::Owned(items.swap_remove(*i))],
                Some(_) | None => Vec::new(),
            },
            Value::Object(mut map) => {
                let found = if map.contains_key(name.as_str()) {
                    Some(name.clone())
                } else {
                    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
                };
                found
                    .and_then(|k| map.remove(&k))
                    .map(Cow::Owned)
                    .into_iter()
                    .collect()
            }
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Vec::new(),
        },
    }
}
