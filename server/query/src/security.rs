//! Enforcement: see [`datakube_members::access`], the one place where a verified principal
//! becomes the rules of a query (row scope, member scope, disclosure control).

pub use datakube_members::access::{Access, CubeAccess, Denied};

use crate::error::QueryError;

impl From<Denied> for QueryError {
    fn from(d: Denied) -> Self {
        QueryError::Name(d.0)
    }
}
