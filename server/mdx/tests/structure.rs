//! The shape of parsed trees: operator precedence, dot syntax, names, statements.

use datakube_mdx::ast::*;
use datakube_mdx::{parse_expression, parse_statement};

/// Compact S-expression rendering used to assert tree shapes.
fn sx(e: &Expr) -> String {
    let list = |items: &[Expr]| items.iter().map(sx).collect::<Vec<_>>().join(" ");
    match e {
        Expr::Identifier(n) => n.to_string(),
        Expr::Literal { value, .. } => value.to_string(),
        Expr::Parameter { name, .. } => format!("@{name}"),
        Expr::Unary { op, expr, .. } => format!("({op} {})", sx(expr)),
        Expr::Binary { left, op, right, .. } => format!("({op} {} {})", sx(left), sx(right)),
        Expr::Range { start, end, .. } => format!("(: {} {})", sx(start), sx(end)),
        Expr::Is { expr, target, .. } => match target {
            IsTarget::Expr(t) => format!("(IS {} {})", sx(expr), sx(t)),
            other => format!("(IS {} {other})", sx(expr)),
        },
        Expr::Alias { expr, alias, .. } => format!("(AS {} {alias})", sx(expr)),
        Expr::Function { name, args, .. } => format!("{name}[{}]", list(args)),
        Expr::Property { object, name, .. } => format!("(. {} {name})", sx(object)),
        Expr::Method { object, name, args, .. } => format!("(.{name} {} [{}])", sx(object), list(args)),
        Expr::Tuple { items, .. } => format!("(tuple {})", list(items)),
        Expr::Set { items, .. } => format!("{{{}}}", list(items)),
        Expr::Nested { expr, .. } => format!("(paren {})", sx(expr)),
        Expr::Case {
            operand,
            whens,
            else_result,
            ..
        } => {
            let mut s = String::from("(case");
            if let Some(o) = operand {
                s += &format!(" {}", sx(o));
            }
            for w in whens {
                s += &format!(" (when {} {})", sx(&w.condition), sx(&w.result));
            }
            if let Some(e) = else_result {
                s += &format!(" (else {})", sx(e));
            }
            s + ")"
        }
        Expr::Omitted { .. } => "_".into(),
    }
}

fn shape(src: &str) -> String {
    sx(&parse_expression(src).unwrap_or_else(|e| panic!("{e}\n{src}")))
}

#[test]
fn precedence_follows_ssas() {
    let cases = [
        ("a OR b AND c", "(OR a (AND b c))"),
        ("a XOR b OR c", "(OR (XOR a b) c)"),
        ("a OR b XOR c", "(OR a (XOR b c))"),
        ("a AND b XOR c", "(XOR (AND a b) c)"),
        ("NOT a AND b", "(AND (NOT a) b)"),
        ("NOT a = b", "(NOT (= a b))"),
        ("NOT NOT a", "(NOT (NOT a))"),
        ("a = b AND c <> d", "(AND (= a b) (<> c d))"),
        ("a < b + c", "(< a (+ b c))"),
        ("a + b * c", "(+ a (* b c))"),
        ("a - b - c", "(- (- a b) c)"),
        ("a / b * c", "(* (/ a b) c)"),
        ("a * b ^ c", "(* a (^ b c))"),
        ("a ^ b ^ c", "(^ (^ a b) c)"),
        ("-a ^ 2", "(- (^ a 2))"),
        ("-a * b", "(* (- a) b)"),
        ("a * -b", "(* a (- b))"),
        ("a - -b", "(- a (- b))"),
        ("+a", "(+ a)"),
        ("a : b * c", "(* (: a b) c)"),
        ("a * b : c", "(* a (: b c))"),
        ("a : b ^ 2", "(^ (: a b) 2)"),
        ("-a : b", "(- (: a b))"),
        ("a IS NULL", "(IS a NULL)"),
        ("a IS EMPTY", "(IS a EMPTY)"),
        ("NOT a IS EMPTY", "(NOT (IS a EMPTY))"),
        ("a + b IS NULL", "(+ a (IS b NULL))"),
        ("a IS b OR c", "(OR (IS a b) c)"),
        ("[A].CurrentMember IS [A].[All]", "(IS (. [A] CurrentMember) [A].[All])"),
        ("EXISTING a * b", "(EXISTING (* a b))"),
        ("EXISTING a = b", "(= (EXISTING a) b)"),
        ("s AS x", "(AS s x)"),
        ("a + s AS x", "(+ a (AS s x))"),
        ("a : b AS x", "(: a (AS b x))"),
        ("{a} * {b} + {c} - {d}", "(- (+ (* {a} {b}) {c}) {d})"),
    ];
    for (src, want) in cases {
        assert_eq!(shape(src), want, "{src}");
    }
}

#[test]
fn dot_syntax() {
    let cases = [
        ("[Measures].[Unit Sales]", "[Measures].[Unit Sales]"),
        ("Measures.Sales", "Measures.Sales"),
        ("[Time].[1997].Children", "(. [Time].[1997] Children)"),
        ("[Time].[1997].children", "(. [Time].[1997] children)"),
        ("[Time].[1997].[Children]", "[Time].[1997].[Children]"),
        (
            "[Store].CurrentMember.Parent.Name",
            "(. (. (. [Store] CurrentMember) Parent) Name)",
        ),
        ("[Date].[Year].&[2022]", "[Date].[Year].&[2022]"),
        ("[Date].[Year].&2022", "[Date].[Year].&[2022]"),
        ("[Date].[Month].&[2007]&[1]", "[Date].[Month].&[2007]&[1]"),
        ("[Date].[Month].&[2007]&[1].&[x]", "[Date].[Month].&[2007]&[1].&[x]"),
        ("[Time].CurrentMember.Lag(1)", "(.Lag (. [Time] CurrentMember) [1])"),
        (
            "[Store].[USA].Properties(\"Sqft\")",
            "(.Properties [Store].[USA] [\"Sqft\"])",
        ),
        ("[Product].Levels(0).Name", "(. (.Levels [Product] [0]) Name)"),
        ("{a, b}.Item(0).Item(0)", "(.Item (.Item {a b} [0]) [0])"),
        (
            "Ancestor([Store].CurrentMember, [Store].[State]).UniqueName",
            "(. Ancestor[(. [Store] CurrentMember) [Store].[State]] UniqueName)",
        ),
        ("StrToMember(\"x\").[Child]", "(. StrToMember[\"x\"] [Child])"),
        ("Foo()", "Foo[]"),
        (
            "DrilldownLevel({a},,,INCLUDE_CALC_MEMBERS)",
            "DrilldownLevel[{a} _ _ INCLUDE_CALC_MEMBERS]",
        ),
        ("F(,a,)", "F[_ a _]"),
        ("Axis(1)", "Axis[1]"),
        ("[Set].[Member]", "[Set].[Member]"),
        ("[Kommune].[Bærum]", "[Kommune].[Bærum]"),
        ("Kommune.Bærum", "Kommune.Bærum"),
        ("(a, b, c)", "(tuple a b c)"),
        ("(a)", "(paren a)"),
        ("{}", "{}"),
        ("CASE WHEN a THEN 1 ELSE 2 END", "(case (when a 1) (else 2))"),
        (
            "CASE x WHEN 1 THEN 'a' WHEN 2 THEN 'b' END",
            "(case x (when 1 \"a\") (when 2 \"b\"))",
        ),
        ("@Year", "@Year"),
        ("NULL", "NULL"),
    ];
    for (src, want) in cases {
        assert_eq!(shape(src), want, "{src}");
    }
}

#[test]
fn identifiers_keep_quoting_and_unescape_brackets() {
    let Expr::Identifier(name) = parse_expression("[a]]b].c.&[k]]]").unwrap() else {
        panic!()
    };
    let segs: Vec<_> = name
        .segments
        .iter()
        .map(|s| match s {
            Segment::Name { text, quoted, .. } => format!("N({text},{quoted})"),
            Segment::Key { text, .. } => format!("K({text})"),
            Segment::CompositeKey { parts, .. } => format!("C({parts:?})"),
        })
        .collect();
    assert_eq!(segs, ["N(a]b,true)", "N(c,false)", "K(k])"]);
    assert_eq!(name.to_string(), "[a]]b].c.&[k]]]");
}

#[test]
fn literals() {
    let lit = |s: &str| match parse_expression(s).unwrap() {
        Expr::Literal { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(lit("'it''s'"), Literal::String("it's".into()));
    assert_eq!(lit("\"say \"\"hi\"\"\""), Literal::String("say \"hi\"".into()));
    assert_eq!(lit("1.5E+10"), Literal::Number("1.5E+10".into()));
    assert_eq!(lit(".25"), Literal::Number(".25".into()));
    assert_eq!(lit("null"), Literal::Null);
}

#[test]
fn spans_point_into_source() {
    let src = "SELECT\n  {[Measures].[Sales]} ON 0\nFROM [Økonomi]";
    let Statement::Select(sel) = parse_statement(src).unwrap() else {
        panic!()
    };
    let ax = &sel.axes[0];
    assert_eq!(&src[ax.span.start..ax.span.end], "{[Measures].[Sales]} ON 0");
    assert_eq!((ax.span.line, ax.span.column), (2, 3));
    let e = ax.expr.span();
    assert_eq!(&src[e.start..e.end], "{[Measures].[Sales]}");
    let CubeSource::Cube(cube) = &sel.from else { panic!() };
    assert_eq!(&src[cube.span.start..cube.span.end], "[Økonomi]");
    assert_eq!((cube.span.line, cube.span.column), (3, 6));
    assert_eq!(&src[sel.span.start..sel.span.end], src);

    // Spans inside a quoted formula map back onto the original text, across '' escapes.
    let src = "WITH MEMBER [Measures].[L] AS 'IIF(x = ''a'', [Measures].[Y], 0)' SELECT FROM [C]";
    let Statement::Select(sel) = parse_statement(src).unwrap() else {
        panic!()
    };
    let Definition::Member(m) = &sel.with[0] else { panic!() };
    assert!(m.expr_quoted);
    let Expr::Function { args, .. } = &m.expr else { panic!() };
    let y = args[1].span();
    assert_eq!(&src[y.start..y.end], "[Measures].[Y]");
    assert_eq!(y.column, src.find("[Measures].[Y]").unwrap() + 1);
}

#[test]
fn select_statement_parts() {
    let src = "WITH MEMBER [Measures].[M] AS 1, FORMAT_STRING = '#,0', SOLVE_ORDER = 3 \
               SET [S] AS {[A].[B]} \
               CELL CALCULATION [C] FOR '({[Measures].[M]})' AS 'CalculationPassValue([Measures].[M], 0) * 2' \
               SELECT NON EMPTY [S] DIMENSION PROPERTIES MEMBER_CAPTION ON ROWS, {[Measures].[M]} ON 0, {} ON AXIS(2) \
               FROM (SELECT {[A].[B]} ON 0 FROM [Cube]) WHERE ([X].[Y]) CELL PROPERTIES VALUE, FORMATTED_VALUE";
    let Statement::Select(sel) = parse_statement(src).unwrap() else {
        panic!()
    };
    assert_eq!(sel.with.len(), 3);
    let Definition::Member(m) = &sel.with[0] else { panic!() };
    assert_eq!(m.name.to_string(), "[Measures].[M]");
    assert_eq!(m.properties.len(), 2);
    assert_eq!(m.properties[0].name.value, "FORMAT_STRING");
    assert_eq!(m.properties[1].value.to_string(), "3");
    let Definition::CellCalculation(c) = &sel.with[2] else {
        panic!()
    };
    assert!(c.for_quoted && c.expr_quoted);
    assert!(matches!(c.for_expr, Expr::Nested { .. }));
    assert_eq!(sel.axes.len(), 3);
    assert!(sel.axes[0].non_empty);
    assert_eq!(sel.axes[0].name, AxisName::Rows);
    assert_eq!(sel.axes[0].dimension_properties[0].to_string(), "MEMBER_CAPTION");
    assert_eq!(sel.axes[1].name.ordinal(), 0);
    assert_eq!(sel.axes[2].name, AxisName::Number(2));
    assert!(matches!(&sel.from, CubeSource::Subselect { .. }));
    assert!(sel.where_clause.is_some());
    let props: Vec<_> = sel.cell_properties.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(props, ["VALUE", "FORMATTED_VALUE"]);
}

#[test]
fn quoted_formula_only_for_whole_single_quoted_string() {
    let member = |src: &str| {
        let Statement::Select(sel) = parse_statement(src).unwrap() else {
            panic!()
        };
        let Definition::Member(m) = sel.with[0].clone() else {
            panic!()
        };
        m
    };
    let m = member("WITH MEMBER [M].[a] AS '[M].[b] + 1' SELECT FROM [C]");
    assert!(m.expr_quoted);
    assert!(matches!(m.expr, Expr::Binary { .. }));
    let m = member("WITH MEMBER [M].[a] AS 'x' + 'y' SELECT FROM [C]");
    assert!(!m.expr_quoted);
    let m = member("WITH MEMBER [M].[a] AS \"text\" SELECT FROM [C]");
    assert!(!m.expr_quoted);
    assert!(matches!(
        m.expr,
        Expr::Literal {
            value: Literal::String(_),
            ..
        }
    ));
}

#[test]
fn other_statements() {
    let Statement::Drillthrough(d) =
        parse_statement("DRILLTHROUGH MAXROWS 5 FIRSTROWSET 2 SELECT FROM [C] RETURN [$D].[A], Key([$D].[B])").unwrap()
    else {
        panic!()
    };
    assert_eq!((d.max_rows, d.first_rowset, d.returns.len()), (Some(5), Some(2), 2));

    let Statement::Create(c) = parse_statement("create session member [C].[Measures].[X] as 1").unwrap() else {
        panic!()
    };
    assert!(c.session);
    assert_eq!(c.definitions[0].name().to_string(), "[C].[Measures].[X]");

    let Statement::Create(c) = parse_statement("CREATE HIDDEN STATIC SET [C].[S] AS {}").unwrap() else {
        panic!()
    };
    let Definition::Set(s) = &c.definitions[0] else {
        panic!()
    };
    assert!(s.hidden);
    assert_eq!(s.kind, Some(SetKind::Static));

    let Statement::Drop(d) = parse_statement("drop set [C].[S], [C].[T];").unwrap() else {
        panic!()
    };
    assert_eq!((d.kind, d.names.len()), (DropKind::Set, 2));

    let Statement::Refresh(r) = parse_statement("refresh cube [Sales];").unwrap() else {
        panic!()
    };
    assert_eq!(r.cube.to_string(), "[Sales]");

    let Statement::Select(s) = parse_statement(
        "WITH CELL CALCULATION [c] FOR {[a].Members AS s} AS s.Count, CONDITION = 'x > 0' SELECT FROM [C]",
    )
    .unwrap() else {
        panic!()
    };
    let Definition::CellCalculation(c) = &s.with[0] else {
        panic!()
    };
    assert_eq!(sx(&c.for_expr), "{(AS (. [a] Members) s)}");
    assert_eq!(sx(&c.expr), "(. s Count)");
    assert_eq!(c.properties[0].name.value, "CONDITION");
}

#[test]
fn several_statements_in_one_command() {
    use datakube_mdx::parse_statements;
    let list = parse_statements(
        "CREATE MEMBER [Sales].[Measures].[A] AS 1;\nCREATE SET [Sales].[S] AS {[a]};\nDROP SET [Sales].[T]; REFRESH CUBE [Sales];",
    )
    .unwrap();
    assert_eq!(list.len(), 4);
    assert!(matches!(list[3], Statement::Refresh(_)));
    assert_eq!(list[1].span().line, 2);
    // One SELECT alone is fine, with or without the final semicolon.
    assert_eq!(parse_statements("SELECT FROM [C];").unwrap().len(), 1);
}

#[test]
fn concatenation_binds_like_plus() {
    assert_eq!(shape("a || b || c"), "(|| (|| a b) c)");
    assert_eq!(shape("a || b * c"), "(|| a (* b c))");
    assert_eq!(shape("a + b || c"), "(|| (+ a b) c)");
    assert_eq!(shape("a || b = c"), "(= (|| a b) c)");
}

#[test]
fn keywords_are_case_insensitive_and_usable_as_names() {
    parse_statement("sElEcT {[m].[x]} oN cOlUmNs fRoM [c] wHeRe [a].[b]").unwrap();
    // Keywords after a dot, in brackets, and soft keywords as function names.
    assert_eq!(shape("[Store].Dimension.Name"), "(. (. [Store] Dimension) Name)");
    assert_eq!(shape("x.Properties(\"Key\")"), "(.Properties x [\"Key\"])");
    assert_eq!(shape("Properties(\"Key\")"), "Properties[\"Key\"]");
    assert_eq!(shape("[Select].[From].[Where]"), "[Select].[From].[Where]");
    assert_eq!(shape("x.Set.Member"), "x.Set.Member");
}

#[test]
fn select_star_non_visual_and_comma_separated_definitions() {
    let Statement::Select(sel) =
        parse_statement("WITH MEMBER [M].[a] AS 1, SOLVE_ORDER = 2, SET [s] AS {} , MEMBER [M].[b] AS 2 SELECT * FROM NON VISUAL (SELECT * FROM [C]) PROPERTIES VALUE")
            .unwrap()
    else {
        panic!()
    };
    assert!(sel.star && sel.axes.is_empty());
    assert_eq!(sel.with.len(), 3);
    let Definition::Member(m) = &sel.with[0] else { panic!() };
    assert_eq!(m.properties.len(), 1);
    let CubeSource::Subselect { select, non_visual, .. } = &sel.from else {
        panic!()
    };
    assert!(*non_visual && select.star);
    assert_eq!(sel.cell_properties.len(), 1);
}
