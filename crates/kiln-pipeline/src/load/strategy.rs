//! `strategy:` — the matrix, fail-fast and max-parallel. Literal matrices are
//! expanded here so that their errors (too many combinations, an exclude key
//! that is no axis, …) are reported at load time.

use super::cx::Cx;
use super::node::{self, At};
use crate::matrix;
use kiln_model::Value;
use kiln_model::workflow::{Dyn, Matrix, MatrixSpec, Strategy};
use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};

pub(crate) fn strategy(cx: &mut Cx<'_>, n: &Node) -> Strategy {
    let mut s = Strategy::default();
    let Some(Some(map)) = cx.opt_mapping(n, "`strategy`") else {
        return s;
    };
    for (k, v) in map.iter() {
        match k.as_str() {
            "matrix" => s.matrix = self::matrix(cx, v),
            "fail-fast" => s.fail_fast = cx.dyn_bool(v, "`fail-fast`").unwrap_or(Dyn::Lit(true)),
            "max-parallel" => {
                s.max_parallel = cx.dyn_number(v, "`max-parallel`");
                if let Some(Dyn::Lit(x)) = s.max_parallel
                    && (x < 1.0 || x.fract() != 0.0)
                {
                    let at = cx.at(v);
                    cx.error(at, "`max-parallel` must be a positive whole number");
                }
            }
            _ => {
                cx.unknown_key(k, "`strategy`", &["matrix", "fail-fast", "max-parallel"]);
            }
        }
    }
    s
}

fn matrix(cx: &mut Cx<'_>, n: &Node) -> Option<Matrix> {
    if let Some(t) = cx.expression(n) {
        return Some(Matrix::Dynamic(t));
    }
    let map = cx.mapping(n, "`matrix`")?;
    let mut spec = MatrixSpec::default();
    let mut well_formed = true;
    for (k, v) in map.iter() {
        match k.as_str() {
            "include" => spec.include = entries(cx, v, "`include`"),
            "exclude" => spec.exclude = entries(cx, v, "`exclude`"),
            axis => {
                if let Some(t) = cx.expression(v) {
                    spec.axes.push((axis.to_owned(), Dyn::Expr(t)));
                } else if let Some(items) = cx.sequence(v, &format!("matrix axis `{axis}`")) {
                    let values = items.iter().map(|i| value(cx, i)).collect();
                    spec.axes.push((axis.to_owned(), Dyn::Lit(values)));
                } else {
                    well_formed = false;
                }
            }
        }
    }
    // Expand only what was read without errors, so one mistake is not
    // reported twice.
    if well_formed {
        check_literal(cx, map, &spec);
    }
    Some(Matrix::Static(spec))
}

fn entries(cx: &mut Cx<'_>, n: &Node, what: &str) -> Dyn<Vec<Value>> {
    if let Some(t) = cx.expression(n) {
        return Dyn::Expr(t);
    }
    let Some(items) = cx.sequence(n, what) else {
        return Dyn::Lit(Vec::new());
    };
    let mut out = Vec::new();
    for item in items.iter() {
        if cx
            .mapping(item, &format!("an {} entry", what.trim_matches('`')))
            .is_some()
        {
            out.push(value(cx, item));
        }
    }
    Dyn::Lit(out)
}

/// A matrix value, checking the syntax of any `${{ }}` inside it.
fn value(cx: &mut Cx<'_>, n: &Node) -> Value {
    match n {
        Node::Scalar(s) => {
            if s.as_str().contains("${{") {
                cx.template_of(s);
            }
        }
        Node::Sequence(items) => items.iter().for_each(|i| {
            value(cx, i);
        }),
        Node::Mapping(m) => m.values().for_each(|i| {
            value(cx, i);
        }),
    }
    node::to_value(&cx.src, n)
}

fn check_literal(cx: &mut Cx<'_>, map: &MarkedMappingNode, spec: &MatrixSpec) {
    let mut axes = Vec::new();
    for (name, values) in &spec.axes {
        match values {
            Dyn::Lit(v) => axes.push((name.clone(), v.clone())),
            Dyn::Expr(_) => return,
        }
    }
    let (Dyn::Lit(include), Dyn::Lit(exclude)) = (&spec.include, &spec.exclude) else {
        return;
    };
    let Err(e) = matrix::expand(&axes, include, exclude) else {
        return;
    };
    // Point at the offending key where there is one, else at `matrix`'s first key.
    let key = match &e {
        matrix::MatrixError::UnknownExcludeKey { key } => exclude_key(map, key),
        matrix::MatrixError::EmptyAxis { axis } => map.keys().find(|k| k.as_str() == axis),
        _ => None,
    };
    let at = match key {
        Some(k) => cx.at_scalar(k),
        None => At {
            loc: map
                .keys()
                .next()
                .map_or(node::loc(map.span()), |k| node::loc(k.span())),
            len: 1,
        },
    };
    cx.error(at, e.to_string());
}

fn exclude_key<'n>(map: &'n MarkedMappingNode, key: &str) -> Option<&'n MarkedScalarNode> {
    map.get_sequence("exclude")?
        .iter()
        .filter_map(|entry| entry.as_mapping())
        .find_map(|entry| entry.keys().find(|k| k.as_str() == key))
}
