//! `datakube-query`: answers MDX SELECT statements.
//!
//! Stages, each testable alone:
//! 1. [`space`]: the cube as a list of hierarchies (Measures first) with their members;
//!    MDX names resolve here to members, levels and hierarchies (never to SQL).
//! 2. [`eval`]: set expressions on the axes are evaluated in memory over the member trees
//!    (Members, Children, DrilldownLevel, DrilldownMember, Hierarchize, CrossJoin, …);
//!    scalar expressions (calculated measures) are evaluated per cell.
//! 3. [`cells`]: the cells a query needs are grouped by the combination of levels they sit
//!    on; each group becomes one SQL statement (a printable [`cells::CellQuery`]) that
//!    DuckDB aggregates, with member keys as literals made from typed keys.
//! 4. [`plan`]: the resolved query (axes of member tuples, coordinates, restrictions),
//!    independent of MDX syntax; [`exec`] builds it from an MDX SELECT and computes its
//!    cells into a `CellSet` for the MDDataSet writer.

pub mod aggregates;
pub mod cache;
pub mod cellcalc;
pub mod cells;
pub mod disclosure;
pub mod drillthrough;
pub mod error;
pub mod eval;
pub mod exec;
pub mod format;
pub mod observe;
pub mod plan;
pub mod security;
pub mod space;
pub mod suggest;
pub mod tabular;
pub mod xmla;

pub use error::QueryError;
pub use exec::{QueryContext, execute};
