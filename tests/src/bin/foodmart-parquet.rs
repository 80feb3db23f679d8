//! `foodmart-parquet <data-dir>`: writes the FoodMart tables as Parquet into
//! `<data-dir>/foodmart/` for the conformance fixture (skipped when a complete copy of the
//! same layout is already there).

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: foodmart-parquet <data-dir>");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    let started = std::time::Instant::now();
    match datakube_tests::foodmart::write_parquet(&dir) {
        Ok(true) => eprintln!(
            "FoodMart Parquet written to {} in {:.1} s",
            dir.join(datakube_tests::foodmart::SUBDIR).display(),
            started.elapsed().as_secs_f64()
        ),
        Ok(false) => eprintln!(
            "FoodMart Parquet is up to date in {}",
            dir.join(datakube_tests::foodmart::SUBDIR).display()
        ),
        Err(e) => {
            eprintln!("foodmart-parquet: {e}");
            std::process::exit(1);
        }
    }
}
