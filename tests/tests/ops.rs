//! Operations end-to-end, against the real binary on real Parquet (issue 7):
//! - a data refresh while a stream of XMLA queries runs: every answer is wholly the old or
//!   wholly the new snapshot (numbers from DuckDB SQL over each snapshot's Parquet), both
//!   occur, and the old snapshot is deleted once no query uses it;
//! - `datakube refresh` killed with SIGKILL mid-way leaves `CURRENT` and the old snapshot
//!   serving;
//! - a broken cube definition keeps the old cube answering while `/admin/status` reports
//!   `file:line:column` errors; the fixed file is swapped in;
//! - `/metrics` parses as Prometheus text and its counters grow with requests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::copy_dir;
use common::{Server, close, curl_post_as, datakube_bin, repo_root};

const MDX: &str =
    "SELECT {[Measures].[Tilflyttede], [Measures].[Fødte]} ON 0, [Køn].[Køn].Members ON 1 FROM [Befolkning]";

/// Row caption (a sex's name, or `ALL` for the total) → (Tilflyttede, Fødte).
type Figures = BTreeMap<String, (f64, f64)>;
/// The querying thread and what it got.
type ThreadAnswer = (usize, Result<Figures, String>);

fn current_id(data: &Path, dataset: &str) -> String {
    std::fs::read_to_string(data.join("datasets").join(dataset).join("CURRENT"))
        .unwrap()
        .trim()
        .to_string()
}

fn snapshot_dir(data: &Path, dataset: &str, id: &str) -> PathBuf {
    data.join("datasets").join(dataset).join("snapshots").join(id)
}

fn parquet(dir: &Path, table: &str) -> String {
    format!(
        "read_parquet({}, hive_partitioning = true)",
        datakube_engine::sql_string(&dir.join(table).join("**").join("*.parquet").to_string_lossy())
    )
}

/// The expected figures, by hand in DuckDB over the Parquet of snapshot `id` of befolkning.
fn expected(data: &Path, id: &str) -> Figures {
    let conn = datakube_engine::open_connection(&datakube_engine::EngineConfig::default()).unwrap();
    let bestand = parquet(&snapshot_dir(data, "befolkning", id), "bestand");
    let koen = parquet(&snapshot_dir(data, "faelles", &current_id(data, "faelles")), "koen");
    let mut out = Figures::new();
    let (t, f): (f64, f64) = conn
        .query_row(
            &format!("SELECT sum(tilflyttede)::DOUBLE, sum(foedte)::DOUBLE FROM {bestand}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    out.insert("ALL".into(), (t, f));
    let mut stmt = conn
        .prepare(&format!(
            "SELECT k.koen_navn, sum(b.tilflyttede)::DOUBLE, sum(b.foedte)::DOUBLE FROM {bestand} b \
             JOIN {koen} k USING (koen_kode) GROUP BY k.koen_navn"
        ))
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?, r.get::<_, f64>(2)?))
        })
        .unwrap();
    for row in rows {
        let (k, t, f) = row.unwrap();
        out.insert(k, (t, f));
    }
    out
}

/// The server's figures for [`MDX`], or the fault.
fn answer(server: &Server, sexes: &[String]) -> Result<Figures, String> {
    let a = server.mdx(MDX, 1030);
    if let Some(f) = a.fault {
        return Err(format!("{f:?}"));
    }
    let rows = a.axes.get(1).ok_or("no row axis")?;
    let mut out = Figures::new();
    for (r, tuple) in rows.iter().enumerate() {
        let caption = &tuple[0].1;
        let key = if sexes.contains(caption) {
            caption.clone()
        } else {
            "ALL".to_string()
        };
        let v = |c: u64| a.value(r as u64 * 2 + c).unwrap_or(0.0);
        out.insert(key, (v(0), v(1)));
    }
    Ok(out)
}

fn same(a: &Figures, b: &Figures) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, (ta, fa)), (kb, (tb, fb)))| ka == kb && close(*ta, *tb) && close(*fa, *fb))
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "120", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (body.to_string(), code.to_string())
}

fn status(server: &Server) -> serde_json::Value {
    let (body, code) = curl(&[
        "-u",
        "admin:admin",
        &format!("https://127.0.0.1:{}/admin/status", server.port),
    ]);
    assert_eq!(code, "200", "{body}");
    serde_json::from_str(&body).unwrap()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn refresh_command(data: &Path, seed: u64) -> Command {
    let mut c = Command::new(datakube_bin());
    c.current_dir(repo_root())
        .args(["--data-dir", data.to_str().unwrap(), "--cube-definitions"])
        .arg(repo_root().join("cube-definitions"))
        .args(["refresh", "--dataset", "befolkning", "--seed", &seed.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// The `.tmp-<pid>-…` folders of refreshes (of process `pid`, or any).
fn tmp_dirs(data: &Path, pid: Option<u32>) -> Vec<PathBuf> {
    let prefix = match pid {
        Some(p) => format!(".tmp-{p}-"),
        None => ".tmp-".to_string(),
    };
    std::fs::read_dir(data.join("datasets/befolkning/snapshots"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn refresh_switches_queries_whole_and_a_killed_refresh_leaves_the_old_snapshot_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let server = Arc::new(Server::start_in(
        &data,
        &["--reload-poll-seconds", "1", "--keep-snapshots", "0"],
        None,
    ));
    let old_id = current_id(&data, "befolkning");
    let old = expected(&data, &old_id);
    let sexes: Vec<String> = old.keys().filter(|k| *k != "ALL").cloned().collect();
    assert_eq!(sexes.len(), 2, "{old:?}");
    assert!(
        same(&answer(&server, &sexes).unwrap(), &old),
        "the server answers from the old snapshot first"
    );

    // (b) kill -9 mid-way, twice: as soon as the new snapshot's .tmp folder appears (while it is
    // written), and once it is complete, renamed and being validated or about to be made
    // current (an injected pause holds the refresh just before it switches CURRENT).
    let staged = |data: &Path| -> Vec<String> {
        std::fs::read_dir(data.join("datasets/befolkning/snapshots"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| !n.starts_with('.') && *n != old_id)
            .collect()
    };
    for (seed, late) in [(11, false), (12, true)] {
        let mut cmd = refresh_command(&data, seed);
        if late {
            cmd.env("DATAKUBE_TEST_PAUSE_BEFORE_SWITCH_MS", "120000");
        }
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        if late {
            wait_until("the renamed new snapshot", 120, || !staged(&data).is_empty());
        } else {
            wait_until("the refresh's .tmp folder", 120, || {
                !tmp_dirs(&data, Some(pid)).is_empty()
            });
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_eq!(
            current_id(&data, "befolkning"),
            old_id,
            "CURRENT unchanged (seed {seed})"
        );
        assert!(
            snapshot_dir(&data, "befolkning", &old_id)
                .join("manifest.json")
                .is_file()
        );
        std::thread::sleep(Duration::from_millis(1500)); // a poll and a sweep pass
        assert!(
            same(&answer(&server, &sexes).unwrap(), &old),
            "old snapshot still serving"
        );
        assert_eq!(status(&server)["snapshots"]["befolkning"], old_id.as_str());
        // The orphaned complete snapshot is swept (never current, unused, its refresh gone).
        wait_until("the orphaned snapshot to be swept", 30, || staged(&data).is_empty());
    }
    let refreshes = status(&server)["refreshes"].as_array().unwrap().clone();
    assert!(
        refreshes
            .iter()
            .filter(|r| r["outcome"].as_str().unwrap().starts_with("failed: interrupted"))
            .count()
            == 2,
        "{refreshes:?}"
    );

    // (a) a refresh while queries stream.
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<ThreadAnswer>>> = Arc::default();
    let mut threads = Vec::new();
    for t in 0..2 {
        let (server, stop, answers, sexes) = (server.clone(), stop.clone(), answers.clone(), sexes.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let a = answer(&server, &sexes);
                answers.lock().unwrap().push((t, a));
            }
        }));
    }
    let out = refresh_command(&data, 4242).status().unwrap();
    assert!(out.success(), "datakube refresh failed");
    let new_id = current_id(&data, "befolkning");
    assert_ne!(new_id, old_id);
    assert!(
        tmp_dirs(&data, None).is_empty(),
        "the finished refresh removed the killed runs' folders"
    );
    let new = expected(&data, &new_id);
    assert!(!same(&old, &new), "the new seed gives other numbers");
    wait_until("the server to serve the new snapshot", 60, || {
        status(&server)["snapshots"]["befolkning"] == new_id.as_str()
    });
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let answers = answers.lock().unwrap();
    let (mut n_old, mut n_new) = (0, 0);
    let mut seen_new = [false, false];
    for (t, a) in answers.iter() {
        let a = a
            .as_ref()
            .unwrap_or_else(|f| panic!("a query failed during the refresh: {f}"));
        if same(a, &old) {
            assert!(!seen_new[*t], "thread {t}: an old answer after a new one");
            n_old += 1;
        } else if same(a, &new) {
            seen_new[*t] = true;
            n_new += 1;
        } else {
            panic!("an answer from neither snapshot (mixed?): {a:?}\nold {old:?}\nnew {new:?}");
        }
    }
    eprintln!("{} answers during the refresh: {n_old} old, {n_new} new", answers.len());
    assert!(
        n_old > 0 && n_new > 0,
        "both snapshots answered ({n_old} old, {n_new} new)"
    );
    // Nothing uses the old snapshot any more: the sweep deletes it (--keep-snapshots 0).
    wait_until("the old snapshot to be deleted", 30, || {
        !snapshot_dir(&data, "befolkning", &old_id).exists()
    });
    assert!(
        snapshot_dir(&data, "befolkning", &new_id)
            .join("manifest.json")
            .is_file()
    );
    let st = status(&server);
    assert_eq!(st["refreshes"][0]["snapshot"], new_id.as_str());
    assert_eq!(st["refreshes"][0]["outcome"], "serving");
    let (_, code) = curl(&[&format!("https://127.0.0.1:{}/ready", server.port)]);
    assert_eq!(code, "200");
}

/// One Prometheus sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parse the whole exposition text; panics on any line that is not a comment or a sample.
fn parse_metrics(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "bad type: {line}");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels: {line}"));
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "label value must be quoted: {line}");
                    let mut v = String::new();
                    loop {
                        match chars.next().unwrap_or_else(|| panic!("unterminated label: {line}")) {
                            '\\' => v.push(chars.next().unwrap()),
                            '"' => break,
                            c => v.push(c),
                        }
                    }
                    labels.insert(key, v);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name.to_string(), labels)
            }
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        samples.push((name, labels, value));
    }
    (samples, types)
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.2)
        .unwrap_or(0.0)
}

fn scrape(server: &Server) -> (Vec<Sample>, BTreeMap<String, String>) {
    let (body, code) = curl(&[&format!("https://127.0.0.1:{}/metrics", server.port)]);
    assert_eq!(code, "200");
    let (samples, types) = parse_metrics(&body);
    // Histograms: buckets cumulative, +Inf equals _count.
    for (name, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (n, l, v) in &samples {
            if *n == format!("{name}_bucket") {
                let mut key = l.clone();
                let le = key.remove("le").unwrap();
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                series.entry(format!("{key:?}")).or_default().push((le, *v));
            }
        }
        for (key, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{name}{key}: not cumulative"
            );
            let count = samples
                .iter()
                .find(|(n, l, _)| *n == format!("{name}_count") && format!("{l:?}") == key)
                .map(|s| s.2)
                .unwrap();
            assert_eq!(buckets.last().unwrap().1, count, "{name}{key}: +Inf bucket != count");
        }
    }
    (samples, types)
}

fn discover_cubes(server: &Server, cube: &str) {
    let body = format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><Discover xmlns=\"urn:schemas-microsoft-com:xml-analysis\">\
<RequestType>MDSCHEMA_CUBES</RequestType><Restrictions><RestrictionList><CUBE_NAME>{cube}</CUBE_NAME></RestrictionList></Restrictions>\
<Properties><PropertyList><Catalog>FLIS</Catalog></PropertyList></Properties></Discover></soap:Body></soap:Envelope>"
    );
    let b = server.post(&body);
    assert!(b.contains("<CUBE_NAME>Befolkning</CUBE_NAME>"), "{b}");
}

#[test]
fn a_broken_definition_keeps_the_old_cube_answering_and_metrics_count_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let defs = tmp.path().join("defs");
    copy_dir(&repo_root().join("cube-definitions"), &defs);
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let server = Server::start_full(
        &data,
        &defs,
        &["--reload-poll-seconds", "1", "--refresh-inbox", inbox.to_str().unwrap()],
    );
    let id = current_id(&data, "befolkning");
    let figures = expected(&data, &id);
    let sexes: Vec<String> = figures.keys().filter(|k| *k != "ALL").cloned().collect();
    let port = server.port;

    // (d) metrics: counts grow with requests.
    let (before, types) = scrape(&server);
    assert_eq!(types["datakube_xmla_request_duration_seconds"], "histogram");
    assert_eq!(types["datakube_sql_duration_seconds"], "histogram");
    let exec = [("request", "Execute"), ("cube", "Befolkning")];
    let disc = [("request", "MDSCHEMA_CUBES"), ("cube", "Befolkning")];
    for m in ["Tilflyttede", "Fraflyttede", "Døde"] {
        server
            .mdx(&format!("SELECT {{[Measures].[{m}]}} ON 0 FROM [Befolkning]"), 1030)
            .ok();
    }
    discover_cubes(&server, "Befolkning");
    discover_cubes(&server, "Befolkning");
    let (_, code) = curl_post_as(&server.url(), "<x/>", Some(("admin", "wrong")), &[]);
    assert_eq!(code, "401");
    let (after, _) = scrape(&server);
    let grew = |name: &str, labels: &[(&str, &str)]| sample(&after, name, labels) - sample(&before, name, labels);
    assert!(grew("datakube_xmla_request_duration_seconds_count", &exec) >= 3.0);
    assert!(grew("datakube_xmla_request_duration_seconds_sum", &exec) > 0.0);
    assert!(grew("datakube_xmla_request_duration_seconds_count", &disc) >= 2.0);
    assert!(grew("datakube_sql_duration_seconds_count", &[("cube", "Befolkning")]) >= 1.0);
    assert!(grew("datakube_auth_failures_total", &[]) >= 1.0);
    assert_eq!(sample(&after, "datakube_ready", &[]), 1.0);
    assert_eq!(sample(&after, "datakube_definitions_valid", &[]), 1.0);
    assert_eq!(
        sample(
            &after,
            "datakube_snapshot_info",
            &[("dataset", "befolkning"), ("snapshot", &id)]
        ),
        1.0
    );
    assert!(after.iter().any(|(n, _, _)| n == "datakube_sessions"));

    // (c) a broken definition: the poll notices it, the old cube keeps answering.
    let yaml = defs.join("befolkning.yaml");
    let original = std::fs::read_to_string(&yaml).unwrap();
    assert!(original.contains("column: tilflyttede\n"));
    std::fs::write(
        &yaml,
        original.replace("column: tilflyttede\n", "column: tilflyttede_nope\n"),
    )
    .unwrap();
    wait_until("the broken definition to be reported", 30, || {
        !status(&server)["definitions"]["errors"].as_array().unwrap().is_empty()
    });
    let st = status(&server);
    let errors: Vec<String> = st["definitions"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    let line = original
        .lines()
        .position(|l| l.trim() == "column: tilflyttede")
        .unwrap()
        + 1;
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!("befolkning.yaml:{line}:")) && e.contains("tilflyttede_nope")),
        "an error at befolkning.yaml:{line}: {errors:?}"
    );
    assert!(
        same(&answer(&server, &sexes).unwrap(), &figures),
        "the old cube still answers"
    );
    assert_eq!(
        scrape(&server)
            .0
            .iter()
            .find(|s| s.0 == "datakube_definitions_valid")
            .unwrap()
            .2,
        0.0
    );

    // Invalid YAML through the admin action: refused with 422, still the old cube.
    std::fs::write(&yaml, "cube: [unclosed\n  name: x: y\n").unwrap();
    let (body, code) = curl(&[
        "-u",
        "admin:admin",
        "-X",
        "POST",
        &format!("https://127.0.0.1:{port}/admin/reload"),
    ]);
    assert_eq!(code, "422", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["definitions"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("befolkning.yaml:")),
        "{v}"
    );
    assert!(same(&answer(&server, &sexes).unwrap(), &figures));
    // Only administrators.
    let (_, code) = curl(&["-u", "laesoe:laesoe", &format!("https://127.0.0.1:{port}/admin/status")]);
    assert_eq!(code, "403");
    let (_, code) = curl(&["-u", "admin:wrong", &format!("https://127.0.0.1:{port}/admin/status")]);
    assert_eq!(code, "401");

    // Fixed (with a new caption): swapped in.
    std::fs::write(
        &yaml,
        original.replace(
            "caption: {da: Tilflyttede, en: Moved in}",
            "caption: {da: Tilflyttede i alt, en: Moved in}",
        ),
    )
    .unwrap();
    let (body, code) = curl(&[
        "-u",
        "admin:admin",
        "-X",
        "POST",
        &format!("https://127.0.0.1:{port}/admin/reload"),
    ]);
    assert_eq!(code, "200", "{body}");
    let a = server.mdx(MDX, 1030).ok();
    assert_eq!(
        a.axes[0][0][0].1, "Tilflyttede i alt",
        "the fixed definitions are in use"
    );
    assert!(same(&answer(&server, &sexes).unwrap(), &figures));
    let st = status(&server);
    assert!(st["definitions"]["errors"].as_array().unwrap().is_empty());
    let (after_fix, _) = scrape(&server);
    assert!(
        sample(
            &after_fix,
            "datakube_reloads_total",
            &[("trigger", "admin"), ("outcome", "failed")]
        ) >= 1.0
    );
    assert!(
        sample(
            &after_fix,
            "datakube_reloads_total",
            &[("trigger", "admin"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert_eq!(sample(&after_fix, "datakube_definitions_valid", &[]), 1.0);

    // Import a snapshot from a folder (Parquet + manifest): Tilflyttede doubled.
    let cur = snapshot_dir(&data, "befolkning", &id);
    let incoming = tmp.path().join("incoming");
    copy_dir(&cur, &incoming);
    std::fs::remove_dir_all(incoming.join("bestand")).unwrap();
    let write_bestand = |to: &Path, select: &str| {
        let conn = datakube_engine::open_connection(&datakube_engine::EngineConfig::default()).unwrap();
        conn.execute_batch(&format!(
            "COPY (SELECT {select} FROM {}) TO {} (FORMAT parquet, PARTITION_BY (aar), WRITE_PARTITION_COLUMNS true)",
            parquet(&cur, "bestand"),
            datakube_engine::sql_string(&to.join("bestand").to_string_lossy())
        ))
        .unwrap();
    };
    write_bestand(&incoming, "* REPLACE (tilflyttede * 2 AS tilflyttede)");
    let refresh_from = |folder: &Path| {
        Command::new(datakube_bin())
            .current_dir(repo_root())
            .args(["--data-dir", data.to_str().unwrap(), "--cube-definitions"])
            .arg(&defs)
            .args(["refresh", "--dataset", "befolkning", "--from"])
            .arg(folder)
            .output()
            .unwrap()
    };
    let out = refresh_from(&incoming);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let imported = current_id(&data, "befolkning");
    assert_ne!(imported, id);
    let doubled = expected(&data, &imported);
    assert!(close(doubled["ALL"].0, 2.0 * figures["ALL"].0) && close(doubled["ALL"].1, figures["ALL"].1));
    wait_until("the imported snapshot to be served", 30, || {
        status(&server)["snapshots"]["befolkning"] == imported.as_str()
    });
    assert!(same(&answer(&server, &sexes).unwrap(), &doubled));

    // A folder that does not fit the definitions (no `foedte`) is refused before CURRENT moves.
    let bad = tmp.path().join("incoming-bad");
    copy_dir(&incoming, &bad);
    std::fs::remove_dir_all(bad.join("bestand")).unwrap();
    write_bestand(&bad, "* EXCLUDE (foedte)");
    let out = refresh_from(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stderr.contains("befolkning.yaml:") && stderr.contains("foedte") && stderr.contains("CURRENT is unchanged"),
        "{stderr}"
    );
    assert_eq!(current_id(&data, "befolkning"), imported);
    let snaps: Vec<String> = std::fs::read_dir(data.join("datasets/befolkning/snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(
        snaps.iter().all(|n| *n == imported || *n == id),
        "the refused snapshot is removed: {snaps:?}"
    );
    assert!(same(&answer(&server, &sexes).unwrap(), &doubled));
    let st = status(&server);
    assert!(
        st["refreshes"][0]["outcome"].as_str().unwrap().starts_with("failed:"),
        "{st}"
    );

    // The watched inbox: a folder is taken only once its READY file exists.
    let drop = inbox.join("befolkning-2025-06-01");
    copy_dir(&incoming, &drop);
    std::fs::remove_dir_all(drop.join("bestand")).unwrap();
    write_bestand(&drop, "* REPLACE (tilflyttede * 3 AS tilflyttede)");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(current_id(&data, "befolkning"), imported, "no READY file: not imported");
    std::fs::write(drop.join("READY"), b"").unwrap();
    wait_until("the inbox folder to be imported", 60, || {
        inbox.join(".done/befolkning-2025-06-01").is_dir()
    });
    let tripled_id = current_id(&data, "befolkning");
    assert_ne!(tripled_id, imported);
    let tripled = expected(&data, &tripled_id);
    assert!(close(tripled["ALL"].0, 3.0 * figures["ALL"].0));
    wait_until("the inbox snapshot to be served", 30, || {
        status(&server)["snapshots"]["befolkning"] == tripled_id.as_str()
    });
    assert!(same(&answer(&server, &sexes).unwrap(), &tripled));
    // A broken delivery lands in .failed with the reason.
    let broken = inbox.join("befolkning-broken");
    copy_dir(&bad, &broken);
    std::fs::write(broken.join("READY"), b"").unwrap();
    wait_until("the broken inbox folder to be refused", 60, || {
        inbox.join(".failed/befolkning-broken/ERROR.txt").is_file()
    });
    let why = std::fs::read_to_string(inbox.join(".failed/befolkning-broken/ERROR.txt")).unwrap();
    assert!(why.contains("CURRENT is unchanged"), "{why}");
    assert_eq!(current_id(&data, "befolkning"), tripled_id);
}

#[test]
fn ready_is_503_while_starting_and_200_once_loaded_with_json_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(datakube_bin())
        .current_dir(repo_root())
        .args([
            "--data-dir",
            tmp.path().to_str().unwrap(),
            "--log-format",
            "json",
            "serve",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--demo-scale", "0.002"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let url = |p: &str| format!("https://127.0.0.1:{port}{p}");
    // The first start generates the demo data: /health answers, /ready says not yet.
    wait_until("/health while starting", 60, || curl(&[&url("/health")]).1 == "200");
    let (body, code) = curl(&[&url("/ready")]);
    assert_eq!(code, "503", "{body}");
    assert!(body.contains("starting"), "{body}");
    wait_until("/ready once loaded", 300, || curl(&[&url("/ready")]).1 == "200");
    let (_, code) = curl(&[&url("/metrics")]);
    assert_eq!(code, "200");
    sigterm(child.id());
    child.wait().unwrap();
    let lines = lines.join().unwrap();
    let json: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(
        json.iter()
            .any(|v| v["fields"]["path"] == "/ready" && v["fields"]["status"] == 503),
        "a JSON request log line for the 503"
    );
    assert!(
        json.iter()
            .all(|v| v["level"].is_string() && v["timestamp"].is_string())
    );
}

/// SIGTERM through the `kill` program (no libc binding in the tests).
fn sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}
