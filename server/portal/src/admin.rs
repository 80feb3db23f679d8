//! What the administration pages need from the running server. The binary implements
//! [`Admin`] over the hot reloader of cube definitions and the data refresher; the portal
//! renders it. Kept small and plain so either side can change without the other.

/// The state of the cube definitions the server answers from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DefinitionsStatus {
    /// When the definitions in use were loaded (`YYYY-MM-DDTHH:MM:SSZ`).
    pub loaded_at: String,
    /// The cubes of the definitions in use.
    pub cubes: Vec<String>,
    /// When definitions were last read from disk (file change or reload button).
    pub last_attempt_at: String,
    /// The problems of the last attempt, each `file:line:column: error: message`. Empty when
    /// the last attempt was applied; otherwise the definitions in use are the older ones.
    pub errors: Vec<String>,
}

/// One data refresh (a new snapshot of a dataset), newest first in [`Admin::refreshes`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RefreshRecord {
    pub dataset: String,
    /// The snapshot id the refresh produced (empty if it failed before one existed).
    pub snapshot: String,
    pub started_at: String,
    pub finished_at: String,
    /// `serving`, `replaced`, `failed: <reason>` or `running`.
    pub outcome: String,
}

pub trait Admin: Send + Sync {
    /// The definitions in use and the outcome of the last attempt to load new ones.
    fn definitions(&self) -> DefinitionsStatus;
    /// Read, validate and (if valid) swap in the definitions from disk now; a broken set
    /// leaves the running one untouched and is reported in the returned status.
    fn reload(&self) -> DefinitionsStatus;
    /// The most recent data refreshes, newest first.
    fn refreshes(&self) -> Vec<RefreshRecord>;
}
