//! datakube-model: cube definitions.
//!
//! - [`format`]: the YAML file format (serde types, also the source of the JSON Schema).
//! - [`load_catalog`]: reads a folder of definition files, checks them (optionally against
//!   the real Parquet columns through a [`SchemaProvider`]) and returns the resolved
//!   [`Catalog`], or every problem found as a [`Diagnostic`] with `file:line:column`.
//! - [`json_schema`]: the JSON Schema of the format, for editor completion.
//!
//! Architecture invariant: this crate reads files and nothing else; it knows no SQL, no
//! DuckDB and no XMLA. Column types come from the caller's [`SchemaProvider`].
//!
//! See `docs/cube-definitions.md` for the format reference.

mod diagnostic;
pub mod format;
mod load;
mod mdx;
mod model;
mod yaml;

pub use diagnostic::{Diagnostic, Severity};
pub use load::load_catalog;
pub use model::*;

/// The JSON Schema of a definition file (pretty-printed), as shipped in
/// `cube-definitions/schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(format::DefinitionFile);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema is plain JSON");
    text.push('\n');
    text
}
