//! End-to-end: the real `datakube` binary generates demo data on first start, serves HTTPS
//! with a self-signed certificate, answers /health and /version to curl, limits request
//! bodies, and shuts down cleanly on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::{datakube_bin, repo_root};

struct Running {
    child: Child,
    port: u16,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data_dir: &std::path::Path) -> Running {
    let mut child = Command::new(datakube_bin())
        .current_dir(repo_root())
        .args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--demo-scale",
            "0.002",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start datakube");
    let (port, rx, seen) = common::wait_for_url(child.stderr.take().unwrap());
    Running {
        child,
        port,
        log: rx,
        seen,
    }
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (body.to_string(), code.to_string())
}

#[test]
fn serve_generates_demo_data_and_answers_https() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path());
    // First start generated the demo data with visible progress and a certificate.
    assert!(
        dir.path().join("datasets/oekonomi/CURRENT").exists(),
        "no Økonomi snapshot"
    );
    assert!(dir.path().join("tls/cert.pem").exists(), "no self-signed certificate");
    assert!(
        s.seen.iter().any(|l| l.contains("generat")),
        "no generation progress printed:\n{}",
        s.seen.join("\n")
    );

    let base = format!("https://127.0.0.1:{}", s.port);
    let (body, code) = curl(&[&format!("{base}/health")]);
    assert_eq!(code, "200", "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert!(health["cubes"].as_u64().unwrap() >= 6, "{body}");

    let (body, code) = curl(&[&format!("{base}/version")]);
    assert_eq!(code, "200");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["catalog"], "FLIS");
    assert!(v["duckdb"].as_str().unwrap().starts_with("v1."), "{body}");
    for cube in [
        "Befolkning",
        "Økonomi",
        "Personale",
        "Beskæftigelse",
        "Skole",
        "Benchmark",
    ] {
        assert!(
            v["cubes"].as_array().unwrap().iter().any(|c| c == cube),
            "cube {cube} missing: {body}"
        );
    }

    // The certificate is really self-signed for localhost: verification against it as CA passes.
    let cert = dir.path().join("tls/cert.pem");
    let (_, code) = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        &format!("https://localhost:{}/health", s.port),
    ]);
    assert_eq!(code, "200", "certificate does not verify for localhost");

    // Bodies over the limit are refused with 413 before they are read whole.
    let big = dir.path().join("big.xml");
    std::fs::write(&big, vec![b'x'; 5 * 1024 * 1024]).unwrap();
    // (HTTP/1.1 as MSOLAP speaks it: curl waits for "100 Continue" and gets the 413 instead.)
    let (_, code) = curl(&[
        "--http1.1",
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", big.display()),
        &format!("{base}/xmla"),
    ]);
    assert_eq!(code, "413");

    // Graceful shutdown on SIGTERM: exit status 0, promptly.
    let pid = s.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let t = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no exit 30 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let rest: Vec<String> = s.log.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");

    // `datakube validate` checks the shipped cubes against the real Parquet files: exit 0.
    let validate = |path: &str| {
        Command::new(datakube_bin())
            .current_dir(repo_root())
            .args(["--data-dir", dir.path().to_str().unwrap(), "validate", path])
            .output()
            .unwrap()
    };
    let ok = validate("cube-definitions");
    let out = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(ok.status.success(), "validate failed:\n{out}");
    assert!(out.contains("6 cubes valid"), "{out}");
    // A broken definition: non-zero exit and file:line:column with the message.
    let bad = validate("tests/fixtures/broken/duplicate-measure");
    let out = String::from_utf8_lossy(&bad.stdout).to_string();
    assert_eq!(bad.status.code(), Some(2), "{out}");
    assert!(
        out.contains("cube.yaml:11:13: error: duplicate measure 'regnskab'"),
        "{out}"
    );

    // Second start reuses data and certificate (no regeneration).
    let pem = std::fs::read(&cert).unwrap();
    let snap = std::fs::read_to_string(dir.path().join("datasets/oekonomi/CURRENT")).unwrap();
    let s2 = start(dir.path());
    assert!(
        !s2.seen.iter().any(|l| l.contains("first start")),
        "regenerated on second start"
    );
    assert_eq!(pem, std::fs::read(&cert).unwrap());
    assert_eq!(
        snap,
        std::fs::read_to_string(dir.path().join("datasets/oekonomi/CURRENT")).unwrap()
    );
}
