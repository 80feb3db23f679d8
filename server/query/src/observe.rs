//! A process-wide hook that is told how long each SQL statement of an MDX query took (the
//! binary exports it as a metric). Without an observer nothing is recorded.

use std::sync::OnceLock;
use std::time::Duration;

/// Called with the cube and the duration of every statement a query ran.
pub type SqlObserver = Box<dyn Fn(&str, Duration) + Send + Sync>;

static OBSERVER: OnceLock<SqlObserver> = OnceLock::new();

/// Install the observer (once per process; later calls are ignored and return false).
pub fn set_sql_observer(f: SqlObserver) -> bool {
    OBSERVER.set(f).is_ok()
}

/// Report the statements of one query.
pub(crate) fn statements<'q>(queries: impl IntoIterator<Item = &'q crate::cells::CellQuery>) {
    if let Some(f) = OBSERVER.get() {
        for q in queries {
            f(&q.cube, q.elapsed);
        }
    }
}
