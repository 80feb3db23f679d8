//! Where datasets live on disk (see docs/datasets.md):
//!
//! ```text
//! <data-dir>/datasets/<dataset>/CURRENT                      the current snapshot id
//! <data-dir>/datasets/<dataset>/snapshots/<id>/<table>/...   Parquet files
//! ```
//!
//! A running model reads the snapshots it was loaded from, never `CURRENT` at query time:
//! [`Snapshots`] pins one snapshot per dataset, and [`sweep`] deletes an old snapshot only
//! when no live [`Snapshots`] in this process uses it (and it is not `CURRENT`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

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
    #[error("dataset '{0}' is not among the snapshots this model was loaded from")]
    NotPinned(String),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

pub fn check_name(s: &str) -> Result<(), StorageError> {
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

/// Write `CURRENT` of `dataset` to name snapshot `id` atomically: write and fsync
/// `CURRENT.tmp`, rename it over `CURRENT`, fsync the folder. The snapshot must be complete.
pub fn switch_current(data_dir: &Path, dataset: &str, id: &str) -> Result<(), StorageError> {
    use std::io::Write as _;
    check_name(dataset)?;
    check_name(id)?;
    let base = data_dir.join("datasets").join(dataset);
    let io = |path: &Path, e: std::io::Error| StorageError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let snap = base.join("snapshots").join(id);
    if !snap.is_dir() {
        return Err(StorageError::MissingSnapshot {
            dataset: dataset.into(),
            id: id.into(),
            dir: base,
        });
    }
    let tmp = base.join("CURRENT.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(format!("{id}\n").as_bytes()).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, base.join("CURRENT")).map_err(|e| io(&base, e))?;
    if let Ok(d) = std::fs::File::open(&base) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Snapshot folders used by live [`Snapshots`] of this process, with their use counts.
static IN_USE: LazyLock<Mutex<HashMap<PathBuf, usize>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn in_use() -> MutexGuard<'static, HashMap<PathBuf, usize>> {
    IN_USE.lock().unwrap_or_else(|p| p.into_inner())
}

/// One pinned snapshot folder; while it lives, [`sweep`] keeps the folder.
#[derive(Debug)]
struct Pin {
    id: String,
    dir: PathBuf,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut m = in_use();
        if let Some(n) = m.get_mut(&self.dir) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.dir);
            }
        }
    }
}

/// The snapshot of every dataset a model was loaded from (dataset → id and folder). Members,
/// cells, drillthrough and explain read table globs from here, so a refresh that switches
/// `CURRENT` never changes what a loaded model reads. Cheap to clone; the folders are kept
/// by [`sweep`] until the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Snapshots {
    data_dir: PathBuf,
    pinned: BTreeMap<String, Arc<Pin>>,
}

impl Snapshots {
    /// No dataset pinned: only path sources (relative to `data_dir`) resolve.
    pub fn empty(data_dir: &Path) -> Snapshots {
        Snapshots {
            data_dir: data_dir.to_path_buf(),
            pinned: BTreeMap::new(),
        }
    }

    /// Pin the current snapshot of every dataset in `<data_dir>/datasets` that has a
    /// `CURRENT` (a dataset folder without one is skipped; one naming a missing snapshot is
    /// an error).
    pub fn current(data_dir: &Path) -> Result<Snapshots, StorageError> {
        let mut names = Vec::new();
        if let Ok(entries) = std::fs::read_dir(data_dir.join("datasets")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if check_name(&name).is_ok() && e.path().join("CURRENT").is_file() {
                    names.push(name);
                }
            }
        }
        names.sort();
        let mut s = Snapshots::empty(data_dir);
        for n in names {
            s = s.pin_current(&n)?;
        }
        Ok(s)
    }

    /// These snapshots with `dataset` pinned at its current snapshot.
    pub fn pin_current(self, dataset: &str) -> Result<Snapshots, StorageError> {
        // Read CURRENT and register under the lock [`sweep`] holds, so a sweep cannot delete
        // the folder between the two.
        let mut m = in_use();
        let (id, dir) = current_snapshot(&self.data_dir, dataset)?;
        *m.entry(dir.clone()).or_insert(0) += 1;
        drop(m);
        Ok(self.with_pin(dataset, Pin { id, dir }))
    }

    /// These snapshots with `dataset` pinned at snapshot `id` (which must exist), e.g. a new
    /// snapshot to validate before `CURRENT` names it.
    pub fn pin(self, dataset: &str, id: &str) -> Result<Snapshots, StorageError> {
        check_name(dataset)?;
        check_name(id)?;
        let ds = self.data_dir.join("datasets").join(dataset);
        let dir = ds.join("snapshots").join(id);
        let mut m = in_use();
        if !dir.is_dir() {
            return Err(StorageError::MissingSnapshot {
                dataset: dataset.into(),
                id: id.into(),
                dir: ds,
            });
        }
        *m.entry(dir.clone()).or_insert(0) += 1;
        drop(m);
        Ok(self.with_pin(dataset, Pin { id: id.into(), dir }))
    }

    fn with_pin(mut self, dataset: &str, pin: Pin) -> Snapshots {
        self.pinned.insert(dataset.to_string(), Arc::new(pin));
        self
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The pinned snapshot id of `dataset`.
    pub fn id(&self, dataset: &str) -> Option<&str> {
        self.pinned.get(dataset).map(|p| p.id.as_str())
    }

    /// The pinned snapshot folder of `dataset`.
    pub fn dir(&self, dataset: &str) -> Option<&Path> {
        self.pinned.get(dataset).map(|p| p.dir.as_path())
    }

    /// dataset → pinned snapshot id.
    pub fn ids(&self) -> BTreeMap<String, String> {
        self.pinned.iter().map(|(k, p)| (k.clone(), p.id.clone())).collect()
    }

    /// Whether `dataset`'s `CURRENT` names another snapshot than the pinned one (or a dataset
    /// appeared or went away).
    pub fn is_stale(&self) -> bool {
        let mut now = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(self.data_dir.join("datasets")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Ok(id) = std::fs::read_to_string(e.path().join("CURRENT")) {
                    now.insert(name, id.trim().to_string());
                }
            }
        }
        now != self.ids()
    }

    /// The Parquet glob of `table` in the pinned snapshot of `dataset`.
    pub fn table_glob(&self, dataset: &str, table: &str) -> Result<PathBuf, StorageError> {
        check_name(table)?;
        let pin = self
            .pinned
            .get(dataset)
            .ok_or_else(|| StorageError::NotPinned(dataset.to_string()))?;
        let t = pin.dir.join(table);
        if !t.is_dir() {
            return Err(StorageError::NoTable {
                dataset: dataset.into(),
                table: table.into(),
                id: pin.id.clone(),
            });
        }
        Ok(t.join("**").join("*.parquet"))
    }

    /// Whether every pinned folder is still on disk (storage mounted, nothing deleted).
    pub fn all_present(&self) -> bool {
        self.pinned.values().all(|p| p.dir.is_dir())
    }
}

/// Marks a refresh in progress on a dataset (`snapshots/.refresh-<pid>`) while it lives:
/// [`sweep`] leaves that dataset's snapshots alone, so a staged snapshot that `CURRENT` does
/// not name yet is not taken for an old one. A marker of a process that is gone (killed) is
/// ignored and removed by the next refresh.
pub struct RefreshMarker {
    path: PathBuf,
}

impl RefreshMarker {
    pub fn create(data_dir: &Path, dataset: &str) -> Result<RefreshMarker, StorageError> {
        check_name(dataset)?;
        let snaps = data_dir.join("datasets").join(dataset).join("snapshots");
        let io = |e: std::io::Error| StorageError::Io {
            path: snaps.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(&snaps).map_err(io)?;
        if let Ok(entries) = std::fs::read_dir(&snaps) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if let Some(pid) = n.strip_prefix(".refresh-")
                    && !process_alive(pid)
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let path = snaps.join(format!(".refresh-{}", std::process::id()));
        std::fs::write(&path, b"").map_err(io)?;
        Ok(RefreshMarker { path })
    }
}

impl Drop for RefreshMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Remove `snapshots/.tmp-<pid>-*` folders of `dataset` whose process is gone (a refresh
/// that was killed).
pub fn remove_stale_tmp(data_dir: &Path, dataset: &str) {
    let snaps = data_dir.join("datasets").join(dataset).join("snapshots");
    let Ok(entries) = std::fs::read_dir(&snaps) else { return };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if let Some(rest) = n.strip_prefix(".tmp-")
            && let Some(pid) = rest.split('-').next()
            && !process_alive(pid)
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Whether process `pid` runs (Linux `/proc`; elsewhere assumed alive).
fn process_alive(pid: &str) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    pid.parse::<u32>().is_ok() && Path::new("/proc").join(pid).exists()
}

/// Whether a refresh of the dataset whose snapshots are in `snaps` is running.
fn refresh_running(snaps: &Path) -> bool {
    std::fs::read_dir(snaps).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix(".refresh-")
                .is_some_and(process_alive)
        })
    })
}

/// Whether a live [`Snapshots`] of this process uses the snapshot folder `dir`.
pub fn is_in_use(dir: &Path) -> bool {
    in_use().contains_key(dir)
}

/// Delete old snapshots of every dataset: never `CURRENT`'s, never one a live [`Snapshots`]
/// of this process uses, never `.tmp-*` folders (a refresh may be writing them), nothing of a
/// dataset a refresh is running on ([`RefreshMarker`]), and of the rest keep the `keep` most recently modified (other replicas on shared storage may still
/// read them). Returns the folders deleted.
pub fn sweep(data_dir: &Path, keep: usize) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(datasets) = std::fs::read_dir(data_dir.join("datasets")) else {
        return removed;
    };
    let m = in_use();
    for ds in datasets.flatten() {
        let Ok(current) = std::fs::read_to_string(ds.path().join("CURRENT")) else {
            continue;
        };
        let current = current.trim().to_string();
        if refresh_running(&ds.path().join("snapshots")) {
            continue;
        }
        let Ok(snaps) = std::fs::read_dir(ds.path().join("snapshots")) else {
            continue;
        };
        let mut old: Vec<(std::time::SystemTime, PathBuf)> = snaps
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                !n.starts_with('.') && n != current && e.path().is_dir()
            })
            .map(|e| {
                let t = e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                (t, e.path())
            })
            .collect();
        old.sort_by_key(|b| std::cmp::Reverse(b.0));
        for (_, dir) in old.into_iter().skip(keep) {
            if m.contains_key(&dir) {
                continue;
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => removed.push(dir),
                Err(e) => tracing::warn!("cannot delete old snapshot {}: {e}", dir.display()),
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(data: &Path, ds: &str, id: &str) {
        std::fs::create_dir_all(data.join("datasets").join(ds).join("snapshots").join(id).join("t")).unwrap();
    }

    #[test]
    fn a_pinned_snapshot_survives_a_switch_and_is_swept_after_its_last_use() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        snapshot(data, "d", "old");
        switch_current(data, "d", "old").unwrap();
        let pinned = Snapshots::current(data).unwrap();
        let copy = pinned.clone();
        snapshot(data, "d", "new");
        switch_current(data, "d", "new").unwrap();
        assert!(pinned.is_stale());
        let old_dir = data.join("datasets/d/snapshots/old");
        assert_eq!(pinned.table_glob("d", "t").unwrap(), old_dir.join("t/**/*.parquet"));
        assert!(sweep(data, 0).is_empty(), "in use: kept");
        drop(pinned);
        assert!(sweep(data, 0).is_empty(), "a clone is still alive");
        drop(copy);
        assert_eq!(
            sweep(data, 1),
            Vec::<PathBuf>::new(),
            "kept as the one previous snapshot"
        );
        assert_eq!(sweep(data, 0), vec![old_dir.clone()]);
        assert!(!old_dir.exists());
        assert!(
            data.join("datasets/d/snapshots/new").is_dir(),
            "CURRENT is never deleted"
        );
        let now = Snapshots::current(data).unwrap();
        assert_eq!(now.id("d"), Some("new"));
        assert!(!now.is_stale());
        assert!(matches!(now.table_glob("e", "t"), Err(StorageError::NotPinned(_))));
    }

    #[test]
    fn a_running_refresh_keeps_its_staged_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        snapshot(data, "d", "cur");
        switch_current(data, "d", "cur").unwrap();
        let marker = RefreshMarker::create(data, "d").unwrap();
        snapshot(data, "d", "staged");
        assert!(sweep(data, 0).is_empty());
        drop(marker);
        assert_eq!(sweep(data, 0), vec![data.join("datasets/d/snapshots/staged")]);
    }

    #[test]
    fn switch_refuses_a_missing_snapshot_and_bad_names() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            switch_current(tmp.path(), "d", "nope"),
            Err(StorageError::MissingSnapshot { .. })
        ));
        assert!(matches!(
            switch_current(tmp.path(), "d", "../x"),
            Err(StorageError::BadName(_))
        ));
    }
}
