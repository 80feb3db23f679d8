//! Column lookup for `datakube validate` and start-up: resolves a cube's source to the Parquet
//! files of the dataset's current snapshot and asks DuckDB for their schema.

use std::path::PathBuf;

use datakube_engine::Engine;
use datakube_model::{SchemaProvider, Source};

pub struct ParquetSchemas {
    engine: Engine,
    data_dir: PathBuf,
}

impl ParquetSchemas {
    pub fn new(engine: Engine, data_dir: PathBuf) -> Self {
        ParquetSchemas { engine, data_dir }
    }
}

impl SchemaProvider for ParquetSchemas {
    fn columns(&self, source: &Source) -> Result<Vec<(String, String)>, String> {
        let glob = datakube_members::source_glob(&self.data_dir, source)?;
        self.engine
            .parquet_schema(&glob)
            .map_err(|e| format!("cannot read {}: {e}", glob.display()))
    }
}
