//! `datakube refresh`: a new snapshot of one dataset, next to the old one, validated against
//! the cube definitions, then made current in one step (`CURRENT` is replaced atomically).
//! Running servers notice the new `CURRENT` and swap in a runtime built from it.
//!
//! At every moment the previous snapshot stays current and intact: the new one is written
//! into `snapshots/.tmp-*`, renamed to its content id, checked, and only then named by
//! `CURRENT`. Killed before that (even `kill -9`), it leaves a folder the next refresh or the
//! server's sweep removes. Each run is recorded in `<data-dir>/refresh-log.jsonl`. The server
//! runs the same import for folders dropped into `--refresh-inbox`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use datakube_engine::storage::{self, RefreshMarker, Snapshots};
use datakube_engine::{Engine, EngineConfig};

use crate::reload::REFRESH_LOG;

pub struct RefreshRequest<'a> {
    pub data_dir: &'a Path,
    pub definitions: &'a Path,
    pub dataset: &'a str,
    /// Import this folder (Parquet tables + manifest.json) instead of generating.
    pub from: Option<&'a Path>,
    pub seed: u64,
    /// Scale for generation; `None` = the scale of the current snapshot's manifest.
    pub scale: Option<f64>,
    pub engine: EngineConfig,
}

struct Log<'a> {
    path: PathBuf,
    dataset: &'a str,
    started_at: String,
}

impl Log<'_> {
    fn write(&self, snapshot: &str, outcome: &str) {
        let line = serde_json::json!({
            "pid": std::process::id(),
            "dataset": self.dataset,
            "snapshot": snapshot,
            "started_at": self.started_at,
            "finished_at": if outcome == "running" { String::new() } else { datakube_auth::audit::now_rfc3339() },
            "finished_unix": crate::metrics::unix_now(),
            "outcome": outcome,
        });
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| {
                f.write_all(format!("{line}\n").as_bytes())?;
                f.sync_all()
            });
        if let Err(e) = r {
            tracing::warn!("cannot write the refresh log {}: {e}", self.path.display());
        }
    }
}

/// Run one refresh; returns the snapshot id now current.
pub fn refresh(r: &RefreshRequest) -> anyhow::Result<String> {
    storage::check_name(r.dataset)?;
    if r.from.is_none() && !datakube_datagen::dataset_names().contains(&r.dataset) {
        bail!(
            "unknown dataset {:?} to generate; known: {} (or import with --from <folder>)",
            r.dataset,
            datakube_datagen::dataset_names().join(", ")
        );
    }
    let log = Log {
        path: r.data_dir.join(REFRESH_LOG),
        dataset: r.dataset,
        started_at: datakube_auth::audit::now_rfc3339(),
    };
    log.write("", "running");
    let result = run(r);
    match &result {
        Ok((id, true)) => {
            log.write(id, "switched");
            tracing::info!(dataset = r.dataset, snapshot = %id, "refresh done: the new snapshot is current");
        }
        Ok((id, false)) => {
            log.write(id, "unchanged");
            tracing::info!(dataset = r.dataset, snapshot = %id, "refresh done: the data did not change");
        }
        Err(e) => {
            log.write("", &format!("failed: {}", format!("{e:#}").replace('\n', " ")));
        }
    }
    result.map(|(id, _)| id)
}

/// Stage, validate, switch. Returns the id and whether `CURRENT` changed.
fn run(r: &RefreshRequest) -> anyhow::Result<(String, bool)> {
    let _marker = RefreshMarker::create(r.data_dir, r.dataset)?;
    storage::remove_stale_tmp(r.data_dir, r.dataset);
    let previous = storage::current_snapshot(r.data_dir, r.dataset).ok().map(|(id, _)| id);
    let id = match r.from {
        Some(folder) => import(r.data_dir, r.dataset, folder)?,
        None => {
            let scale = match r.scale {
                Some(s) => s,
                None => current_scale(r.data_dir, r.dataset).unwrap_or(datakube_datagen::DEFAULT_SCALE),
            };
            let opts = datakube_datagen::GenerateOptions {
                data_dir: r.data_dir.to_path_buf(),
                seed: r.seed,
                scale,
                engine: r.engine.clone(),
                datasets: Some(vec![r.dataset.to_string()]),
            };
            tracing::info!(dataset = r.dataset, seed = r.seed, scale, "generating a new snapshot");
            let report =
                datakube_datagen::generate_staged(&opts, &datakube_datagen::progress::TerminalProgress::log_only())?;
            report
                .datasets
                .first()
                .map(|d| d.snapshot_id.clone())
                .context("the generator produced no snapshot")?
        }
    };
    if previous.as_deref() == Some(id.as_str()) {
        return Ok((id, false));
    }
    if let Err(e) = validate(r, &id) {
        // Never current, not used by anyone: remove it.
        let dir = r.data_dir.join("datasets").join(r.dataset).join("snapshots").join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    // Fault injection for the end-to-end test that kills a refresh at its most delicate
    // moment: snapshot complete, renamed and validated, CURRENT not yet switched.
    if let Some(ms) = std::env::var("DATAKUBE_TEST_PAUSE_BEFORE_SWITCH_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    storage::switch_current(r.data_dir, r.dataset, &id)?;
    Ok((id, true))
}

/// Check the new snapshot against the cube definitions (every column they name) and load
/// the members of every hierarchy from it, as the server will.
fn validate(r: &RefreshRequest, id: &str) -> anyhow::Result<()> {
    let engine = Engine::open(&EngineConfig {
        pool_size: 1,
        ..r.engine.clone()
    })
    .context("opening DuckDB")?;
    let snapshots = Snapshots::current(r.data_dir)?.pin(r.dataset, id)?;
    let provider = crate::schemas::ParquetSchemas::new(engine.clone(), snapshots.clone());
    let catalog = match datakube_model::load_catalog(r.definitions, Some(&provider)) {
        Ok(c) => c,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            bail!(
                "snapshot {id} of {} does not fit the cube definitions in {} (problems listed above); CURRENT is unchanged",
                r.dataset,
                r.definitions.display()
            );
        }
    };
    datakube_members::MemberStore::load(&engine, &snapshots, &catalog)
        .map_err(|e| anyhow::anyhow!("snapshot {id} of {}: {e}; CURRENT is unchanged", r.dataset))?;
    // The aggregates of the cubes over this dataset, into the new snapshot before it becomes
    // current (each through a temp folder and a rename; a missing one only means the fact
    // table is read).
    for cube in &catalog.cubes {
        let on_dataset =
            matches!(&cube.source, datakube_model::Source::Dataset { dataset, .. } if dataset == r.dataset);
        if !on_dataset {
            continue;
        }
        for agg in &cube.aggregates {
            let meta = datakube_query::aggregates::build(&engine, &snapshots, cube, agg).map_err(|e| {
                anyhow::anyhow!(
                    "snapshot {id} of {}: aggregate {} of [{}]: {e}; CURRENT is unchanged",
                    r.dataset,
                    agg.name,
                    cube.name
                )
            })?;
            tracing::info!(cube = %cube.name, aggregate = %agg.name, rows = meta.rows, "aggregate built");
        }
    }
    Ok(())
}

fn current_scale(data_dir: &Path, dataset: &str) -> Option<f64> {
    let (_, dir) = storage::current_snapshot(data_dir, dataset).ok()?;
    let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()?
        .get("scale")?
        .as_f64()
}

/// Copy `folder` (`manifest.json` and one sub-folder of Parquet files per table) into a new
/// snapshot of `dataset`; returns its id (content hash, as generated snapshots have).
fn import(data_dir: &Path, dataset: &str, folder: &Path) -> anyhow::Result<String> {
    let manifest_path = folder.join("manifest.json");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?,
    )
    .with_context(|| format!("{}: not valid JSON", manifest_path.display()))?;
    if let Some(d) = manifest.get("dataset").and_then(|d| d.as_str())
        && d != dataset
    {
        bail!(
            "{}: the manifest is for dataset {d:?}, not {dataset:?}",
            manifest_path.display()
        );
    }
    let snaps = data_dir.join("datasets").join(dataset).join("snapshots");
    std::fs::create_dir_all(&snaps)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = snaps.join(format!(".tmp-{}-{nanos}", std::process::id()));
    let staged = (|| -> anyhow::Result<String> {
        let mut tables = 0;
        for e in std::fs::read_dir(folder).with_context(|| format!("reading {}", folder.display()))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            if e.file_type()?.is_dir() {
                storage::check_name(&name).with_context(|| format!("table folder {}", e.path().display()))?;
                copy_tree(&e.path(), &tmp.join(&name))?;
                tables += 1;
            }
        }
        if tables == 0 {
            bail!("{}: no table folders (expected <table>/**/*.parquet)", folder.display());
        }
        std::fs::copy(&manifest_path, tmp.join("manifest.json"))?;
        datakube_datagen::sync_tree(&tmp)?;
        let id = datakube_datagen::snapshot_id(&tmp)?;
        let dir = snaps.join(&id);
        if dir.join("manifest.json").is_file() {
            std::fs::remove_dir_all(&tmp)?;
        } else {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::rename(&tmp, &dir).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
        }
        Ok(id)
    })();
    if staged.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    staged
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target).with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}
