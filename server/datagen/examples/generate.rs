//! Timing runs: `cargo run --release -p datakube-datagen --example generate -- <data-dir> [scale] [seed]
//! [dataset,dataset,...]`. Prints wall-clock and CPU seconds per step on stderr and the report on
//! stdout (the numbers in docs/datasets.md, "Row counts and generation times", come from here).
use std::sync::Mutex;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.first().cloned().unwrap_or_else(|| "/tmp/datakube-data".into());
    let mut opts = datakube_datagen::GenerateOptions::new(dir);
    if let Some(s) = args.get(1) {
        opts.scale = s.parse()?;
    }
    if let Some(s) = args.get(2) {
        opts.seed = s.parse()?;
    }
    if let Some(s) = args.get(3) {
        opts.datasets = Some(s.split(',').map(String::from).collect());
    }
    let t = Instant::now();
    let progress = Timing(Mutex::new((Instant::now(), cpu_seconds())));
    let report = datakube_datagen::generate(&opts, &progress).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    for d in &report.datasets {
        println!("{:<15} {} {:>7.2} s {:?}", d.name, d.snapshot_id, d.seconds, d.rows);
    }
    println!("total {:.2} s, {} rows", t.elapsed().as_secs_f64(), report.total_rows());
    Ok(())
}

/// CPU seconds (user + system) of this process so far (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

/// Prints each step with its wall-clock and CPU time.
struct Timing(Mutex<(Instant, f64)>);

impl datakube_datagen::Progress for Timing {
    fn begin(&self, label: &str, total: u64) {
        eprintln!("{label}: {total} steps");
    }
    fn advance(&self, step: &str) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let c = cpu_seconds();
        eprintln!(
            "  {:>6.2} s  cpu {:>6.2} s  {step}",
            t.0.elapsed().as_secs_f64(),
            c - t.1
        );
        *t = (Instant::now(), c);
    }
    fn finish(&self) {}
}
