//! Progress reporting for long-running jobs (data generation today; imports and cache
//! warm-ups can reuse it).
//!
//! A job calls [`Progress::begin`] once with the number of steps, [`Progress::advance`]
//! after each finished step, and [`Progress::finish`] at the end.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

/// Receives progress of a job made of a known number of steps.
pub trait Progress: Sync {
    /// A job named `label` with `total` steps starts.
    fn begin(&self, label: &str, total: u64);
    /// One step has finished; `step` describes it (e.g. `oekonomi/postering aar=2019`).
    fn advance(&self, step: &str);
    /// The job is over (also called after a failure).
    fn finish(&self);
}

/// Discards all progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _label: &str, _total: u64) {}
    fn advance(&self, _step: &str) {}
    fn finish(&self) {}
}

/// A progress bar on stderr when stderr is a terminal; otherwise one `tracing::info!` line
/// per step, e.g. `generate: 12/70 oekonomi/postering aar=2019 (3.1 s)` (the time is
/// that of the step).
pub struct TerminalProgress {
    bar_allowed: bool,
    state: Mutex<State>,
}

struct State {
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    last: Instant,
    bar: Option<indicatif::ProgressBar>,
}

impl TerminalProgress {
    /// A bar if stderr is a terminal, log lines otherwise.
    pub fn new() -> TerminalProgress {
        TerminalProgress::with_bar(std::io::stderr().is_terminal())
    }

    /// Always log lines, never a bar (for servers and CI).
    pub fn log_only() -> TerminalProgress {
        TerminalProgress::with_bar(false)
    }

    fn with_bar(bar_allowed: bool) -> TerminalProgress {
        let now = Instant::now();
        TerminalProgress {
            bar_allowed,
            state: Mutex::new(State {
                label: String::new(),
                total: 0,
                done: 0,
                started: now,
                last: now,
                bar: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for TerminalProgress {
    fn default() -> Self {
        TerminalProgress::new()
    }
}

impl Progress for TerminalProgress {
    fn begin(&self, label: &str, total: u64) {
        let mut s = self.lock();
        let now = Instant::now();
        s.label = label.to_string();
        s.total = total;
        s.done = 0;
        s.started = now;
        s.last = now;
        s.bar = if self.bar_allowed {
            let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
            let style = indicatif::ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] [{bar:40.cyan/blue}] {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            Some(bar)
        } else {
            None
        };
    }

    fn advance(&self, step: &str) {
        let mut s = self.lock();
        let now = Instant::now();
        let secs = now.duration_since(s.last).as_secs_f64();
        s.last = now;
        s.done += 1;
        match &s.bar {
            Some(bar) => {
                bar.set_message(step.to_string());
                bar.inc(1);
            }
            None => tracing::info!("{}: {}/{} {} ({:.1} s)", s.label, s.done, s.total, step, secs),
        }
    }

    fn finish(&self) {
        let mut s = self.lock();
        let secs = s.started.elapsed().as_secs_f64();
        if let Some(bar) = s.bar.take() {
            bar.finish_and_clear();
        }
        tracing::info!("{}: {}/{} steps done in {:.1} s", s.label, s.done, s.total, secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_steps_without_a_terminal() {
        let p = TerminalProgress::log_only();
        p.begin("job", 3);
        p.advance("a");
        p.advance("b");
        assert_eq!(p.lock().done, 2);
        assert!(p.lock().bar.is_none());
        p.finish();
    }
}
