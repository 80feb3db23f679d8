//! What the model needs from MDX expressions: the measures they refer to.

use datakube_mdx::ast::{Expr, IsTarget, Segment};

/// A `[Measures].[Name]` reference: the name and the byte offset of the name segment in the
/// expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MeasureRef {
    pub name: String,
    pub offset: usize,
}

/// Every `[Measures].[Name]` in `expr`, in source order.
pub(crate) fn measure_refs(expr: &Expr) -> Vec<MeasureRef> {
    let mut out = Vec::new();
    walk(expr, &mut out);
    out.sort_by_key(|r| r.offset);
    out
}

fn walk(e: &Expr, out: &mut Vec<MeasureRef>) {
    match e {
        Expr::Identifier(name) => match name.segments.as_slice() {
            [Segment::Name { text: dim, .. }, Segment::Name { text, span, .. }, ..]
                if dim.eq_ignore_ascii_case("Measures") =>
            {
                out.push(MeasureRef {
                    name: text.clone(),
                    offset: span.start,
                });
            }
            _ => {}
        },
        Expr::Literal { .. } | Expr::Parameter { .. } | Expr::Omitted { .. } => {}
        Expr::Unary { expr, .. } | Expr::Nested { expr, .. } | Expr::Alias { expr, .. } => walk(expr, out),
        Expr::Binary { left, right, .. } => {
            walk(left, out);
            walk(right, out);
        }
        Expr::Range { start, end, .. } => {
            walk(start, out);
            walk(end, out);
        }
        Expr::Is { expr, target, .. } => {
            walk(expr, out);
            if let IsTarget::Expr(t) = target {
                walk(t, out);
            }
        }
        Expr::Function { args, .. } => args.iter().for_each(|a| walk(a, out)),
        Expr::Property { object, .. } => walk(object, out),
        Expr::Method { object, args, .. } => {
            walk(object, out);
            args.iter().for_each(|a| walk(a, out));
        }
        Expr::Tuple { items, .. } | Expr::Set { items, .. } => items.iter().for_each(|a| walk(a, out)),
        Expr::Case {
            operand,
            whens,
            else_result,
            ..
        } => {
            if let Some(o) = operand {
                walk(o, out);
            }
            for w in whens {
                walk(&w.condition, out);
                walk(&w.result, out);
            }
            if let Some(e) = else_result {
                walk(e, out);
            }
        }
    }
}
