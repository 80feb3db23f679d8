//! Access rules: the one place where a verified principal becomes the rules of a query.
//!
//! Every query path (MDX SELECT, DRILLTHROUGH, session CREATE, members discover, DMVs) asks
//! [`Access::for_cube`] for a [`CubeAccess`] and gets from it
//! - the SQL row scope (`rows`): a predicate every generated statement carries;
//! - the member scope (`members`): forbidden members are absent from the member tree the
//!   query sees, so they cannot be named, navigated to or listed (StrToMember of a foreign
//!   member behaves as a missing member);
//! - the disclosure rule of benchmark cubes.
//!
//! Nothing here reads anything the client sent: [`Access`] is built from the [`Principal`]
//! only.

use std::collections::BTreeSet;

use crate::{AllowedSet, MemberScope};
use datakube_auth::{Principal, RowScope as PrincipalScope};
use datakube_model::{Cube, SecurityClass};

/// Which fact rows a principal may see.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RowScope {
    All,
    /// Only rows whose row-scope column is one of these municipality codes.
    Kommuner(Vec<i64>),
}

/// A cube the principal may not open; the message is the one a missing cube gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// What a principal may see, before a cube is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Access {
    /// Rows of `individual` cubes.
    pub rows: RowScope,
    /// Allowed sets on other dimensions.
    pub restrictions: Vec<AllowedSet>,
    /// May read `benchmark` cubes.
    pub benchmark: bool,
    /// Cubes granted by name; `None` = all.
    pub cubes: Option<BTreeSet<String>>,
    pub admin: bool,
    /// The kommune whose comparison group `[Sammenligningsgruppe]` is.
    pub home_kommune: Option<i64>,
    /// Formatted value of suppressed benchmark cells.
    pub marker: String,
    /// The `CustomData` connection property of an impersonating service account (MDX
    /// `CustomData()`); part of the access because answers may depend on it.
    pub custom_data: Option<String>,
}

/// The rules for one cube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CubeAccess {
    /// The SQL row scope.
    pub rows: RowScope,
    /// Which members exist for this principal.
    pub members: MemberScope,
    /// Benchmark cubes: suppress cells from fewer than this many individuals.
    pub min_cell_count: Option<u32>,
    pub marker: String,
}

impl Access {
    /// Everything (administrators; the `explain` command without `--kommune`; tests).
    pub fn all() -> Access {
        Access {
            rows: RowScope::All,
            restrictions: Vec::new(),
            benchmark: true,
            cubes: None,
            admin: true,
            home_kommune: None,
            marker: "..".into(),
            custom_data: None,
        }
    }

    /// The rows of the given kommuner in individual cubes and benchmark access (a municipal
    /// analyst; `explain --kommune`).
    pub fn kommuner(codes: &[i64]) -> Access {
        Access {
            rows: RowScope::Kommuner(codes.to_vec()),
            admin: false,
            home_kommune: codes.first().copied(),
            ..Access::all()
        }
    }

    /// The access of a verified principal.
    pub fn from_principal(p: &Principal, marker: &str) -> Access {
        Access {
            rows: match &p.scope {
                PrincipalScope::All => RowScope::All,
                PrincipalScope::Municipalities(k) => RowScope::Kommuner(k.iter().map(|k| i64::from(k.0)).collect()),
            },
            restrictions: p
                .restrictions
                .iter()
                .map(|r| AllowedSet {
                    dimension: r.dimension.clone(),
                    keys: r.keys.clone(),
                    whole_kommuner: r.whole_kommuner.iter().map(|k| i64::from(k.0)).collect(),
                })
                .collect(),
            benchmark: p.benchmark || p.is_admin(),
            cubes: p.cubes.clone(),
            admin: p.is_admin(),
            home_kommune: p.home_kommune.map(|k| i64::from(k.0)).or(match &p.scope {
                PrincipalScope::Municipalities(v) => v.first().map(|k| i64::from(k.0)),
                PrincipalScope::All => None,
            }),
            marker: marker.to_string(),
            custom_data: p.custom_data.clone(),
        }
    }

    fn granted(&self, cube: &Cube) -> bool {
        self.admin
            || self
                .cubes
                .as_ref()
                .is_none_or(|c| c.iter().any(|n| n.eq_ignore_ascii_case(&cube.name)))
    }

    /// Whether the cube exists for this principal (lists of cubes leave the others out).
    pub fn may_open(&self, cube: &Cube) -> bool {
        self.for_cube(cube).is_ok()
    }

    /// The rules for `cube`, or the error a cube the principal may not open gives: the same
    /// as for a cube that does not exist, as SSAS answers, so its existence is not revealed.
    pub fn for_cube(&self, cube: &Cube) -> Result<CubeAccess, Denied> {
        let denied = || {
            Denied(format!(
                "either the user does not have access to the [{}] cube or the cube does not exist",
                cube.name
            ))
        };
        if !self.granted(cube) {
            return Err(denied());
        }
        match cube.security.class {
            SecurityClass::Public => Ok(CubeAccess {
                rows: RowScope::All,
                members: MemberScope::all(),
                min_cell_count: None,
                marker: self.marker.clone(),
            }),
            SecurityClass::Benchmark { min_cell_count } => {
                if !self.benchmark {
                    return Err(denied());
                }
                Ok(CubeAccess {
                    rows: RowScope::All,
                    members: MemberScope::all(),
                    min_cell_count: Some(min_cell_count),
                    marker: self.marker.clone(),
                })
            }
            SecurityClass::Individual => {
                let kommuner = match &self.rows {
                    RowScope::All => None,
                    RowScope::Kommuner(k) if k.is_empty() => return Err(denied()),
                    RowScope::Kommuner(k) => Some(k.clone()),
                };
                // Allowed sets apply to the dimensions this cube has.
                let restrictions = self
                    .restrictions
                    .iter()
                    .filter(|r| {
                        cube.dimensions
                            .iter()
                            .any(|d| d.name.eq_ignore_ascii_case(&r.dimension))
                    })
                    .cloned()
                    .collect();
                Ok(CubeAccess {
                    rows: self.rows.clone(),
                    members: MemberScope { kommuner, restrictions },
                    min_cell_count: None,
                    marker: self.marker.clone(),
                })
            }
        }
    }
}
