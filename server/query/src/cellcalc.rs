//! `WITH CELL CALCULATION name FOR 'subcube' AS 'formula' [, CONDITION = '…'] [, SOLVE_ORDER = n]`:
//! a formula for the cells of a subcube.
//!
//! The FOR clause is evaluated once, when the statement starts: a tuple of sets, one per
//! hierarchy (`({[Measures].[Sales]}, [Time].[1997].Children)`), is the subcube of their
//! crossjoin; hierarchies it does not name, and sets that are empty, do not restrict it. A
//! single set of tuples is those tuples. A cell in the subcube whose CONDITION holds is
//! computed by the formula in the cell's context, when the calculation has the highest solve
//! order among what may compute the cell (`Env::cell_calculations`). While a calculation's
//! CONDITION and formula are evaluated, the calculation itself is off: SSAS evaluates them
//! at the previous calculation pass, so `[Measures].CurrentMember * 2` doubles the cell.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use datakube_mdx::ast::{CellCalculationDefinition, Expr, Literal};

use crate::error::{QueryError, Result};
use crate::eval::Env;
use crate::space::{HierIdx, print_name};

/// A compiled cell calculation.
pub struct CellCalc {
    pub name: String,
    /// The subcube: a cell is in it when it is in one of the regions.
    regions: Vec<Region>,
    pub expr: Expr,
    pub condition: Option<Expr>,
    pub solve_order: i64,
    pub format_string: Option<String>,
    /// False while its own CONDITION or formula is evaluated.
    pub(crate) active: Cell<bool>,
}

/// Cells whose coordinate matches every factor (no factor: every cell).
struct Region {
    factors: Vec<Factor>,
}

enum Factor {
    /// The member of one hierarchy is one of these.
    One(HierIdx, HashSet<u32>),
    /// The members of these hierarchies form one of these tuples.
    Many(Vec<HierIdx>, HashSet<Vec<u32>>),
}

impl Factor {
    fn new(hiers: Vec<HierIdx>, tuples: HashSet<Vec<u32>>) -> Factor {
        if hiers.len() == 1 {
            Factor::One(hiers[0], tuples.into_iter().map(|t| t[0]).collect())
        } else {
            Factor::Many(hiers, tuples)
        }
    }

    fn matches(&self, coord: &[u32]) -> bool {
        match self {
            Factor::One(h, ids) => ids.contains(&coord[*h]),
            Factor::Many(hs, tuples) => tuples.contains(&hs.iter().map(|&h| coord[h]).collect::<Vec<_>>()),
        }
    }
}

impl CellCalc {
    /// Whether the calculation is on and the cell at `coord` is in its subcube (the CONDITION
    /// is checked when it computes the cell).
    pub fn applies_to(&self, coord: &[u32]) -> bool {
        self.active.get() && self.regions.iter().any(|r| r.factors.iter().all(|f| f.matches(coord)))
    }
}

fn unnest(e: &Expr) -> &Expr {
    match e {
        Expr::Nested { expr, .. } => unnest(expr),
        other => other,
    }
}

/// An expression property (`CONDITION = 'expr'` or `CONDITION = expr`).
fn expression_property(value: &Expr, what: &str) -> Result<Expr> {
    match value {
        Expr::Literal {
            value: Literal::String(text),
            ..
        } => datakube_mdx::parse_expression(text).map_err(|e| QueryError::Syntax(format!("{e} (in the {what})"))),
        other => Ok(other.clone()),
    }
}

/// Compile a `CELL CALCULATION`: evaluate its FOR clause and read its properties.
pub fn compile(
    env: &Env,
    def: &CellCalculationDefinition,
    solve_order: i64,
    format_string: Option<String>,
) -> Result<CellCalc> {
    let name = print_name(&def.name);
    let mut condition = None;
    for p in &def.properties {
        let pname = p.name.value.to_ascii_uppercase();
        match pname.as_str() {
            "CONDITION" => condition = Some(expression_property(&p.value, &format!("CONDITION of {name}"))?),
            "CALCULATION_PASS_NUMBER" | "CALCULATION_PASS_DEPTH" => {
                return Err(QueryError::Unsupported(format!(
                    "CELL CALCULATION {name}: {pname} (line {}, column {}) is not supported; use SOLVE_ORDER",
                    p.span.line, p.span.column
                )));
            }
            _ => {}
        }
    }
    let in_for = |e: QueryError| match e {
        QueryError::Type(m) => QueryError::Type(format!("CELL CALCULATION {name}, FOR clause: {m}")),
        other => other,
    };
    let items: Vec<&Expr> = match unnest(&def.for_expr) {
        Expr::Tuple { items, .. } if items.len() > 1 => items.iter().collect(),
        other => vec![other],
    };
    let mut regions = Vec::new();
    if items.len() == 1 {
        // One set: its tuples (grouped by the hierarchies they name); empty, the whole cube.
        let tuples = env.eval_set(items[0], None).map_err(in_for)?;
        let mut by_hiers: HashMap<Vec<HierIdx>, HashSet<Vec<u32>>> = HashMap::new();
        for t in tuples {
            let hiers: Vec<HierIdx> = t.iter().map(|m| m.h).collect();
            by_hiers
                .entry(hiers)
                .or_default()
                .insert(t.iter().map(|m| m.id).collect());
        }
        if by_hiers.is_empty() {
            regions.push(Region { factors: Vec::new() });
        }
        for (hiers, tuples) in by_hiers {
            regions.push(Region {
                factors: vec![Factor::new(hiers, tuples)],
            });
        }
    } else {
        // A tuple of sets: their crossjoin; an empty set does not restrict.
        let mut factors = Vec::new();
        for item in items {
            let tuples = env.eval_set(item, None).map_err(in_for)?;
            let Some(first) = tuples.first() else { continue };
            let hiers: Vec<HierIdx> = first.iter().map(|m| m.h).collect();
            if tuples.iter().any(|t| t.iter().map(|m| m.h).ne(hiers.iter().copied())) {
                return Err(QueryError::Type(format!(
                    "CELL CALCULATION {name}: each set of the FOR clause must hold members of the same hierarchies (line {}, column {})",
                    item.span().line,
                    item.span().column
                )));
            }
            let set = tuples.into_iter().map(|t| t.iter().map(|m| m.id).collect()).collect();
            factors.push(Factor::new(hiers, set));
        }
        regions.push(Region { factors });
    }
    Ok(CellCalc {
        name,
        regions,
        expr: def.expr.clone(),
        condition,
        solve_order,
        format_string,
        active: Cell::new(true),
    })
}
