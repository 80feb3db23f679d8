//! Abstract syntax tree for MDX statements and expressions.
//!
//! Every node carries a [`Span`] pointing back into the source text. Two trees that differ only
//! in their spans can be compared with [`Expr::eq_ignore_spans`] / [`Statement::eq_ignore_spans`],
//! or normalised with `strip_spans()`.
//!
//! Every node implements [`std::fmt::Display`], printing valid MDX that parses back to the same
//! tree (ignoring spans).
//!
//! Field conventions: `span` is always the source region the node was parsed from (the empty
//! span for synthesised nodes); `name` is the defined or called name; `expr`/`object`/`args`/
//! `items` are sub-expressions in source order.
//!
//! Dot syntax: an unquoted name after a dot that is a known MDX property or function
//! ([`crate::is_dot_property`], e.g. `Children`, `CurrentMember`, `Name`) becomes
//! [`Expr::Property`]; a name followed by `(` becomes [`Expr::Method`]; any other name or key
//! extends the [`Expr::Identifier`] chain (`[Time].[1997].[Q1]`, `Measures.Sales`). Resolving what
//! a chain denotes (dimension, hierarchy, level, member) is left to the engine.
//!
//! Operator precedence follows SSAS, from loosest to tightest: `OR`; `XOR`; `AND`; `NOT`;
//! comparisons (`= <> < <= > >=`); `EXISTING`; `+ - ||`; `* /`; `^` and prefix `-`/`+`
//! (`-a^b` is `-(a^b)`); `:`; `AS`; `IS`; then dot access. Binary operators are left-associative.
//! `||` (string concatenation, as in Mondrian) binds like `+`.
//!
//! Literals: numbers (`1`, `2.5`, `1.5E3`, `.5`), strings in single or double quotes, `NULL`.
//! MDX has no date literal (SSAS builds dates with `CDate("...")`/`DateSerial(...)`, which are
//! ordinary function calls here).

/// A region of the source text: byte range `start..end` plus the 1-based line and column
/// (in characters) of `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// 1-based column (counted in chars) of `start`.
    pub column: usize,
}

impl Span {
    /// The empty span used by [`Expr::strip_spans`] and for synthesised nodes.
    pub const EMPTY: Span = Span {
        start: 0,
        end: 0,
        line: 0,
        column: 0,
    };

    /// The smallest span covering `self` and `other` (line/column taken from the earlier one).
    pub fn union(self, other: Span) -> Span {
        if self == Span::EMPTY {
            return other;
        }
        if other == Span::EMPTY {
            return self;
        }
        let (first, _) = if self.start <= other.start {
            (self, other)
        } else {
            (other, self)
        };
        Span {
            start: first.start,
            end: self.end.max(other.end),
            line: first.line,
            column: first.column,
        }
    }
}

/// A simple identifier, e.g. a function name, a property name or an alias.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name with brackets removed and `]]` unescaped.
    pub value: String,
    /// Whether it was written in brackets (`[Name]`).
    pub quoted: bool,
    pub span: Span,
}

impl Ident {
    /// An unquoted identifier with an empty span.
    pub fn new(value: impl Into<String>) -> Ident {
        Ident {
            value: value.into(),
            quoted: false,
            span: Span::EMPTY,
        }
    }
    /// A bracketed identifier with an empty span.
    pub fn quoted(value: impl Into<String>) -> Ident {
        Ident {
            value: value.into(),
            quoted: true,
            span: Span::EMPTY,
        }
    }
}

/// One dot-separated part of a compound object name such as `[Store].[USA].&[751]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// `[Kommune]` (quoted) or `Measures` (unquoted).
    Name { text: String, quoted: bool, span: Span },
    /// A key reference `&[751]` or `&751`.
    Key { text: String, span: Span },
    /// A composite key reference `&[2004]&[1]`.
    CompositeKey { parts: Vec<String>, span: Span },
}

impl Segment {
    /// Span of this segment.
    pub fn span(&self) -> Span {
        match self {
            Segment::Name { span, .. } | Segment::Key { span, .. } | Segment::CompositeKey { span, .. } => *span,
        }
    }
    /// The text of a name or single key segment (composite keys: the parts joined by `&`).
    pub fn text(&self) -> String {
        match self {
            Segment::Name { text, .. } | Segment::Key { text, .. } => text.clone(),
            Segment::CompositeKey { parts, .. } => parts.join("&"),
        }
    }
}

/// A compound object name: `[Store].[Store City].&[751]`, `Measures.Sales`, `[Sales]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectName {
    pub segments: Vec<Segment>,
    pub span: Span,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A numeric literal, kept as written (`1`, `2.5`, `1e-3`).
    Number(String),
    /// A string literal with quotes removed and doubled quotes unescaped.
    String(String),
    /// `NULL`.
    Null,
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x` (numeric negation; on a set: complement).
    Minus,
    /// `+x`.
    Plus,
    /// `NOT x`.
    Not,
    /// `EXISTING set`.
    Existing,
}

/// Infix operators. `+`, `-` and `*` double as set union, except and crossjoin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+` (also set union)
    Add,
    /// `-` (also set except)
    Sub,
    /// `*` (also crossjoin)
    Mul,
    /// `/`
    Div,
    /// `^`
    Pow,
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND`
    And,
    /// `OR`
    Or,
    /// `XOR`
    Xor,
    /// `||` (string concatenation; same precedence as `+`)
    Concat,
}

/// Right-hand side of an `IS` test.
#[derive(Debug, Clone, PartialEq)]
pub enum IsTarget {
    /// `x IS NULL`.
    Null,
    /// `x IS EMPTY`.
    Empty,
    /// `a IS b` (object identity).
    Expr(Box<Expr>),
}

/// One `WHEN ... THEN ...` arm of a `CASE` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseWhen {
    pub condition: Expr,
    pub result: Expr,
    pub span: Span,
}

/// An MDX expression (value, member, tuple, set, level, ...). The parser does not check types.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A (possibly compound) object name: `[Measures].[Unit Sales]`, `[Store].&[751]`, `Foo`.
    Identifier(ObjectName),
    /// A number, string or `NULL`.
    Literal { value: Literal, span: Span },
    /// A query parameter `@Name` (as used by reporting tools).
    Parameter { name: String, span: Span },
    /// `-x`, `+x`, `NOT x`, `EXISTING s`.
    Unary { op: UnaryOp, expr: Box<Expr>, span: Span },
    /// `a op b` for arithmetic, comparison, logical and set operators.
    Binary {
        left: Box<Expr>,
        op: BinaryOp,
        right: Box<Expr>,
        span: Span,
    },
    /// `a : b`.
    Range {
        start: Box<Expr>,
        end: Box<Expr>,
        span: Span,
    },
    /// `x IS NULL`, `x IS EMPTY`, `a IS b`.
    Is {
        expr: Box<Expr>,
        target: IsTarget,
        span: Span,
    },
    /// `set AS alias` (inline named set).
    Alias { expr: Box<Expr>, alias: Ident, span: Span },
    /// A function call `Name(args)`.
    Function { name: Ident, args: Vec<Expr>, span: Span },
    /// A property access in dot syntax: `expr.Children`, `[Time].CurrentMember`.
    Property { object: Box<Expr>, name: Ident, span: Span },
    /// A method call in dot syntax: `expr.Lag(1)`, `expr.Properties("Key")`.
    Method {
        object: Box<Expr>,
        name: Ident,
        args: Vec<Expr>,
        span: Span,
    },
    /// A tuple `(a, b, ...)` with at least two items (or `()`).
    Tuple { items: Vec<Expr>, span: Span },
    /// A set `{a, b, ...}`.
    Set { items: Vec<Expr>, span: Span },
    /// A parenthesised single expression `(x)`.
    Nested { expr: Box<Expr>, span: Span },
    /// `CASE [operand] WHEN .. THEN .. [ELSE ..] END`.
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<CaseWhen>,
        else_result: Option<Box<Expr>>,
        span: Span,
    },
    /// An omitted function argument, as in `DrilldownLevel(set,,,INCLUDE_CALC_MEMBERS)`.
    Omitted { span: Span },
}

/// Axis designation after `ON`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AxisName {
    /// `COLUMNS` (axis 0)
    Columns,
    /// `ROWS` (axis 1)
    Rows,
    /// `PAGES` (axis 2)
    Pages,
    /// `CHAPTERS` (axis 3)
    Chapters,
    /// `SECTIONS` (axis 4)
    Sections,
    /// `AXIS(n)` or a bare number `ON n`.
    Number(u32),
}

impl AxisName {
    /// Zero-based axis ordinal (`COLUMNS` = 0, `ROWS` = 1, ...).
    pub fn ordinal(self) -> u32 {
        match self {
            AxisName::Columns => 0,
            AxisName::Rows => 1,
            AxisName::Pages => 2,
            AxisName::Chapters => 3,
            AxisName::Sections => 4,
            AxisName::Number(n) => n,
        }
    }
}

/// One query axis: `[NON EMPTY] expr [DIMENSION PROPERTIES ...] ON name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub non_empty: bool,
    pub expr: Expr,
    /// Names listed after `DIMENSION PROPERTIES` (or just `PROPERTIES`).
    pub dimension_properties: Vec<ObjectName>,
    pub name: AxisName,
    pub span: Span,
}

/// A `name = value` property of a calculated member, set or cell calculation.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionProperty {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `MEMBER name AS expr [, prop = value ...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberDefinition {
    pub name: ObjectName,
    pub hidden: bool,
    pub expr: Expr,
    /// The formula was written as a string (`AS '...'`); `expr` is its parsed content.
    pub expr_quoted: bool,
    pub properties: Vec<DefinitionProperty>,
    pub span: Span,
}

/// `STATIC` / `DYNAMIC` modifier of a named set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetKind {
    /// `STATIC SET`: evaluated once.
    Static,
    /// `DYNAMIC SET`: re-evaluated in the context of each query.
    Dynamic,
}

/// `[HIDDEN] [STATIC|DYNAMIC] SET name AS expr [, prop = value ...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SetDefinition {
    pub name: ObjectName,
    pub hidden: bool,
    pub kind: Option<SetKind>,
    pub expr: Expr,
    /// The expression was written as a string (`AS '...'`); `expr` is its parsed content.
    pub expr_quoted: bool,
    pub properties: Vec<DefinitionProperty>,
    pub span: Span,
}

/// `CELL CALCULATION name FOR 'subcube' AS 'expr' [, CONDITION = '...'] [, prop = value ...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CellCalculationDefinition {
    pub name: ObjectName,
    /// The subcube (set) expression after `FOR`.
    pub for_expr: Expr,
    /// `FOR` was written as a string; `for_expr` is its parsed content.
    pub for_quoted: bool,
    pub expr: Expr,
    pub expr_quoted: bool,
    pub properties: Vec<DefinitionProperty>,
    pub span: Span,
}

/// A calculation defined in `WITH` or `CREATE`.
#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    /// A calculated member.
    Member(MemberDefinition),
    /// A named set.
    Set(SetDefinition),
    /// A cell calculation.
    CellCalculation(CellCalculationDefinition),
}

/// The source of a `SELECT`: a cube or a subselect.
#[derive(Debug, Clone, PartialEq)]
pub enum CubeSource {
    /// `FROM [Sales]`.
    Cube(ObjectName),
    /// `FROM [NON VISUAL] (SELECT ...)`.
    Subselect {
        select: Box<Select>,
        non_visual: bool,
        span: Span,
    },
}

/// A `SELECT` statement (also used for subselects).
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// Definitions in the `WITH` clause.
    pub with: Vec<Definition>,
    /// `SELECT * FROM ...` (then `axes` is empty).
    pub star: bool,
    pub axes: Vec<Axis>,
    pub from: CubeSource,
    /// The slicer (`WHERE` clause).
    pub where_clause: Option<Expr>,
    /// Names after `CELL PROPERTIES` (empty when absent).
    pub cell_properties: Vec<Ident>,
    pub span: Span,
}

/// `DRILLTHROUGH [MAXROWS n] [FIRSTROWSET n] SELECT ... [RETURN col, ...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Drillthrough {
    pub max_rows: Option<u64>,
    pub first_rowset: Option<u64>,
    pub select: Select,
    pub returns: Vec<Expr>,
    pub span: Span,
}

/// `CREATE [SESSION] MEMBER|SET|CELL CALCULATION ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Create {
    pub session: bool,
    pub definitions: Vec<Definition>,
    pub span: Span,
}

/// What a `DROP` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropKind {
    /// `DROP MEMBER`.
    Member,
    /// `DROP SET`.
    Set,
}

/// `DROP MEMBER name [, name ...]` / `DROP SET name [, name ...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Drop {
    pub kind: DropKind,
    pub names: Vec<ObjectName>,
    pub span: Span,
}

/// `REFRESH CUBE name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Refresh {
    pub cube: ObjectName,
    pub span: Span,
}

/// A complete MDX statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `[WITH ...] SELECT ...`.
    Select(Box<Select>),
    /// `DRILLTHROUGH ...`.
    Drillthrough(Box<Drillthrough>),
    /// `CREATE [SESSION] MEMBER|SET|CELL CALCULATION ...`.
    Create(Box<Create>),
    /// `DROP MEMBER|SET ...`.
    Drop(Box<Drop>),
    /// `REFRESH CUBE name`.
    Refresh(Box<Refresh>),
}

// ----- span access and span-insensitive comparison ------------------------------------------

impl Expr {
    /// The source region of this expression.
    pub fn span(&self) -> Span {
        match self {
            Expr::Identifier(n) => n.span,
            Expr::Literal { span, .. }
            | Expr::Parameter { span, .. }
            | Expr::Unary { span, .. }
            | Expr::Binary { span, .. }
            | Expr::Range { span, .. }
            | Expr::Is { span, .. }
            | Expr::Alias { span, .. }
            | Expr::Function { span, .. }
            | Expr::Property { span, .. }
            | Expr::Method { span, .. }
            | Expr::Tuple { span, .. }
            | Expr::Set { span, .. }
            | Expr::Nested { span, .. }
            | Expr::Case { span, .. }
            | Expr::Omitted { span } => *span,
        }
    }

    /// Reset every span in this tree to [`Span::EMPTY`].
    pub fn strip_spans(&mut self) {
        match self {
            Expr::Identifier(n) => n.strip_spans(),
            Expr::Literal { span, .. } | Expr::Parameter { span, .. } | Expr::Omitted { span } => *span = Span::EMPTY,
            Expr::Unary { expr, span, .. } | Expr::Nested { expr, span } => {
                *span = Span::EMPTY;
                expr.strip_spans();
            }
            Expr::Binary { left, right, span, .. } => {
                *span = Span::EMPTY;
                left.strip_spans();
                right.strip_spans();
            }
            Expr::Range { start, end, span } => {
                *span = Span::EMPTY;
                start.strip_spans();
                end.strip_spans();
            }
            Expr::Is { expr, target, span } => {
                *span = Span::EMPTY;
                expr.strip_spans();
                if let IsTarget::Expr(t) = target {
                    t.strip_spans();
                }
            }
            Expr::Alias { expr, alias, span } => {
                *span = Span::EMPTY;
                expr.strip_spans();
                alias.span = Span::EMPTY;
            }
            Expr::Function { name, args, span } => {
                *span = Span::EMPTY;
                name.span = Span::EMPTY;
                args.iter_mut().for_each(Expr::strip_spans);
            }
            Expr::Property { object, name, span } => {
                *span = Span::EMPTY;
                name.span = Span::EMPTY;
                object.strip_spans();
            }
            Expr::Method {
                object,
                name,
                args,
                span,
            } => {
                *span = Span::EMPTY;
                name.span = Span::EMPTY;
                object.strip_spans();
                args.iter_mut().for_each(Expr::strip_spans);
            }
            Expr::Tuple { items, span } | Expr::Set { items, span } => {
                *span = Span::EMPTY;
                items.iter_mut().for_each(Expr::strip_spans);
            }
            Expr::Case {
                operand,
                whens,
                else_result,
                span,
            } => {
                *span = Span::EMPTY;
                if let Some(o) = operand {
                    o.strip_spans();
                }
                for w in whens {
                    w.span = Span::EMPTY;
                    w.condition.strip_spans();
                    w.result.strip_spans();
                }
                if let Some(e) = else_result {
                    e.strip_spans();
                }
            }
        }
    }

    /// Structural equality ignoring spans.
    pub fn eq_ignore_spans(&self, other: &Expr) -> bool {
        let (mut a, mut b) = (self.clone(), other.clone());
        a.strip_spans();
        b.strip_spans();
        a == b
    }
}

impl ObjectName {
    /// Reset every span to [`Span::EMPTY`].
    pub fn strip_spans(&mut self) {
        self.span = Span::EMPTY;
        for s in &mut self.segments {
            match s {
                Segment::Name { span, .. } | Segment::Key { span, .. } | Segment::CompositeKey { span, .. } => {
                    *span = Span::EMPTY
                }
            }
        }
    }
}

fn strip_props(props: &mut [DefinitionProperty]) {
    for p in props {
        p.span = Span::EMPTY;
        p.name.span = Span::EMPTY;
        p.value.strip_spans();
    }
}

impl Definition {
    /// Reset every span to [`Span::EMPTY`].
    pub fn strip_spans(&mut self) {
        match self {
            Definition::Member(m) => {
                m.span = Span::EMPTY;
                m.name.strip_spans();
                m.expr.strip_spans();
                strip_props(&mut m.properties);
            }
            Definition::Set(s) => {
                s.span = Span::EMPTY;
                s.name.strip_spans();
                s.expr.strip_spans();
                strip_props(&mut s.properties);
            }
            Definition::CellCalculation(c) => {
                c.span = Span::EMPTY;
                c.name.strip_spans();
                c.for_expr.strip_spans();
                c.expr.strip_spans();
                strip_props(&mut c.properties);
            }
        }
    }

    /// The name being defined.
    pub fn name(&self) -> &ObjectName {
        match self {
            Definition::Member(m) => &m.name,
            Definition::Set(s) => &s.name,
            Definition::CellCalculation(c) => &c.name,
        }
    }
}

impl Select {
    /// Reset every span to [`Span::EMPTY`].
    pub fn strip_spans(&mut self) {
        self.span = Span::EMPTY;
        self.with.iter_mut().for_each(Definition::strip_spans);
        for a in &mut self.axes {
            a.span = Span::EMPTY;
            a.expr.strip_spans();
            a.dimension_properties.iter_mut().for_each(ObjectName::strip_spans);
        }
        match &mut self.from {
            CubeSource::Cube(n) => n.strip_spans(),
            CubeSource::Subselect { select, span, .. } => {
                *span = Span::EMPTY;
                select.strip_spans();
            }
        }
        if let Some(w) = &mut self.where_clause {
            w.strip_spans();
        }
        for p in &mut self.cell_properties {
            p.span = Span::EMPTY;
        }
    }
}

impl Statement {
    /// The source region of the whole statement.
    pub fn span(&self) -> Span {
        match self {
            Statement::Select(s) => s.span,
            Statement::Drillthrough(d) => d.span,
            Statement::Create(c) => c.span,
            Statement::Drop(d) => d.span,
            Statement::Refresh(r) => r.span,
        }
    }

    /// Reset every span in this tree to [`Span::EMPTY`].
    pub fn strip_spans(&mut self) {
        match self {
            Statement::Select(s) => s.strip_spans(),
            Statement::Drillthrough(d) => {
                d.span = Span::EMPTY;
                d.select.strip_spans();
                d.returns.iter_mut().for_each(Expr::strip_spans);
            }
            Statement::Create(c) => {
                c.span = Span::EMPTY;
                c.definitions.iter_mut().for_each(Definition::strip_spans);
            }
            Statement::Drop(d) => {
                d.span = Span::EMPTY;
                d.names.iter_mut().for_each(ObjectName::strip_spans);
            }
            Statement::Refresh(r) => {
                r.span = Span::EMPTY;
                r.cube.strip_spans();
            }
        }
    }

    /// Structural equality ignoring spans.
    pub fn eq_ignore_spans(&self, other: &Statement) -> bool {
        let (mut a, mut b) = (self.clone(), other.clone());
        a.strip_spans();
        b.strip_spans();
        a == b
    }
}
