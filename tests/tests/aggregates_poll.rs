//! A running server keeps its aggregate list in memory; `datakube aggregates build` run beside
//! it (another process, same snapshot) is picked up by the reload poll, and the answer read
//! from the new aggregate equals hand-written DuckDB SQL over the fact table.
//!
//! One test in its own binary: it turns on the server's `datakube::sql` debug log (which
//! prints each statement's `source:`) through the environment the server inherits.

mod common;
use common::copy_dir;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, close};

const BY_ART: &str = "SELECT {[Measures].[Regnskab]} ON 0, NON EMPTY [Art].[Art].[Art].Members ON 1 \
     FROM [Økonomi] WHERE ([Tid].[Kalender].[År].&[2024])";

/// The `source:` lines the server logged since the last call.
fn sources(s: &Server) -> Vec<String> {
    let rx = s.log.lock().unwrap();
    let mut out = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
        if let Some(src) = line.trim().strip_prefix("source: ") {
            out.push(src.to_string());
        }
    }
    out
}

#[test]
fn aggregates_built_beside_a_running_server_are_read_after_the_poll() {
    // SAFETY: the only test in this binary; set before any thread reads the environment.
    unsafe { std::env::set_var("DATAKUBE_LOG", "info,datakube::sql=debug") };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let shipped = common::repo_root().join("cube-definitions");
    let out = Command::new(common::datakube_bin())
        .args(["--data-dir", &data.display().to_string()])
        .args(["--cube-definitions", &shipped.display().to_string()])
        .args(["generate", "--scale", "0.002"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The definitions declare art_aar, which generate did not build.
    let defs = tmp.path().join("defs");
    copy_dir(&shipped, &defs);
    let p = defs.join("okonomi.yaml");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        format!(
            "{}\n    - name: art_aar\n      levels: [\"[Art].[Art].[Art]\", \"[Tid].[Kalender].[År]\"]\n      measures: [Regnskab]\n",
            text.trim_end()
        ),
    )
    .unwrap();
    let s = Server::start_full(
        &data,
        &defs,
        &["--no-demo-data", "--reload-poll-seconds", "1", "--result-cache-mb", "0"],
    );

    let before = s.mdx(BY_ART, 1033).ok();
    assert_eq!(sources(&s), ["fact table"]);

    let out = Command::new(common::datakube_bin())
        .args(["--data-dir", &data.display().to_string()])
        .args(["--cube-definitions", &defs.display().to_string()])
        .args(["aggregates", "build", "--cube", "Økonomi"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The poll runs every second; the first statement after it reads art_aar.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let a = s.mdx(BY_ART, 1033).ok();
        let src = sources(&s);
        if src == ["aggregate art_aar"] {
            break a;
        }
        assert_eq!(src, ["fact table"]);
        assert!(Instant::now() < deadline, "art_aar never read");
        std::thread::sleep(Duration::from_millis(500));
    };

    // Both answers equal the hand-written SQL.
    let sql = format!(
        "SELECT p.art_kode::VARCHAR, sum(p.beloeb) FILTER (WHERE p.beloebstype_kode = 'R') FROM {} p \
         JOIN {} m ON p.maaned_id = m.maaned_id WHERE m.aar = 2024 GROUP BY 1 \
         HAVING count(*) FILTER (WHERE p.beloebstype_kode = 'R') > 0",
        s.table("oekonomi", "postering"),
        s.table("faelles", "maaned")
    );
    let duck = s.duck();
    let mut st = duck.prepare(&sql).unwrap();
    let want: std::collections::BTreeMap<String, f64> = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(want.len() > 3);
    for a in [&before, &after] {
        let got: std::collections::BTreeMap<String, f64> = a.axes[1]
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let key = t[0].0.rsplit_once("&[")?.1.trim_end_matches(']').to_string();
                Some((key, a.value(i as u64)?))
            })
            .collect();
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
        for (k, v) in &want {
            assert!(close(got[k], *v), "{k}: {} vs {v}", got[k]);
        }
    }
}
