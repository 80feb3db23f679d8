//! Property: a random AST prints as MDX that parses back to the same AST.
//!
//! The generator builds trees the parser can produce (e.g. no one-item tuples, which are
//! parenthesised expressions; unquoted names only where they stay names). The printer adds
//! parentheses where precedence needs them, so the parsed tree is compared after removing
//! [`Expr::Nested`] nodes (the generator makes none) and spans. The printed text must also be
//! a fixed point: printing the parsed tree gives the same text.

mod common;

use common::{denest, denest_statement};
use datakube_mdx::ast::*;
use datakube_mdx::{format_statements, parse_expression, parse_statement, parse_statements};
use proptest::collection::vec;
use proptest::prelude::*;

const S: Span = Span::EMPTY;

/// Unquoted names that are neither keywords nor dot properties.
const PLAIN: &[&str] = &[
    "a", "Sales", "Store", "x1", "Kommune", "Bærum", "_y$", "Measures", "Time",
];
/// Flags written as bare identifiers.
const FLAGS: &[&str] = &[
    "SELF_AND_BEFORE",
    "BDESC",
    "ALL",
    "EXCLUDEEMPTY",
    "INCLUDE_CALC_MEMBERS",
    "RECURSIVE",
    "POST",
    "CONSTRAINED",
];
const DOT_PROPERTIES: &[&str] = &[
    "Children",
    "CurrentMember",
    "Parent",
    "Name",
    "Members",
    "Count",
    "UniqueName",
];
const FUNCTIONS: &[&str] = &[
    "Crossjoin",
    "IIF",
    "Sum",
    "TopCount",
    "Filter",
    "Descendants",
    "Dimensions",
    "Order",
];
const METHODS: &[&str] = &["Item", "Lag", "Lead", "Properties"];
const NUMBERS: &[&str] = &["0", "1", "42", "2.5", "1.5E3", ".5", "1e-3", "007"];
const PROPERTY_NAMES: &[&str] = &[
    "FORMAT_STRING",
    "SOLVE_ORDER",
    "VISIBLE",
    "CAPTION",
    "NON_EMPTY_BEHAVIOR",
];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(list).prop_map(String::from)
}

/// Arbitrary text for brackets, keys and strings (including `]`, quotes and non-ASCII).
fn text() -> impl Strategy<Value = String> {
    let chars = proptest::sample::select(vec!['a', 'Z', ' ', ']', '[', '\'', '"', 'ø', '&', '.', '1', '\n', ';']);
    prop_oneof![
        vec(chars, 0..6).prop_map(String::from_iter),
        any::<String>().prop_map(|s| s.chars().take(6).collect())
    ]
}

fn ident() -> impl Strategy<Value = Ident> {
    prop_oneof![pick(PLAIN).prop_map(Ident::new), text().prop_map(Ident::quoted)]
}

fn name_segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        pick(PLAIN).prop_map(|text| Segment::Name {
            text,
            quoted: false,
            span: S
        }),
        text().prop_map(|text| Segment::Name {
            text,
            quoted: true,
            span: S
        }),
    ]
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        3 => name_segment(),
        1 => text().prop_map(|text| Segment::Key { text, span: S }),
        1 => vec(text(), 2..4).prop_map(|parts| Segment::CompositeKey { parts, span: S }),
    ]
}

fn object_name() -> impl Strategy<Value = ObjectName> {
    (name_segment(), vec(segment(), 0..4)).prop_map(|(first, rest)| {
        let mut segments = vec![first];
        segments.extend(rest);
        ObjectName { segments, span: S }
    })
}

fn single(text: String) -> Expr {
    Expr::Identifier(ObjectName {
        segments: vec![Segment::Name {
            text,
            quoted: false,
            span: S,
        }],
        span: S,
    })
}

fn lit(value: Literal) -> Expr {
    Expr::Literal { value, span: S }
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        4 => object_name().prop_map(Expr::Identifier),
        1 => pick(FLAGS).prop_map(single),
        2 => pick(NUMBERS).prop_map(|n| lit(Literal::Number(n))),
        1 => text().prop_map(|s| lit(Literal::String(s))),
        1 => Just(lit(Literal::Null)),
        1 => pick(PLAIN).prop_map(|name| Expr::Parameter { name, span: S }),
    ]
}

fn unary_op() -> impl Strategy<Value = UnaryOp> {
    proptest::sample::select(vec![UnaryOp::Minus, UnaryOp::Plus, UnaryOp::Not, UnaryOp::Existing])
}

fn binary_op() -> impl Strategy<Value = BinaryOp> {
    use BinaryOp::*;
    proptest::sample::select(vec![
        Add, Sub, Mul, Div, Pow, Eq, NotEq, Lt, LtEq, Gt, GtEq, And, Or, Xor, Concat,
    ])
}

/// Function arguments: any may be omitted, except a single one (`F()` has no arguments).
fn args(inner: BoxedStrategy<Expr>) -> impl Strategy<Value = Vec<Expr>> {
    let arg = prop_oneof![4 => inner, 1 => Just(Expr::Omitted { span: S })];
    vec(arg, 0..4).prop_map(|mut a| {
        if a.len() == 1 && matches!(a[0], Expr::Omitted { .. }) {
            a.clear();
        }
        a
    })
}

fn expr() -> BoxedStrategy<Expr> {
    leaf()
        .prop_recursive(5, 64, 4, |inner| {
            let b = |e: Expr| Box::new(e);
            prop_oneof![
                1 => (unary_op(), inner.clone()).prop_map(move |(op, e)| Expr::Unary {
                    op,
                    expr: b(e),
                    span: S
                }),
                3 => (inner.clone(), binary_op(), inner.clone()).prop_map(move |(l, op, r)| Expr::Binary {
                    left: b(l),
                    op,
                    right: b(r),
                    span: S
                }),
                1 => (inner.clone(), inner.clone()).prop_map(move |(l, r)| Expr::Range {
                    start: b(l),
                    end: b(r),
                    span: S
                }),
                1 => (
                    inner.clone(),
                    prop_oneof![
                        Just(IsTarget::Null),
                        Just(IsTarget::Empty),
                        // `IS NULL` is the Null target, never an expression target.
                        inner
                            .clone()
                            .prop_filter("NULL target", |e| !matches!(e, Expr::Literal { value: Literal::Null, .. }))
                            .prop_map(move |e| IsTarget::Expr(b(e))),
                    ]
                )
                    .prop_map(move |(e, target)| Expr::Is {
                        expr: b(e),
                        target,
                        span: S
                    }),
                1 => (inner.clone(), ident()).prop_map(move |(e, alias)| Expr::Alias {
                    expr: b(e),
                    alias,
                    span: S
                }),
                2 => (pick(FUNCTIONS), args(inner.clone())).prop_map(|(name, args)| Expr::Function {
                    name: Ident::new(name),
                    args,
                    span: S
                }),
                1 => (inner.clone(), pick(DOT_PROPERTIES)).prop_map(move |(e, name)| Expr::Property {
                    object: b(e),
                    name: Ident::new(name),
                    span: S
                }),
                1 => (inner.clone(), pick(METHODS), args(inner.clone())).prop_map(move |(e, name, args)| Expr::Method {
                    object: b(e),
                    name: Ident::new(name),
                    args,
                    span: S
                }),
                1 => vec(inner.clone(), 2..4).prop_map(|items| Expr::Tuple { items, span: S }),
                2 => vec(inner.clone(), 0..4).prop_map(|items| Expr::Set { items, span: S }),
                1 => (
                    proptest::option::of(inner.clone()),
                    vec((inner.clone(), inner.clone()), 1..3),
                    proptest::option::of(inner.clone())
                )
                    .prop_map(move |(operand, whens, else_result)| Expr::Case {
                        operand: operand.map(b),
                        whens: whens
                            .into_iter()
                            .map(|(condition, result)| CaseWhen {
                                condition,
                                result,
                                span: S
                            })
                            .collect(),
                        else_result: else_result.map(b),
                        span: S
                    }),
            ]
        })
        .boxed()
}

fn properties() -> impl Strategy<Value = Vec<DefinitionProperty>> {
    let name = prop_oneof![
        pick(PROPERTY_NAMES).prop_map(Ident::new),
        text().prop_map(Ident::quoted)
    ];
    vec(
        (name, expr()).prop_map(|(name, value)| DefinitionProperty { name, value, span: S }),
        0..3,
    )
}

fn definition() -> impl Strategy<Value = Definition> {
    prop_oneof![
        (object_name(), any::<bool>(), expr(), any::<bool>(), properties()).prop_map(
            |(name, hidden, expr, expr_quoted, properties)| Definition::Member(MemberDefinition {
                name,
                hidden,
                expr,
                expr_quoted,
                properties,
                span: S
            })
        ),
        (
            object_name(),
            any::<bool>(),
            proptest::option::of(proptest::sample::select(vec![SetKind::Static, SetKind::Dynamic])),
            expr(),
            any::<bool>(),
            properties()
        )
            .prop_map(
                |(name, hidden, kind, expr, expr_quoted, properties)| Definition::Set(SetDefinition {
                    name,
                    hidden,
                    kind,
                    expr,
                    expr_quoted,
                    properties,
                    span: S
                })
            ),
        (
            object_name(),
            expr(),
            any::<bool>(),
            expr(),
            any::<bool>(),
            properties()
        )
            .prop_map(|(name, for_expr, for_quoted, expr, expr_quoted, properties)| {
                Definition::CellCalculation(CellCalculationDefinition {
                    name,
                    for_expr,
                    for_quoted,
                    expr,
                    expr_quoted,
                    properties,
                    span: S,
                })
            }),
    ]
}

fn axis_name() -> impl Strategy<Value = AxisName> {
    prop_oneof![
        proptest::sample::select(vec![
            AxisName::Columns,
            AxisName::Rows,
            AxisName::Pages,
            AxisName::Chapters,
            AxisName::Sections
        ]),
        (0u32..=127).prop_map(AxisName::Number),
    ]
}

fn axis() -> impl Strategy<Value = Axis> {
    (any::<bool>(), expr(), vec(object_name(), 0..3), axis_name()).prop_map(
        |(non_empty, expr, dimension_properties, name)| Axis {
            non_empty,
            expr,
            dimension_properties,
            name,
            span: S,
        },
    )
}

fn select() -> BoxedStrategy<Select> {
    let cube = object_name().prop_map(CubeSource::Cube);
    let from = cube.prop_recursive(2, 3, 1, |inner| {
        (select_with(inner.boxed()), any::<bool>()).prop_map(|(select, non_visual)| CubeSource::Subselect {
            select: Box::new(select),
            non_visual,
            span: S,
        })
    });
    select_with(from.boxed()).boxed()
}

fn select_with(from: BoxedStrategy<CubeSource>) -> impl Strategy<Value = Select> {
    (
        vec(definition(), 0..3),
        any::<bool>(),
        vec(axis(), 0..4),
        from,
        proptest::option::of(expr()),
        vec(ident(), 0..3),
    )
        .prop_map(|(with, star, axes, from, where_clause, cell_properties)| Select {
            with,
            star: star && axes.is_empty(),
            axes,
            from,
            where_clause,
            cell_properties,
            span: S,
        })
}

fn statement() -> impl Strategy<Value = Statement> {
    prop_oneof![
        4 => select().prop_map(|s| Statement::Select(Box::new(s))),
        1 => (
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            select(),
            vec(expr(), 0..3)
        )
            .prop_map(|(max_rows, first_rowset, select, returns)| Statement::Drillthrough(Box::new(
                Drillthrough {
                    max_rows,
                    first_rowset,
                    select,
                    returns,
                    span: S
                }
            ))),
        1 => script_statement(),
    ]
}

/// Statements that may share a command.
fn script_statement() -> impl Strategy<Value = Statement> {
    prop_oneof![
        (any::<bool>(), vec(definition(), 1..3)).prop_map(|(session, definitions)| Statement::Create(Box::new(
            Create {
                session,
                definitions,
                span: S
            }
        ))),
        (
            proptest::sample::select(vec![DropKind::Member, DropKind::Set]),
            vec(object_name(), 1..3)
        )
            .prop_map(|(kind, names)| Statement::Drop(Box::new(Drop { kind, names, span: S }))),
        object_name().prop_map(|cube| Statement::Refresh(Box::new(Refresh { cube, span: S }))),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES=100000 for a longer run.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_expressions_round_trip(e in expr()) {
        let printed = e.to_string();
        let mut parsed = parse_expression(&printed).map_err(|err| TestCaseError::fail(format!("{err}\n{printed}\n{e:?}")))?;
        prop_assert_eq!(parsed.to_string(), printed.clone(), "printing the parsed tree is not a fixed point");
        parsed.strip_spans();
        denest(&mut parsed);
        prop_assert_eq!(parsed, e, "{}", printed);
    }

    #[test]
    fn random_statements_round_trip(st in statement()) {
        let printed = st.to_string();
        let mut parsed = parse_statement(&printed).map_err(|err| TestCaseError::fail(format!("{err}\n{printed}\n{st:?}")))?;
        prop_assert_eq!(parsed.to_string(), printed.clone(), "printing the parsed tree is not a fixed point");
        parsed.strip_spans();
        denest_statement(&mut parsed);
        prop_assert_eq!(parsed, st, "{}", printed);
    }

    #[test]
    fn random_commands_round_trip(list in vec(script_statement(), 1..4)) {
        let printed = format_statements(&list);
        let mut parsed = parse_statements(&printed).map_err(|err| TestCaseError::fail(format!("{err}\n{printed}")))?;
        parsed.iter_mut().for_each(|st| {
            st.strip_spans();
            denest_statement(st);
        });
        prop_assert_eq!(parsed, list, "{}", printed);
    }
}
