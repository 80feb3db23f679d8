//! The resolved query: what a statement asks for, in member ids of the [`Space`], with no
//! query-language syntax left. The MDX front end (`exec::execute_select`) builds it from
//! WITH, subselects, WHERE and the axis sets; [`crate::exec::execute_plan`] computes its
//! cells (batched SQL, NON EMPTY, disclosure control, formats) into a `CellSet`. A second front
//! end (DAX `EVALUATE SUMMARIZECOLUMNS(...)` for Power BI live connections) builds the same
//! plan: group-by columns become axis tuples, filters become restrictions, measures a measure
//! axis, and reuses everything after it.
//!
//! The plan prints itself ([`LogicalPlan::describe`]); `datakube explain` shows it.

use std::collections::HashMap;
use std::fmt::Write as _;

use datakube_mdx::ast::ObjectName;
use datakube_xmla::cellset::CellProperty;

use crate::space::{HierIdx, MemberRef, Space, Tuple};

/// One axis of the answer.
#[derive(Debug, Clone)]
pub struct PlanAxis {
    /// `Axis0`, `Axis1`, …
    pub name: String,
    /// The hierarchies of every tuple, in order.
    pub hierarchies: Vec<HierIdx>,
    /// The tuples, in order, before NON EMPTY.
    pub tuples: Vec<Tuple>,
    /// Drop tuples whose cells are all empty.
    pub non_empty: bool,
    /// Member properties to return (`DIMENSION PROPERTIES`): names like `MEMBER_KEY` or
    /// `[Dimension].[Hierarchy].[Level].[Property]`.
    pub properties: Vec<ObjectName>,
    /// Where the axis came from, for traces (the MDX set expression as written).
    pub source: String,
}

/// A query resolved to members: axes of tuples, the coordinates of the other hierarchies,
/// and the hierarchies limited to a subset of members.
#[derive(Debug, Clone)]
pub struct LogicalPlan {
    pub cube: String,
    pub axes: Vec<PlanAxis>,
    /// One member per hierarchy (index 0: the measure): the slicer, or the default member,
    /// for every hierarchy not on an axis.
    pub base: Vec<u32>,
    /// Hierarchies limited to these members (subselects, WHERE sets). The fact rows are
    /// already restricted in the plan's cell fetcher; this is what disclosure control needs
    /// to know which totals aggregate a chosen subset.
    pub restricted: HashMap<HierIdx, Vec<u32>>,
    /// Cell properties to return (default: VALUE, FORMATTED_VALUE, CELL_ORDINAL).
    pub cell_properties: Vec<CellProperty>,
}

impl LogicalPlan {
    /// Number of cells: the product of the axis lengths (`None` on overflow).
    pub fn cell_count(&self) -> Option<usize> {
        self.axes
            .iter()
            .try_fold(1usize, |acc, a| acc.checked_mul(a.tuples.len()))
    }

    /// The plan in words, with member unique names from `space`.
    pub fn describe(&self, space: &Space) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "plan: cube [{}], {} axis/axes", self.cube, self.axes.len());
        let mut restricted: Vec<_> = self.restricted.iter().collect();
        restricted.sort_by_key(|(h, _)| **h);
        for (h, ids) in restricted {
            let _ = writeln!(
                out,
                "  restricted: {} to {} member(s)",
                space.hierarchy_unique_name(*h),
                ids.len()
            );
        }
        let on_axes: Vec<HierIdx> = self.axes.iter().flat_map(|a| a.hierarchies.iter().copied()).collect();
        let slicer: Vec<String> = (0..self.base.len())
            .filter(|h| !on_axes.contains(h))
            .filter(|&h| h == 0 || self.base[h] != space.default_coordinate()[h])
            .map(|h| space.member_unique_name(MemberRef { h, id: self.base[h] }))
            .collect();
        let _ = writeln!(out, "  coordinates: {}", slicer.join(", "));
        for a in &self.axes {
            let names: Vec<String> = a.hierarchies.iter().map(|&h| space.hierarchy_unique_name(h)).collect();
            let _ = writeln!(
                out,
                "  {}: {} tuple(s) over ({}){}",
                a.name,
                a.tuples.len(),
                names.join(", "),
                if a.non_empty { ", NON EMPTY" } else { "" }
            );
        }
        out
    }
}
