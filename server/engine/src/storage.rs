//! Where datasets live on disk (see docs/datasets.md):
//!
//! ```text
//! <data-dir>/datasets/<dataset>/CURRENT                      the current snapshot id
//! <data-dir>/datasets/<dataset>/snapshots/<id>/<table>/...   Parquet files
//! ```

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("dataset '{dataset}' has no current snapshot in {dir} (run `datakube generate`)")]
    NoSnapshot { dataset: String, dir: PathBuf },
    #[error("dataset '{dataset}': CURRENT names snapshot '{id}', which is not in {dir}")]
    MissingSnapshot { dataset: String, id: String, dir: PathBuf },
    #[error("dataset '{dataset}' has no table '{table}' in snapshot {id}")]
    NoTable { dataset: String, table: String, id: String },
    #[error("'{0}' is not a valid dataset or table name (letters, digits, '_' and '-' only)")]
    BadName(String),
}

fn check_name(s: &str) -> Result<(), StorageError> {
    let ok = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(StorageError::BadName(s.to_string()))
    }
}

/// The folder of the current snapshot of `dataset`.
pub fn current_snapshot(data_dir: &Path, dataset: &str) -> Result<(String, PathBuf), StorageError> {
    check_name(dataset)?;
    let ds = data_dir.join("datasets").join(dataset);
    let id = std::fs::read_to_string(ds.join("CURRENT"))
        .map_err(|_| StorageError::NoSnapshot {
            dataset: dataset.into(),
            dir: ds.clone(),
        })?
        .trim()
        .to_string();
    check_name(&id)?;
    let dir = ds.join("snapshots").join(&id);
    if !dir.is_dir() {
        return Err(StorageError::MissingSnapshot {
            dataset: dataset.into(),
            id,
            dir: ds,
        });
    }
    Ok((id, dir))
}

/// The Parquet glob of `table` in the current snapshot of `dataset`.
pub fn table_glob(data_dir: &Path, dataset: &str, table: &str) -> Result<PathBuf, StorageError> {
    check_name(table)?;
    let (id, snap) = current_snapshot(data_dir, dataset)?;
    let t = snap.join(table);
    if !t.is_dir() {
        return Err(StorageError::NoTable {
            dataset: dataset.into(),
            table: table.into(),
            id,
        });
    }
    Ok(t.join("**").join("*.parquet"))
}
