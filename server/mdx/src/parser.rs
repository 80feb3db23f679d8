//! Recursive-descent / Pratt parser producing the [`crate::ast`] tree.

use crate::ParseError;
use crate::ast::*;
use crate::lexer::{Keyword, Token, TokenKind, tokenize_at};

/// Maximum nesting of recursive constructs (parentheses, function calls, unary operators,
/// subselects, ...). Deeper input gets a clean error instead of a stack overflow.
pub const MAX_NESTING: usize = 256;

/// Maximum height of an expression tree, counting long operator chains such as
/// `a + b + c + ...` and `x.Parent.Parent...` which the parser builds without recursion.
pub const MAX_TREE_HEIGHT: usize = 1024;

// Binding powers, from loosest to tightest (SSAS "Operator precedence (MDX)").
const BP_OR: u8 = 1;
const BP_XOR: u8 = 2;
const BP_AND: u8 = 3;
const BP_NOT_OPERAND: u8 = 4;
const BP_CMP: u8 = 5;
const BP_EXISTING_OPERAND: u8 = 6;
const BP_ADD: u8 = 7;
const BP_MUL: u8 = 8;
const BP_POW: u8 = 9;
const BP_NEG_OPERAND: u8 = 9;
const BP_RANGE: u8 = 11;
const BP_AS: u8 = 12;
const BP_IS: u8 = 13;

/// Binding power of a binary operator (shared with the printer).
pub(crate) fn binary_bp(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => BP_OR,
        BinaryOp::Xor => BP_XOR,
        BinaryOp::And => BP_AND,
        BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq => BP_CMP,
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Concat => BP_ADD,
        BinaryOp::Mul | BinaryOp::Div => BP_MUL,
        BinaryOp::Pow => BP_POW,
    }
}

/// Minimum binding power of the operand of a prefix operator (shared with the printer).
pub(crate) fn unary_operand_bp(op: UnaryOp) -> u8 {
    match op {
        UnaryOp::Not => BP_NOT_OPERAND,
        UnaryOp::Existing => BP_EXISTING_OPERAND,
        UnaryOp::Minus | UnaryOp::Plus => BP_NEG_OPERAND,
    }
}

pub(crate) const PREC_RANGE: u8 = BP_RANGE;
pub(crate) const PREC_AS: u8 = BP_AS;
pub(crate) const PREC_IS: u8 = BP_IS;

/// Names that, written unquoted after a dot, denote an MDX property/function rather than a
/// member or level name (`[Time].[1997].Children`, `[Store].CurrentMember.Name`).
const DOT_PROPERTIES: &[&str] = &[
    "AllMembers",
    "Caption",
    "Children",
    "Count",
    "Current",
    "CurrentIndex",
    "CurrentMember",
    "CurrentOrdinal",
    "DataMember",
    "DefaultMember",
    "Dimension",
    "FirstChild",
    "FirstSibling",
    "Hierarchy",
    "Ignore",
    "LastChild",
    "LastSibling",
    "Level",
    "Levels",
    "Members",
    "MemberValue",
    "Name",
    "NextMember",
    "Ordinal",
    "Parent",
    "PrevMember",
    "Siblings",
    "UniqueName",
    "UnknownMember",
    "Value",
];

/// Whether an unquoted name after a dot is parsed as a property (see [`crate::ast::Expr::Property`]).
pub fn is_dot_property(name: &str) -> bool {
    DOT_PROPERTIES.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// Whether `word` is a keyword that can never be an unquoted name at the start of an
/// expression or object name (such names must be bracketed: `[Select]`).
pub(crate) fn is_hard_keyword(word: &str) -> bool {
    Keyword::lookup(word).is_some_and(|kw| !soft_keyword(kw))
}

/// Keywords that may still be used as a function name or the first part of a name when
/// directly followed by `(` or `.` (e.g. `Axis(0)`, `Dimension.Name`).
fn soft_keyword(kw: Keyword) -> bool {
    matches!(
        kw,
        Keyword::Axis
            | Keyword::Properties
            | Keyword::Dimension
            | Keyword::Member
            | Keyword::Set
            | Keyword::Cell
            | Keyword::Calculation
            | Keyword::Columns
            | Keyword::Rows
            | Keyword::Pages
            | Keyword::Chapters
            | Keyword::Sections
            | Keyword::Empty
            | Keyword::Session
            | Keyword::Maxrows
            | Keyword::Firstrowset
    )
}

pub(crate) struct Parser<'a> {
    /// The complete original source (also for sub-parsers of quoted formulas).
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    /// End offset of the last consumed token.
    prev_end: usize,
    nesting: usize,
    /// Height of the expression tree most recently produced.
    h: usize,
    /// Disables `expr AS alias` (used in `CELL CALCULATION ... FOR x AS y`).
    no_alias: bool,
    /// Parsing the content of a quoted formula (affects how end of input is described).
    in_formula: bool,
}

type PResult<T> = Result<T, ParseError>;

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> PResult<Parser<'a>> {
        let tokens = tokenize_at(src, 0, 1, 1)?;
        Ok(Parser {
            src,
            tokens,
            pos: 0,
            prev_end: 0,
            nesting: 0,
            h: 0,
            no_alias: false,
            in_formula: false,
        })
    }

    // ----- token helpers -------------------------------------------------------------------

    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_kind(&self) -> &TokenKind {
        &self.peek().kind
    }

    fn peek_nth_kind(&self, n: usize) -> &TokenKind {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)].kind
    }

    /// Consume and return the next token (the end-of-input token is never consumed). The parser
    /// never looks back, so the token's payload is moved out rather than cloned.
    fn next(&mut self) -> Token {
        let idx = self.pos.min(self.tokens.len() - 1);
        let t = &mut self.tokens[idx];
        if matches!(t.kind, TokenKind::Eof) {
            return t.clone();
        }
        self.pos += 1;
        self.prev_end = t.span.end;
        Token {
            kind: std::mem::replace(&mut t.kind, TokenKind::Comma),
            span: t.span,
        }
    }

    fn peek_keyword(&self, kw: Keyword) -> bool {
        self.peek_kind().keyword() == Some(kw)
    }

    fn eat_keyword(&mut self, kw: Keyword) -> bool {
        if self.peek_keyword(kw) {
            self.next();
            true
        } else {
            false
        }
    }

    /// Whether the next token is the unquoted word `w` (case-insensitive, keyword or not).
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek_kind(), TokenKind::Word { value, .. } if value.eq_ignore_ascii_case(w))
    }

    fn eat_kind(&mut self, kind: &TokenKind) -> bool {
        if self.peek_kind() == kind {
            self.next();
            true
        } else {
            false
        }
    }

    fn span_from(&self, start: Span) -> Span {
        Span {
            start: start.start,
            end: self.prev_end.max(start.end),
            line: start.line,
            column: start.column,
        }
    }

    /// Error at the next token: `expected A or B <context>, found X`.
    fn expected<T>(&self, expected: &[&str], context: &str) -> PResult<T> {
        let t = self.peek();
        let list = join_alternatives(expected);
        let ctx = if context.is_empty() {
            String::new()
        } else {
            format!(" {context}")
        };
        let found = if self.in_formula && t.kind == TokenKind::Eof {
            "end of quoted formula".to_string()
        } else {
            t.kind.to_string()
        };
        Err(ParseError {
            line: t.span.line,
            column: t.span.column,
            offset: t.span.start,
            message: format!("expected {list}{ctx}, found {found}"),
            expected: expected.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn error_at<T>(&self, span: Span, message: String) -> PResult<T> {
        Err(ParseError {
            line: span.line,
            column: span.column,
            offset: span.start,
            message,
            expected: vec![],
        })
    }

    fn expect_kind(&mut self, kind: &TokenKind, context: &str) -> PResult<Token> {
        if self.peek_kind() == kind {
            Ok(self.next())
        } else {
            let s = kind.to_string();
            self.expected(&[s.as_str()], context)
        }
    }

    fn expect_keyword(&mut self, kw: Keyword, context: &str) -> PResult<Token> {
        if self.peek_keyword(kw) {
            Ok(self.next())
        } else {
            let s = kw.as_str();
            self.expected(&[s], context)
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            let span = self.peek().span;
            return self.error_at(
                span,
                format!("query is nested too deeply (maximum {MAX_NESTING} levels)"),
            );
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    /// Record that the expression just built has height `h`; fails if it is too tall.
    fn set_height(&mut self, h: usize, at: Span) -> PResult<()> {
        self.h = h;
        if h > MAX_TREE_HEIGHT {
            return self.error_at(
                at,
                format!("expression is too complex (maximum tree height {MAX_TREE_HEIGHT})"),
            );
        }
        Ok(())
    }

    fn at_end(&mut self, context: &str) -> PResult<()> {
        self.eat_kind(&TokenKind::Semicolon);
        if matches!(self.peek_kind(), TokenKind::Eof) {
            Ok(())
        } else {
            self.expected(&["end of input"], context)
        }
    }

    // ----- entry points --------------------------------------------------------------------

    pub(crate) fn parse_standalone_expression(&mut self) -> PResult<Expr> {
        let e = self.parse_expr()?;
        self.at_end("after expression")?;
        Ok(e)
    }

    pub(crate) fn parse_standalone_statement(&mut self) -> PResult<Statement> {
        let st = self.parse_statement()?;
        self.at_end("after statement")?;
        Ok(st)
    }

    /// Statements separated by `;` (empty statements between semicolons are skipped). As in
    /// SSAS, several statements in one command must all be `CREATE`, `DROP` or `REFRESH CUBE`
    /// (MDX script commands); a `SELECT` or `DRILLTHROUGH` must be alone.
    pub(crate) fn parse_standalone_statements(&mut self) -> PResult<Vec<Statement>> {
        let mut out: Vec<(Statement, Span)> = Vec::new();
        loop {
            while self.eat_kind(&TokenKind::Semicolon) {}
            if matches!(self.peek_kind(), TokenKind::Eof) {
                break;
            }
            let start = self.peek().span;
            let st = self.parse_statement()?;
            out.push((st, start));
            if matches!(self.peek_kind(), TokenKind::Eof) {
                break;
            }
            if !matches!(self.peek_kind(), TokenKind::Semicolon) {
                return self.expected(&["';'", "end of input"], "after statement");
            }
        }
        if out.is_empty() {
            return self.expected(
                &["SELECT", "WITH", "DRILLTHROUGH", "CREATE", "DROP", "REFRESH"],
                "at start of statement",
            );
        }
        if out.len() > 1
            && let Some((st, at)) = out
                .iter()
                .find(|(st, _)| matches!(st, Statement::Select(_) | Statement::Drillthrough(_)))
        {
            let what = if matches!(st, Statement::Select(_)) {
                "SELECT"
            } else {
                "DRILLTHROUGH"
            };
            return self.error_at(
                *at,
                format!(
                    "a {what} statement must be alone in its command; only CREATE, DROP and REFRESH CUBE statements can be combined with ';'"
                ),
            );
        }
        Ok(out.into_iter().map(|(st, _)| st).collect())
    }

    fn parse_statement(&mut self) -> PResult<Statement> {
        match self.peek_kind().keyword() {
            Some(Keyword::Select | Keyword::With) => Ok(Statement::Select(Box::new(self.parse_select()?))),
            Some(Keyword::Drillthrough) => Ok(Statement::Drillthrough(Box::new(self.parse_drillthrough()?))),
            Some(Keyword::Create) => Ok(Statement::Create(Box::new(self.parse_create()?))),
            Some(Keyword::Drop) => Ok(Statement::Drop(Box::new(self.parse_drop()?))),
            None if self.peek_word("REFRESH") => Ok(Statement::Refresh(Box::new(self.parse_refresh()?))),
            _ => self.expected(
                &["SELECT", "WITH", "DRILLTHROUGH", "CREATE", "DROP", "REFRESH CUBE"],
                "at start of statement",
            ),
        }
    }

    // ----- statements ----------------------------------------------------------------------

    fn parse_select(&mut self) -> PResult<Select> {
        self.enter()?;
        let start = self.peek().span;
        let mut with = Vec::new();
        if self.eat_keyword(Keyword::With) {
            loop {
                with.push(self.parse_definition("in WITH clause")?);
                // Definitions may be separated by commas.
                if matches!(self.peek_kind(), TokenKind::Comma) && self.definition_starts_at(1) {
                    self.next();
                }
                if !self.definition_starts_at(0) {
                    break;
                }
            }
        }
        self.expect_keyword(
            Keyword::Select,
            if with.is_empty() {
                ""
            } else {
                "or another definition after WITH"
            },
        )?;
        let mut axes = Vec::new();
        let star =
            matches!(self.peek_kind(), TokenKind::Star) && self.peek_nth_kind(1).keyword() == Some(Keyword::From);
        if star {
            self.next();
        } else if !self.peek_keyword(Keyword::From) {
            loop {
                axes.push(self.parse_axis()?);
                if !self.eat_kind(&TokenKind::Comma) {
                    break;
                }
            }
        }
        if !self.peek_keyword(Keyword::From) {
            return self.expected(&["','", "FROM"], "after axis");
        }
        self.next();
        let from = self.parse_cube_source()?;
        let where_clause = if self.eat_keyword(Keyword::Where) {
            Some(self.parse_expr()?)
        } else {
            None
        };
        let mut cell_properties = Vec::new();
        let cell_kw = self.peek_keyword(Keyword::Cell) && self.peek_nth_kind(1).keyword() == Some(Keyword::Properties);
        if cell_kw || self.peek_keyword(Keyword::Properties) {
            if cell_kw {
                self.next();
            }
            self.next();
            loop {
                cell_properties.push(self.parse_ident("cell property name")?);
                if !self.eat_kind(&TokenKind::Comma) {
                    break;
                }
            }
        }
        self.leave();
        Ok(Select {
            with,
            star,
            axes,
            from,
            where_clause,
            cell_properties,
            span: self.span_from(start),
        })
    }

    fn parse_cube_source(&mut self) -> PResult<CubeSource> {
        let start = self.peek().span;
        let non_visual = self.peek_keyword(Keyword::Non)
            && matches!(self.peek_nth_kind(1), TokenKind::Word { value, .. } if value.eq_ignore_ascii_case("VISUAL"));
        if non_visual {
            self.next();
            self.next();
            if !matches!(self.peek_kind(), TokenKind::LParen) {
                return self.expected(&["'('"], "after NON VISUAL");
            }
        }
        if matches!(self.peek_kind(), TokenKind::LParen) {
            self.next();
            if !matches!(self.peek_kind().keyword(), Some(Keyword::Select | Keyword::With)) {
                return self.expected(&["SELECT"], "in subselect");
            }
            let select = self.parse_select()?;
            self.expect_kind(&TokenKind::RParen, "to close subselect")?;
            Ok(CubeSource::Subselect {
                select: Box::new(select),
                non_visual,
                span: self.span_from(start),
            })
        } else {
            match self.peek_kind() {
                TokenKind::QuotedIdent(_) | TokenKind::Word { keyword: None, .. } => {
                    Ok(CubeSource::Cube(self.parse_object_name("cube name")?))
                }
                _ => self.expected(&["cube name", "'('"], "after FROM"),
            }
        }
    }

    fn parse_axis(&mut self) -> PResult<Axis> {
        let start = self.peek().span;
        let non_empty = if self.peek_keyword(Keyword::Non) {
            self.next();
            self.expect_keyword(Keyword::Empty, "after NON")?;
            true
        } else {
            false
        };
        let expr = self.parse_expr()?;
        let mut dimension_properties = Vec::new();
        let has_dim = self.eat_keyword(Keyword::Dimension);
        if has_dim || self.peek_keyword(Keyword::Properties) {
            self.expect_keyword(Keyword::Properties, "after DIMENSION")?;
            loop {
                dimension_properties.push(self.parse_object_name("dimension property name")?);
                if !self.eat_kind(&TokenKind::Comma) {
                    break;
                }
            }
        }
        if !self.eat_keyword(Keyword::On) {
            return if dimension_properties.is_empty() {
                self.expected(&["ON", "DIMENSION PROPERTIES"], "after axis expression")
            } else {
                self.expected(&["ON", "','"], "after dimension property")
            };
        }
        let name = self.parse_axis_name()?;
        Ok(Axis {
            non_empty,
            expr,
            dimension_properties,
            name,
            span: self.span_from(start),
        })
    }

    fn parse_axis_name(&mut self) -> PResult<AxisName> {
        let t = self.peek().clone();
        let name = match &t.kind {
            TokenKind::Word { keyword: Some(kw), .. } => match kw {
                Keyword::Columns => AxisName::Columns,
                Keyword::Rows => AxisName::Rows,
                Keyword::Pages => AxisName::Pages,
                Keyword::Chapters => AxisName::Chapters,
                Keyword::Sections => AxisName::Sections,
                Keyword::Axis => {
                    self.next();
                    self.expect_kind(&TokenKind::LParen, "after AXIS")?;
                    let n = self.parse_axis_number()?;
                    self.expect_kind(&TokenKind::RParen, "after axis number")?;
                    return Ok(AxisName::Number(n));
                }
                _ => return self.axis_name_error(),
            },
            TokenKind::Number(_) => return Ok(AxisName::Number(self.parse_axis_number()?)),
            _ => return self.axis_name_error(),
        };
        self.next();
        Ok(name)
    }

    fn axis_name_error<T>(&self) -> PResult<T> {
        self.expected(
            &[
                "COLUMNS",
                "ROWS",
                "PAGES",
                "CHAPTERS",
                "SECTIONS",
                "AXIS(n)",
                "axis number",
            ],
            "after ON",
        )
    }

    fn parse_axis_number(&mut self) -> PResult<u32> {
        let t = self.peek().clone();
        if let TokenKind::Number(s) = &t.kind {
            // Accept `1` and `1.0`.
            let int = s.strip_suffix(".0").unwrap_or(s);
            if let Some(n) = int.parse::<u32>().ok().filter(|&n| n <= 127) {
                self.next();
                return Ok(n);
            }
            return self.error_at(
                t.span,
                format!("invalid axis number '{s}' (expected an integer 0..127)"),
            );
        }
        self.expected(&["axis number"], "")
    }

    fn parse_u64(&mut self, context: &str) -> PResult<u64> {
        let t = self.peek().clone();
        if let TokenKind::Number(s) = &t.kind {
            if let Ok(n) = s.parse::<u64>() {
                self.next();
                return Ok(n);
            }
            return self.error_at(
                t.span,
                format!("expected a non-negative integer {context}, found '{s}'"),
            );
        }
        self.expected(&["integer"], context)
    }

    fn parse_drillthrough(&mut self) -> PResult<Drillthrough> {
        let start = self.next().span;
        let mut max_rows = None;
        let mut first_rowset = None;
        loop {
            if max_rows.is_none() && self.eat_keyword(Keyword::Maxrows) {
                max_rows = Some(self.parse_u64("after MAXROWS")?);
            } else if first_rowset.is_none() && self.eat_keyword(Keyword::Firstrowset) {
                first_rowset = Some(self.parse_u64("after FIRSTROWSET")?);
            } else {
                break;
            }
        }
        if !matches!(self.peek_kind().keyword(), Some(Keyword::Select | Keyword::With)) {
            return self.expected(&["SELECT", "MAXROWS", "FIRSTROWSET"], "after DRILLTHROUGH");
        }
        let select = self.parse_select()?;
        let mut returns = Vec::new();
        if self.eat_keyword(Keyword::Return) {
            loop {
                returns.push(self.parse_expr()?);
                if !self.eat_kind(&TokenKind::Comma) {
                    break;
                }
            }
        }
        Ok(Drillthrough {
            max_rows,
            first_rowset,
            select,
            returns,
            span: self.span_from(start),
        })
    }

    fn parse_create(&mut self) -> PResult<Create> {
        let start = self.next().span;
        let session = self.eat_keyword(Keyword::Session);
        let mut definitions = Vec::new();
        loop {
            definitions.push(self.parse_definition("after CREATE")?);
            if matches!(self.peek_kind(), TokenKind::Comma) && self.definition_starts_at(1) {
                self.next();
            }
            if !self.definition_starts_at(0) {
                break;
            }
        }
        Ok(Create {
            session,
            definitions,
            span: self.span_from(start),
        })
    }

    fn parse_drop(&mut self) -> PResult<Drop> {
        let start = self.next().span;
        let kind = if self.eat_keyword(Keyword::Member) {
            DropKind::Member
        } else if self.eat_keyword(Keyword::Set) {
            DropKind::Set
        } else {
            return self.expected(&["MEMBER", "SET"], "after DROP");
        };
        let mut names = Vec::new();
        loop {
            names.push(self.parse_object_name("name")?);
            if !self.eat_kind(&TokenKind::Comma) {
                break;
            }
        }
        Ok(Drop {
            kind,
            names,
            span: self.span_from(start),
        })
    }

    fn parse_refresh(&mut self) -> PResult<Refresh> {
        let start = self.next().span;
        if !self.peek_word("CUBE") {
            return self.expected(&["CUBE"], "after REFRESH");
        }
        self.next();
        let cube = self.parse_object_name("cube name")?;
        Ok(Refresh {
            cube,
            span: self.span_from(start),
        })
    }

    // ----- definitions ---------------------------------------------------------------------

    /// Whether a calculation definition starts `n` tokens ahead.
    fn definition_starts_at(&self, n: usize) -> bool {
        match self.peek_nth_kind(n) {
            TokenKind::Word {
                keyword: Some(Keyword::Member | Keyword::Set),
                ..
            } => true,
            TokenKind::Word {
                keyword: Some(Keyword::Cell),
                ..
            } => self.peek_nth_kind(n + 1).keyword() == Some(Keyword::Calculation),
            TokenKind::Word { value, keyword: None } => {
                ["HIDDEN", "STATIC", "DYNAMIC", "CALCULATED"]
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(value))
                    && matches!(
                        self.peek_nth_kind(n + 1),
                        TokenKind::Word {
                            keyword: Some(Keyword::Member | Keyword::Set),
                            ..
                        } | TokenKind::Word { keyword: None, .. }
                    )
            }
            _ => false,
        }
    }

    fn parse_definition(&mut self, context: &str) -> PResult<Definition> {
        let start = self.peek().span;
        let mut hidden = false;
        let mut kind = None;
        loop {
            if self.peek_word("HIDDEN") && !hidden {
                hidden = true;
            } else if self.peek_word("STATIC") && kind.is_none() {
                kind = Some(SetKind::Static);
            } else if self.peek_word("DYNAMIC") && kind.is_none() {
                kind = Some(SetKind::Dynamic);
            } else if self.peek_word("CALCULATED") {
                // `CREATE CALCULATED MEMBER` is accepted and means the same as `CREATE MEMBER`.
            } else {
                break;
            }
            self.next();
        }
        if self.peek_keyword(Keyword::Member) && kind.is_none() {
            self.next();
            let name = self.parse_object_name("member name")?;
            self.expect_keyword(Keyword::As, "after calculated member name")?;
            let (expr, expr_quoted) = self.parse_formula()?;
            let properties = self.parse_definition_properties()?;
            Ok(Definition::Member(MemberDefinition {
                name,
                hidden,
                expr,
                expr_quoted,
                properties,
                span: self.span_from(start),
            }))
        } else if self.peek_keyword(Keyword::Set) {
            self.next();
            let name = self.parse_object_name("set name")?;
            self.expect_keyword(Keyword::As, "after set name")?;
            let (expr, expr_quoted) = self.parse_formula()?;
            let properties = self.parse_definition_properties()?;
            Ok(Definition::Set(SetDefinition {
                name,
                hidden,
                kind,
                expr,
                expr_quoted,
                properties,
                span: self.span_from(start),
            }))
        } else if self.peek_keyword(Keyword::Cell) && !hidden && kind.is_none() {
            self.next();
            self.expect_keyword(Keyword::Calculation, "after CELL")?;
            let name = self.parse_object_name("cell calculation name")?;
            if !self.peek_word("FOR") {
                return self.expected(&["FOR"], "after cell calculation name");
            }
            self.next();
            let saved = self.no_alias;
            self.no_alias = true;
            let for_result = self.parse_formula();
            self.no_alias = saved;
            let (for_expr, for_quoted) = for_result?;
            self.expect_keyword(Keyword::As, "after cell calculation subcube")?;
            let (expr, expr_quoted) = self.parse_formula()?;
            let properties = self.parse_definition_properties()?;
            Ok(Definition::CellCalculation(CellCalculationDefinition {
                name,
                for_expr,
                for_quoted,
                expr,
                expr_quoted,
                properties,
                span: self.span_from(start),
            }))
        } else if kind.is_some() {
            self.expected(&["SET"], "after STATIC/DYNAMIC")
        } else if hidden {
            self.expected(&["MEMBER", "SET"], "after HIDDEN")
        } else {
            self.expected(&["MEMBER", "SET", "CELL CALCULATION"], context)
        }
    }

    /// The formula after `AS` (or `FOR`): either an expression or a single-quoted string
    /// containing one (legacy syntax); returns the expression and whether it was quoted.
    fn parse_formula(&mut self) -> PResult<(Expr, bool)> {
        if let TokenKind::String { value, single: true } = self.peek_kind() {
            let ends = matches!(
                self.peek_nth_kind(1),
                TokenKind::Comma | TokenKind::Eof | TokenKind::Semicolon
            ) || matches!(
                self.peek_nth_kind(1).keyword(),
                Some(Keyword::Member | Keyword::Set | Keyword::Cell | Keyword::Select | Keyword::As)
            ) || matches!(self.peek_nth_kind(1), TokenKind::Word { value, keyword: None }
                    if ["HIDDEN", "STATIC", "DYNAMIC"].iter().any(|w| w.eq_ignore_ascii_case(value)));
            if ends {
                let value = value.clone();
                let t = self.next();
                let e = self.parse_quoted_formula(&value, t.span)?;
                return Ok((e, true));
            }
        }
        Ok((self.parse_expr()?, false))
    }

    /// Parse the content of a single-quoted formula; `span` is the string token. Token and error
    /// positions are mapped back onto the original source (accounting for `''` escapes).
    fn parse_quoted_formula(&mut self, value: &str, span: Span) -> PResult<Expr> {
        let raw_start = span.start + 1;
        let raw = self.src.get(raw_start..span.end.saturating_sub(1)).unwrap_or("");
        // Unescaped positions at which a doubled quote was collapsed.
        let mut escapes = Vec::new();
        let mut out_len = 0;
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' && chars.peek() == Some(&'\'') {
                chars.next();
                escapes.push(out_len);
            }
            out_len += c.len_utf8();
        }
        let map = |i: usize| raw_start + i + escapes.partition_point(|&p| p < i);
        let src = self.src;
        // Walks forward through the source computing line/column of increasing offsets.
        let mut cursor = (span.start, span.line, span.column);
        let mut advance = |target: usize| {
            while cursor.0 < target {
                let Some(c) = src.get(cursor.0..).and_then(|r| r.chars().next()) else {
                    break;
                };
                cursor.0 += c.len_utf8();
                if c == '\n' {
                    cursor.1 += 1;
                    cursor.2 = 1;
                } else {
                    cursor.2 += 1;
                }
            }
            (cursor.1, cursor.2)
        };
        let mut tokens = match tokenize_at(value, 0, 1, 1) {
            Ok(t) => t,
            Err(mut e) => {
                e.offset = map(e.offset);
                (e.line, e.column) = advance(e.offset);
                return Err(e);
            }
        };
        for t in &mut tokens {
            let start = map(t.span.start);
            let (line, column) = advance(start);
            t.span = Span {
                start,
                end: map(t.span.end),
                line,
                column,
            };
        }
        let mut sub = Parser {
            src: self.src,
            tokens,
            pos: 0,
            prev_end: raw_start,
            nesting: self.nesting,
            h: 0,
            // The quotes delimit the formula, so `x AS y` inside is always an alias.
            no_alias: false,
            in_formula: true,
        };
        let e = sub.parse_expr()?;
        if !matches!(sub.peek_kind(), TokenKind::Eof) {
            return sub.expected(&["operator", "end of quoted formula"], "");
        }
        Ok(e)
    }

    fn parse_definition_properties(&mut self) -> PResult<Vec<DefinitionProperty>> {
        let mut props = Vec::new();
        while matches!(self.peek_kind(), TokenKind::Comma) && !self.definition_starts_at(1) {
            self.next();
            let start = self.peek().span;
            let name = self.parse_ident("property name")?;
            self.expect_kind(&TokenKind::Eq, "after property name")?;
            let value = self.parse_expr()?;
            props.push(DefinitionProperty {
                name,
                value,
                span: self.span_from(start),
            });
        }
        Ok(props)
    }

    // ----- names ---------------------------------------------------------------------------

    /// A single name: any word (keywords included) or a bracketed identifier.
    fn parse_ident(&mut self, what: &str) -> PResult<Ident> {
        let t = self.peek().clone();
        match t.kind {
            TokenKind::Word { value, .. } => {
                self.next();
                Ok(Ident {
                    value,
                    quoted: false,
                    span: t.span,
                })
            }
            TokenKind::QuotedIdent(value) => {
                self.next();
                Ok(Ident {
                    value,
                    quoted: true,
                    span: t.span,
                })
            }
            _ => self.expected(&[what], ""),
        }
    }

    /// A dotted name like `[Measures].[Profit]` or `CURRENTCUBE.[Set]` (no function calls).
    fn parse_object_name(&mut self, what: &str) -> PResult<ObjectName> {
        let t = self.peek().clone();
        let first = match t.kind {
            TokenKind::Word { keyword: Some(kw), .. } if !soft_keyword(kw) => return self.expected(&[what], ""),
            TokenKind::Word { value, .. } => Segment::Name {
                text: value,
                quoted: false,
                span: t.span,
            },
            TokenKind::QuotedIdent(text) => Segment::Name {
                text,
                quoted: true,
                span: t.span,
            },
            _ => return self.expected(&[what], ""),
        };
        self.next();
        let mut segments = vec![first];
        loop {
            if matches!(self.peek_kind(), TokenKind::Dot) {
                self.next();
                let t = self.peek().clone();
                let seg = match t.kind {
                    TokenKind::Word { value, .. } => Segment::Name {
                        text: value,
                        quoted: false,
                        span: t.span,
                    },
                    TokenKind::QuotedIdent(text) => Segment::Name {
                        text,
                        quoted: true,
                        span: t.span,
                    },
                    TokenKind::Key(text) => Segment::Key { text, span: t.span },
                    _ => return self.expected(&["name", "key"], "after '.'"),
                };
                self.next();
                segments.push(seg);
            } else if matches!(self.peek_kind(), TokenKind::Key(_))
                && matches!(
                    segments.last(),
                    Some(Segment::Key { .. } | Segment::CompositeKey { .. })
                )
            {
                self.merge_composite_key(&mut segments);
            } else {
                break;
            }
        }
        let span = self.span_from(t.span);
        Ok(ObjectName { segments, span })
    }

    /// The next token is a key directly following a key segment: `&[a]&[b]`.
    fn merge_composite_key(&mut self, segments: &mut [Segment]) {
        let t = self.next();
        let TokenKind::Key(text) = t.kind else { return };
        if let Some(last) = segments.last_mut() {
            let new = match std::mem::replace(
                last,
                Segment::Key {
                    text: String::new(),
                    span: Span::EMPTY,
                },
            ) {
                Segment::Key { text: first, span } => Segment::CompositeKey {
                    parts: vec![first, text],
                    span: span.union(t.span),
                },
                Segment::CompositeKey { mut parts, span } => {
                    parts.push(text);
                    Segment::CompositeKey {
                        parts,
                        span: span.union(t.span),
                    }
                }
                other => other,
            };
            *last = new;
        }
    }

    // ----- expressions ---------------------------------------------------------------------

    pub(crate) fn parse_expr(&mut self) -> PResult<Expr> {
        self.parse_expr_bp(0)
    }

    fn parse_expr_bp(&mut self, min_bp: u8) -> PResult<Expr> {
        self.enter()?;
        let result = self.parse_expr_bp_inner(min_bp);
        self.leave();
        result
    }

    fn parse_expr_bp_inner(&mut self, min_bp: u8) -> PResult<Expr> {
        let mut lhs = self.parse_prefix()?;
        let mut h = self.h;
        loop {
            let binary = match self.peek_kind() {
                TokenKind::Plus => Some(BinaryOp::Add),
                TokenKind::Minus => Some(BinaryOp::Sub),
                TokenKind::Concat => Some(BinaryOp::Concat),
                TokenKind::Star => Some(BinaryOp::Mul),
                TokenKind::Slash => Some(BinaryOp::Div),
                TokenKind::Caret => Some(BinaryOp::Pow),
                TokenKind::Eq => Some(BinaryOp::Eq),
                TokenKind::NotEq => Some(BinaryOp::NotEq),
                TokenKind::Lt => Some(BinaryOp::Lt),
                TokenKind::LtEq => Some(BinaryOp::LtEq),
                TokenKind::Gt => Some(BinaryOp::Gt),
                TokenKind::GtEq => Some(BinaryOp::GtEq),
                TokenKind::Word {
                    keyword: Some(Keyword::And),
                    ..
                } => Some(BinaryOp::And),
                TokenKind::Word {
                    keyword: Some(Keyword::Or),
                    ..
                } => Some(BinaryOp::Or),
                TokenKind::Word {
                    keyword: Some(Keyword::Xor),
                    ..
                } => Some(BinaryOp::Xor),
                _ => None,
            };
            if let Some(op) = binary {
                let bp = binary_bp(op);
                if bp < min_bp {
                    break;
                }
                let op_span = self.next().span;
                let right = self.parse_expr_bp(bp + 1)?;
                h = h.max(self.h) + 1;
                self.set_height(h, op_span)?;
                let span = lhs.span().union(right.span());
                lhs = Expr::Binary {
                    left: Box::new(lhs),
                    op,
                    right: Box::new(right),
                    span,
                };
                continue;
            }
            match self.peek_kind() {
                TokenKind::Colon if BP_RANGE >= min_bp => {
                    let op_span = self.next().span;
                    let end = self.parse_expr_bp(BP_RANGE + 1)?;
                    h = h.max(self.h) + 1;
                    self.set_height(h, op_span)?;
                    let span = lhs.span().union(end.span());
                    lhs = Expr::Range {
                        start: Box::new(lhs),
                        end: Box::new(end),
                        span,
                    };
                }
                TokenKind::Word {
                    keyword: Some(Keyword::As),
                    ..
                } if BP_AS >= min_bp
                    && !self.no_alias
                    && matches!(
                        self.peek_nth_kind(1),
                        TokenKind::Word { keyword: None, .. } | TokenKind::QuotedIdent(_)
                    ) =>
                {
                    let op_span = self.next().span;
                    h += 1;
                    self.set_height(h, op_span)?;
                    let alias = self.parse_ident("alias")?;
                    let span = lhs.span().union(alias.span);
                    lhs = Expr::Alias {
                        expr: Box::new(lhs),
                        alias,
                        span,
                    };
                }
                TokenKind::Word {
                    keyword: Some(Keyword::Is),
                    ..
                } if BP_IS >= min_bp => {
                    let op_span = self.next().span;
                    let target = if self.peek_keyword(Keyword::Null) {
                        self.next();
                        IsTarget::Null
                    } else if self.peek_keyword(Keyword::Empty) {
                        self.next();
                        IsTarget::Empty
                    } else {
                        let e = self.parse_expr_bp(BP_IS + 1)?;
                        h = h.max(self.h);
                        IsTarget::Expr(Box::new(e))
                    };
                    h += 1;
                    self.set_height(h, op_span)?;
                    let span = self.span_from(lhs.span());
                    lhs = Expr::Is {
                        expr: Box::new(lhs),
                        target,
                        span,
                    };
                }
                _ => break,
            }
        }
        self.h = h;
        Ok(lhs)
    }

    fn parse_prefix(&mut self) -> PResult<Expr> {
        let t = self.peek().clone();
        let op = match &t.kind {
            TokenKind::Minus => Some(UnaryOp::Minus),
            TokenKind::Plus => Some(UnaryOp::Plus),
            TokenKind::Word {
                keyword: Some(Keyword::Not),
                ..
            } => Some(UnaryOp::Not),
            TokenKind::Word {
                keyword: Some(Keyword::Existing),
                ..
            } => Some(UnaryOp::Existing),
            _ => None,
        };
        if let Some(op) = op {
            self.next();
            let operand = self.parse_expr_bp(unary_operand_bp(op))?;
            self.set_height(self.h + 1, t.span)?;
            let span = t.span.union(operand.span());
            return Ok(Expr::Unary {
                op,
                expr: Box::new(operand),
                span,
            });
        }
        let primary = self.parse_primary()?;
        self.parse_postfix(primary)
    }

    fn parse_primary(&mut self) -> PResult<Expr> {
        // Leaves have height 1; composite branches below overwrite it.
        self.h = 1;
        let span = self.peek().span;
        match self.peek_kind() {
            TokenKind::Number(_) | TokenKind::String { .. } | TokenKind::Parameter(_) | TokenKind::QuotedIdent(_) => {
                Ok(match self.next().kind {
                    TokenKind::Number(s) => Expr::Literal {
                        value: Literal::Number(s),
                        span,
                    },
                    TokenKind::String { value, .. } => Expr::Literal {
                        value: Literal::String(value),
                        span,
                    },
                    TokenKind::Parameter(name) => Expr::Parameter { name, span },
                    TokenKind::QuotedIdent(text) => Expr::Identifier(ObjectName {
                        segments: vec![Segment::Name {
                            text,
                            quoted: true,
                            span,
                        }],
                        span,
                    }),
                    _ => return self.error_at(span, "internal error: unexpected token".into()),
                })
            }
            TokenKind::LParen => {
                self.next();
                let items = self.parse_expr_list(&TokenKind::RParen, "in parenthesised expression or tuple")?;
                self.set_height(self.h + 1, span)?;
                let span = self.span_from(span);
                if items.len() == 1 {
                    match items.into_iter().next() {
                        Some(expr) => Ok(Expr::Nested {
                            expr: Box::new(expr),
                            span,
                        }),
                        None => self.error_at(span, "empty parentheses".into()),
                    }
                } else {
                    Ok(Expr::Tuple { items, span })
                }
            }
            TokenKind::LBrace => {
                self.next();
                if self.eat_kind(&TokenKind::RBrace) {
                    return Ok(Expr::Set {
                        items: vec![],
                        span: self.span_from(span),
                    });
                }
                let items = self.parse_expr_list(&TokenKind::RBrace, "in set")?;
                self.set_height(self.h + 1, span)?;
                Ok(Expr::Set {
                    items,
                    span: self.span_from(span),
                })
            }
            TokenKind::Word {
                keyword: Some(Keyword::Null),
                ..
            } => {
                self.next();
                Ok(Expr::Literal {
                    value: Literal::Null,
                    span,
                })
            }
            TokenKind::Word {
                keyword: Some(Keyword::Case),
                ..
            } => self.parse_case(),
            TokenKind::Word { keyword, .. } => {
                let is_name = match keyword {
                    None => true,
                    Some(kw) => {
                        soft_keyword(*kw) && matches!(self.peek_nth_kind(1), TokenKind::LParen | TokenKind::Dot)
                    }
                };
                if !is_name {
                    return self.expected(&["expression"], "");
                }
                let TokenKind::Word { value, .. } = self.next().kind else {
                    return self.error_at(span, "internal error: unexpected token".into());
                };
                if matches!(self.peek_kind(), TokenKind::LParen) {
                    let name = Ident {
                        value,
                        quoted: false,
                        span,
                    };
                    let args = self.parse_call_args(&name.value)?;
                    self.set_height(self.h + 1, span)?;
                    return Ok(Expr::Function {
                        name,
                        args,
                        span: self.span_from(span),
                    });
                }
                let seg = Segment::Name {
                    text: value,
                    quoted: false,
                    span,
                };
                Ok(Expr::Identifier(ObjectName {
                    segments: vec![seg],
                    span,
                }))
            }
            TokenKind::Key(text) => {
                let message = format!("expected expression, found key '&[{text}]' without a preceding name");
                self.error_at(span, message)
            }
            _ => self.expected(&["expression"], ""),
        }
    }

    /// `.Name`, `.Name(args)`, `.[Member]`, `.&[Key]` and composite keys after a primary.
    fn parse_postfix(&mut self, mut expr: Expr) -> PResult<Expr> {
        let mut h = self.h;
        loop {
            match self.peek_kind() {
                TokenKind::Dot => {
                    self.next();
                    if !matches!(
                        self.peek_kind(),
                        TokenKind::Word { .. } | TokenKind::QuotedIdent(_) | TokenKind::Key(_)
                    ) {
                        return self.expected(&["name", "key", "property or method"], "after '.'");
                    }
                    if matches!(self.peek_kind(), TokenKind::Key(_)) && !matches!(expr, Expr::Identifier(_)) {
                        let t = self.peek().clone();
                        let TokenKind::Key(text) = t.kind else { break };
                        return self.error_at(
                            t.span,
                            format!("a key reference '&[{text}]' must follow a member, level or hierarchy name"),
                        );
                    }
                    let t = self.next();
                    match t.kind {
                        TokenKind::Word { value, .. } => {
                            let name = Ident {
                                value,
                                quoted: false,
                                span: t.span,
                            };
                            if matches!(self.peek_kind(), TokenKind::LParen) {
                                let args = self.parse_call_args(&format!(".{}", name.value))?;
                                h = h.max(self.h) + 1;
                                self.set_height(h, t.span)?;
                                let span = self.span_from(expr.span());
                                expr = Expr::Method {
                                    object: Box::new(expr),
                                    name,
                                    args,
                                    span,
                                };
                            } else if is_dot_property(&name.value) || !matches!(expr, Expr::Identifier(_)) {
                                h += 1;
                                self.set_height(h, t.span)?;
                                let span = expr.span().union(name.span);
                                expr = Expr::Property {
                                    object: Box::new(expr),
                                    name,
                                    span,
                                };
                            } else if let Expr::Identifier(obj) = &mut expr {
                                obj.segments.push(Segment::Name {
                                    text: name.value,
                                    quoted: false,
                                    span: t.span,
                                });
                                obj.span = obj.span.union(t.span);
                            }
                        }
                        TokenKind::QuotedIdent(text) => {
                            if let Expr::Identifier(obj) = &mut expr {
                                obj.segments.push(Segment::Name {
                                    text,
                                    quoted: true,
                                    span: t.span,
                                });
                                obj.span = obj.span.union(t.span);
                            } else {
                                h += 1;
                                self.set_height(h, t.span)?;
                                let name = Ident {
                                    value: text,
                                    quoted: true,
                                    span: t.span,
                                };
                                let span = expr.span().union(t.span);
                                expr = Expr::Property {
                                    object: Box::new(expr),
                                    name,
                                    span,
                                };
                            }
                        }
                        TokenKind::Key(text) => {
                            if let Expr::Identifier(obj) = &mut expr {
                                obj.segments.push(Segment::Key { text, span: t.span });
                                obj.span = obj.span.union(t.span);
                            } else {
                                return self.error_at(
                                    t.span,
                                    format!(
                                        "a key reference '&[{text}]' must follow a member, level or hierarchy name"
                                    ),
                                );
                            }
                        }
                        _ => return self.expected(&["name", "key", "property or method"], "after '.'"),
                    }
                }
                TokenKind::Key(_) => {
                    let Expr::Identifier(obj) = &mut expr else { break };
                    if !matches!(
                        obj.segments.last(),
                        Some(Segment::Key { .. } | Segment::CompositeKey { .. })
                    ) {
                        break;
                    }
                    let mut segs = std::mem::take(&mut obj.segments);
                    self.merge_composite_key(&mut segs);
                    let end = self.prev_end;
                    if let Expr::Identifier(obj) = &mut expr {
                        obj.segments = segs;
                        obj.span.end = end;
                    }
                }
                _ => break,
            }
        }
        self.h = h;
        Ok(expr)
    }

    /// `(` args `)` where any argument may be omitted: `f(a,,b)`. `function` names the
    /// function for error messages.
    fn parse_call_args(&mut self, function: &str) -> PResult<Vec<Expr>> {
        let saved = std::mem::replace(&mut self.no_alias, false);
        let result = self.parse_call_args_inner(function);
        self.no_alias = saved;
        result
    }

    fn parse_call_args_inner(&mut self, function: &str) -> PResult<Vec<Expr>> {
        self.expect_kind(&TokenKind::LParen, "")?;
        if self.eat_kind(&TokenKind::RParen) {
            self.h = 0;
            return Ok(vec![]);
        }
        let mut args = Vec::new();
        let mut h = 1;
        loop {
            if matches!(self.peek_kind(), TokenKind::Comma | TokenKind::RParen) {
                let s = self.peek().span;
                args.push(Expr::Omitted {
                    span: Span {
                        start: s.start,
                        end: s.start,
                        line: s.line,
                        column: s.column,
                    },
                });
            } else {
                args.push(self.parse_expr()?);
                h = h.max(self.h);
            }
            if self.eat_kind(&TokenKind::Comma) {
                continue;
            }
            if self.eat_kind(&TokenKind::RParen) {
                break;
            }
            let function = shorten_name(function);
            return self.expected(&["')'", "','"], &format!("to close the argument list of {function}"));
        }
        self.h = h;
        Ok(args)
    }

    fn parse_expr_list(&mut self, close: &TokenKind, context: &str) -> PResult<Vec<Expr>> {
        // Inside brackets `x AS y` is always an alias, also in a CELL CALCULATION's FOR clause.
        let saved = std::mem::replace(&mut self.no_alias, false);
        let result = self.parse_expr_list_inner(close, context);
        self.no_alias = saved;
        result
    }

    fn parse_expr_list_inner(&mut self, close: &TokenKind, context: &str) -> PResult<Vec<Expr>> {
        let mut items = Vec::new();
        let mut h = 0;
        loop {
            items.push(self.parse_expr()?);
            h = h.max(self.h);
            if self.eat_kind(&TokenKind::Comma) {
                continue;
            }
            if self.eat_kind(close) {
                break;
            }
            let c = close.to_string();
            return self.expected(&[c.as_str(), "','"], context);
        }
        self.h = h;
        Ok(items)
    }

    fn parse_case(&mut self) -> PResult<Expr> {
        // CASE ... END brackets its parts: `x AS y` inside is an alias, also in a FOR clause.
        let saved = std::mem::replace(&mut self.no_alias, false);
        let result = self.parse_case_inner();
        self.no_alias = saved;
        result
    }

    fn parse_case_inner(&mut self) -> PResult<Expr> {
        let start = self.next().span;
        let mut h = 0;
        let operand = if self.peek_keyword(Keyword::When) {
            None
        } else {
            let e = self.parse_expr()?;
            h = self.h;
            Some(Box::new(e))
        };
        let mut whens = Vec::new();
        while self.peek_keyword(Keyword::When) {
            let ws = self.next().span;
            let condition = self.parse_expr()?;
            h = h.max(self.h);
            self.expect_keyword(Keyword::Then, "after WHEN condition")?;
            let result = self.parse_expr()?;
            h = h.max(self.h);
            whens.push(CaseWhen {
                condition,
                result,
                span: self.span_from(ws),
            });
        }
        if whens.is_empty() {
            return self.expected(&["WHEN"], "in CASE expression");
        }
        let else_result = if self.eat_keyword(Keyword::Else) {
            let e = self.parse_expr()?;
            h = h.max(self.h);
            Some(Box::new(e))
        } else {
            None
        };
        if !self.eat_keyword(Keyword::End) {
            return if else_result.is_some() {
                self.expected(&["END"], "to close CASE expression")
            } else {
                self.expected(&["WHEN", "ELSE", "END"], "in CASE expression")
            };
        }
        self.set_height(h + 2, start)?;
        Ok(Expr::Case {
            operand,
            whens,
            else_result,
            span: self.span_from(start),
        })
    }
}

/// A function name for an error message, cut to a readable length.
fn shorten_name(name: &str) -> String {
    if name.chars().count() > 40 {
        let mut t: String = name.chars().take(37).collect();
        t.push_str("...");
        t
    } else {
        name.to_string()
    }
}

fn join_alternatives(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}
