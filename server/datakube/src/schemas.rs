//! Column lookup for `datakube validate`, start-up, reloads and refreshes: resolves a cube's
//! source to the Parquet files of the given (pinned) snapshots and asks DuckDB for their
//! schema.

use datakube_engine::Engine;
use datakube_engine::storage::Snapshots;
use datakube_model::{SchemaProvider, Source};

pub struct ParquetSchemas {
    engine: Engine,
    snapshots: Snapshots,
}

impl ParquetSchemas {
    pub fn new(engine: Engine, snapshots: Snapshots) -> Self {
        ParquetSchemas { engine, snapshots }
    }
}

impl SchemaProvider for ParquetSchemas {
    fn columns(&self, source: &Source) -> Result<Vec<(String, String)>, String> {
        let glob = datakube_members::source_glob(&self.snapshots, source)?;
        self.engine
            .parquet_schema(&glob)
            .map_err(|e| format!("cannot read {}: {e}", glob.display()))
    }
}
