//! `Display` implementations printing the AST as MDX.
//!
//! The printer inserts parentheses exactly where the parser would otherwise build a different
//! tree, so `parse(print(ast)) == ast` (ignoring spans) for every tree the parser produces, and
//! printed programmatic trees keep their structure.

use crate::ast::*;
use crate::lexer::is_plain_identifier;
use crate::parser::{PREC_AS, PREC_IS, PREC_RANGE, binary_bp, is_hard_keyword, unary_operand_bp};
use std::fmt::{self, Display, Formatter, Write};

/// Write `s` as a bracketed identifier, escaping `]` as `]]`.
pub(crate) fn write_bracketed(f: &mut impl Write, s: &str) -> fmt::Result {
    f.write_char('[')?;
    for c in s.chars() {
        if c == ']' {
            f.write_str("]]")?;
        } else {
            f.write_char(c)?;
        }
    }
    f.write_char(']')
}

fn write_name(f: &mut Formatter<'_>, text: &str, quoted: bool) -> fmt::Result {
    if quoted || !is_plain_identifier(text) {
        write_bracketed(f, text)
    } else {
        f.write_str(text)
    }
}

/// Write a string literal in double quotes, doubling embedded quotes.
fn write_string(f: &mut Formatter<'_>, s: &str, quote: char) -> fmt::Result {
    f.write_char(quote)?;
    for c in s.chars() {
        if c == quote {
            f.write_char(quote)?;
        }
        f.write_char(c)?;
    }
    f.write_char(quote)
}

fn comma_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl Display for Ident {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_name(f, &self.value, self.quoted)
    }
}

impl Display for Segment {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Name { text, quoted, .. } => write_name(f, text, *quoted),
            Segment::Key { text, .. } => {
                f.write_char('&')?;
                write_bracketed(f, text)
            }
            Segment::CompositeKey { parts, .. } => {
                for p in parts {
                    f.write_char('&')?;
                    write_bracketed(f, p)?;
                }
                Ok(())
            }
        }
    }
}

impl Display for ObjectName {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_char('.')?;
            }
            match s {
                // A leading reserved word must be bracketed (only programmatic trees have one).
                Segment::Name {
                    text, quoted: false, ..
                } if i == 0 && is_hard_keyword(text) => write_bracketed(f, text)?,
                _ => write!(f, "{s}")?,
            }
        }
        Ok(())
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Number(n) => f.write_str(n),
            Literal::String(s) => write_string(f, s, '"'),
            Literal::Null => f.write_str("NULL"),
        }
    }
}

impl Display for UnaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnaryOp::Minus => "-",
            UnaryOp::Plus => "+",
            UnaryOp::Not => "NOT",
            UnaryOp::Existing => "EXISTING",
        })
    }
}

impl Display for BinaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Pow => "^",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Xor => "XOR",
            BinaryOp::Concat => "||",
        })
    }
}

const NO_INFIX: u8 = u8::MAX;

/// Lowest binding power among the infix operators the parser frame that builds `e` must
/// accept: the operators along the left spine of `e` (stopping at parenthesised operands).
/// `NO_INFIX` for primaries and prefix expressions.
fn spine_min(e: &Expr) -> u8 {
    let mut e = e;
    let mut min = NO_INFIX;
    loop {
        let (bp, left) = match e {
            Expr::Binary { op, left, .. } => (binary_bp(*op), left),
            Expr::Range { start, .. } => (PREC_RANGE, start),
            Expr::Alias { expr, .. } => (PREC_AS, expr),
            Expr::Is { expr, .. } => (PREC_IS, expr),
            _ => return min,
        };
        min = min.min(bp);
        if absorbs(left, bp) {
            return min;
        }
        e = left;
    }
}

/// Whether printing `e` followed by an infix operator of binding power `p` would make the
/// parser attach that operator to a sub-expression of `e` instead of `e` as a whole.
fn absorbs(e: &Expr, p: u8) -> bool {
    let mut e = e;
    loop {
        match e {
            Expr::Unary { op, expr, .. } => {
                if p >= unary_operand_bp(*op) {
                    return true;
                }
                e = expr;
            }
            Expr::Binary { op, right, .. } => {
                if p > binary_bp(*op) {
                    return true;
                }
                e = right;
            }
            Expr::Range { end, .. } => {
                if p > PREC_RANGE {
                    return true;
                }
                e = end;
            }
            Expr::Is {
                target: IsTarget::Expr(t),
                ..
            } => {
                if p > PREC_IS {
                    return true;
                }
                e = t;
            }
            _ => return false,
        }
    }
}

/// Print `e` in a position parsed with minimum binding power `min_bp` and followed by an
/// infix operator of binding power `next_bp` (0 if nothing that could bind follows).
fn write_operand(f: &mut Formatter<'_>, e: &Expr, min_bp: u8, next_bp: u8) -> fmt::Result {
    let needs = spine_min(e) < min_bp || (next_bp > 0 && absorbs(e, next_bp));
    if needs { write!(f, "({e})") } else { write!(f, "{e}") }
}

/// Whether the printed form of `e` starts with the word `NULL` or `EMPTY`.
fn starts_with_null_or_empty(e: &Expr) -> bool {
    let mut e = e;
    loop {
        e = match e {
            Expr::Literal {
                value: Literal::Null, ..
            } => return true,
            Expr::Identifier(n) => {
                return matches!(n.segments.first(), Some(Segment::Name { text, quoted: false, .. })
                    if text.eq_ignore_ascii_case("EMPTY"));
            }
            Expr::Binary { left, .. } => left,
            Expr::Range { start, .. } => start,
            Expr::Is { expr, .. } | Expr::Alias { expr, .. } => expr,
            Expr::Property { object, .. } | Expr::Method { object, .. } if is_postfix_object(object) => object,
            _ => return false,
        };
    }
}

fn is_postfix_object(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Identifier(_)
            | Expr::Literal { .. }
            | Expr::Parameter { .. }
            | Expr::Function { .. }
            | Expr::Property { .. }
            | Expr::Method { .. }
            | Expr::Tuple { .. }
            | Expr::Set { .. }
            | Expr::Nested { .. }
            | Expr::Case { .. }
    )
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Identifier(name) => write!(f, "{name}"),
            Expr::Literal { value, .. } => write!(f, "{value}"),
            Expr::Parameter { name, .. } => write!(f, "@{name}"),
            Expr::Unary { op, expr, .. } => {
                match op {
                    UnaryOp::Minus | UnaryOp::Plus => {
                        write!(f, "{op}")?;
                        // Avoid `--` (a comment) and keep `- +x` readable.
                        if matches!(
                            **expr,
                            Expr::Unary {
                                op: UnaryOp::Minus | UnaryOp::Plus,
                                ..
                            }
                        ) {
                            f.write_char(' ')?;
                        }
                    }
                    _ => write!(f, "{op} ")?,
                }
                write_operand(f, expr, unary_operand_bp(*op), 0)
            }
            Expr::Binary { left, op, right, .. } => {
                let bp = binary_bp(*op);
                write_operand(f, left, 0, bp)?;
                write!(f, " {op} ")?;
                write_operand(f, right, bp + 1, 0)
            }
            Expr::Range { start, end, .. } => {
                write_operand(f, start, 0, PREC_RANGE)?;
                f.write_str(" : ")?;
                write_operand(f, end, PREC_RANGE + 1, 0)
            }
            Expr::Alias { expr, alias, .. } => {
                write_operand(f, expr, 0, PREC_AS)?;
                write!(f, " AS {alias}")
            }
            Expr::Is { expr, target, .. } => {
                write_operand(f, expr, 0, PREC_IS)?;
                match target {
                    IsTarget::Null => f.write_str(" IS NULL"),
                    IsTarget::Empty => f.write_str(" IS EMPTY"),
                    IsTarget::Expr(t) => {
                        f.write_str(" IS ")?;
                        if starts_with_null_or_empty(t) {
                            // `IS NULL...` / `IS EMPTY...` would read as the NULL/EMPTY test.
                            write!(f, "({t})")
                        } else {
                            write_operand(f, t, PREC_IS + 1, 0)
                        }
                    }
                }
            }
            Expr::Function { name, args, .. } => {
                write!(f, "{name}(")?;
                comma_list(f, args)?;
                f.write_char(')')
            }
            Expr::Property { object, name, .. } => {
                if is_postfix_object(object) {
                    write!(f, "{object}")?
                } else {
                    write!(f, "({object})")?
                }
                write!(f, ".{name}")
            }
            Expr::Method { object, name, args, .. } => {
                if is_postfix_object(object) {
                    write!(f, "{object}")?
                } else {
                    write!(f, "({object})")?
                }
                write!(f, ".{name}(")?;
                comma_list(f, args)?;
                f.write_char(')')
            }
            Expr::Tuple { items, .. } => {
                f.write_char('(')?;
                comma_list(f, items)?;
                f.write_char(')')
            }
            Expr::Set { items, .. } => {
                f.write_char('{')?;
                comma_list(f, items)?;
                f.write_char('}')
            }
            Expr::Nested { expr, .. } => write!(f, "({expr})"),
            Expr::Case {
                operand,
                whens,
                else_result,
                ..
            } => {
                f.write_str("CASE")?;
                if let Some(o) = operand {
                    write!(f, " {o}")?;
                }
                for w in whens {
                    write!(f, " {w}")?;
                }
                if let Some(e) = else_result {
                    write!(f, " ELSE {e}")?;
                }
                f.write_str(" END")
            }
            Expr::Omitted { .. } => Ok(()),
        }
    }
}

impl Display for CaseWhen {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "WHEN {} THEN {}", self.condition, self.result)
    }
}

impl Display for IsTarget {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            IsTarget::Null => f.write_str("NULL"),
            IsTarget::Empty => f.write_str("EMPTY"),
            IsTarget::Expr(e) => write!(f, "{e}"),
        }
    }
}

impl Display for AxisName {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            AxisName::Columns => f.write_str("COLUMNS"),
            AxisName::Rows => f.write_str("ROWS"),
            AxisName::Pages => f.write_str("PAGES"),
            AxisName::Chapters => f.write_str("CHAPTERS"),
            AxisName::Sections => f.write_str("SECTIONS"),
            AxisName::Number(n) => write!(f, "AXIS({n})"),
        }
    }
}

impl Display for Axis {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.non_empty {
            f.write_str("NON EMPTY ")?;
        }
        write!(f, "{}", self.expr)?;
        if !self.dimension_properties.is_empty() {
            f.write_str(" DIMENSION PROPERTIES ")?;
            comma_list(f, &self.dimension_properties)?;
        }
        write!(f, " ON {}", self.name)
    }
}

impl Display for DefinitionProperty {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}", self.name, self.value)
    }
}

fn write_formula(f: &mut Formatter<'_>, e: &Expr, quoted: bool) -> fmt::Result {
    if quoted {
        write_string(f, &e.to_string(), '\'')
    } else {
        write!(f, "{e}")
    }
}

fn write_properties(f: &mut Formatter<'_>, props: &[DefinitionProperty]) -> fmt::Result {
    for p in props {
        write!(f, ", {p}")?;
    }
    Ok(())
}

impl Display for MemberDefinition {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.hidden {
            f.write_str("HIDDEN ")?;
        }
        write!(f, "MEMBER {} AS ", self.name)?;
        write_formula(f, &self.expr, self.expr_quoted)?;
        write_properties(f, &self.properties)
    }
}

impl Display for SetDefinition {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.hidden {
            f.write_str("HIDDEN ")?;
        }
        if let Some(kind) = self.kind {
            write!(f, "{kind} ")?;
        }
        write!(f, "SET {} AS ", self.name)?;
        write_formula(f, &self.expr, self.expr_quoted)?;
        write_properties(f, &self.properties)
    }
}

impl Display for CellCalculationDefinition {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "CELL CALCULATION {} FOR ", self.name)?;
        if self.for_quoted {
            write_formula(f, &self.for_expr, true)?;
        } else if has_toplevel_alias(&self.for_expr) {
            // `x AS y` outside brackets is not an alias after FOR; keep it parenthesised.
            write!(f, "({})", self.for_expr)?;
        } else {
            write!(f, "{}", self.for_expr)?;
        }
        f.write_str(" AS ")?;
        write_formula(f, &self.expr, self.expr_quoted)?;
        write_properties(f, &self.properties)
    }
}

/// Whether printing `e` shows an `AS alias` outside any brackets (which the parser reads as
/// the end of a CELL CALCULATION's unquoted FOR clause).
fn has_toplevel_alias(e: &Expr) -> bool {
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match e {
            Expr::Alias { .. } => return true,
            Expr::Unary { expr, .. } => stack.push(expr),
            Expr::Binary { left, right, .. } => stack.extend([&**left, &**right]),
            Expr::Range { start, end, .. } => stack.extend([&**start, &**end]),
            Expr::Is { expr, target, .. } => {
                stack.push(expr);
                if let IsTarget::Expr(t) = target {
                    stack.push(t);
                }
            }
            _ => {}
        }
    }
    false
}

impl Display for Definition {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Definition::Member(m) => write!(f, "{m}"),
            Definition::Set(s) => write!(f, "{s}"),
            Definition::CellCalculation(c) => write!(f, "{c}"),
        }
    }
}

impl Display for CubeSource {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            CubeSource::Cube(name) => write!(f, "{name}"),
            CubeSource::Subselect { select, non_visual, .. } => {
                if *non_visual {
                    f.write_str("NON VISUAL ")?;
                }
                write!(f, "({select})")
            }
        }
    }
}

impl Display for Select {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if !self.with.is_empty() {
            f.write_str("WITH")?;
            for d in &self.with {
                write!(f, "\n  {d}")?;
            }
            f.write_char('\n')?;
        }
        f.write_str("SELECT")?;
        if self.star {
            f.write_str(" *")?;
        }
        for (i, a) in self.axes.iter().enumerate() {
            f.write_str(if i == 0 { "\n  " } else { ",\n  " })?;
            write!(f, "{a}")?;
        }
        write!(f, "\nFROM {}", self.from)?;
        if let Some(w) = &self.where_clause {
            write!(f, "\nWHERE {w}")?;
        }
        if !self.cell_properties.is_empty() {
            f.write_str("\nCELL PROPERTIES ")?;
            comma_list(f, &self.cell_properties)?;
        }
        Ok(())
    }
}

impl Display for Drillthrough {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("DRILLTHROUGH")?;
        if let Some(n) = self.max_rows {
            write!(f, " MAXROWS {n}")?;
        }
        if let Some(n) = self.first_rowset {
            write!(f, " FIRSTROWSET {n}")?;
        }
        write!(f, "\n{}", self.select)?;
        if !self.returns.is_empty() {
            f.write_str("\nRETURN ")?;
            comma_list(f, &self.returns)?;
        }
        Ok(())
    }
}

impl Display for Create {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("CREATE")?;
        if self.session {
            f.write_str(" SESSION")?;
        }
        for (i, d) in self.definitions.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "\n  " })?;
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// `line:column`.
impl Display for Span {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl Display for SetKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SetKind::Static => "STATIC",
            SetKind::Dynamic => "DYNAMIC",
        })
    }
}

impl Display for DropKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropKind::Member => "MEMBER",
            DropKind::Set => "SET",
        })
    }
}

impl Display for Drop {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "DROP {} ", self.kind)?;
        comma_list(f, &self.names)
    }
}

impl Display for Refresh {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "REFRESH CUBE {}", self.cube)
    }
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Select(s) => write!(f, "{s}"),
            Statement::Drillthrough(d) => write!(f, "{d}"),
            Statement::Create(c) => write!(f, "{c}"),
            Statement::Drop(d) => write!(f, "{d}"),
            Statement::Refresh(r) => write!(f, "{r}"),
        }
    }
}
