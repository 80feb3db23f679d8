//! The audit log: append-only JSON lines, one per query on an `individual` cube and one per
//! authentication event, written and flushed before the answer is sent, rotated by size.
//!
//! It records who (subject, organisations, scope), what (cube, statement) and how it went;
//! never a token or a password: events carry no credential fields, and [`AuditLog::record`]
//! refuses to write a line that contains the text of the credential being checked.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// One audit line. Optional fields are left out when empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditEvent {
    /// RFC 3339 UTC time.
    pub time: String,
    /// `query`, `drillthrough`, `discover`, `login`, `logout`, `auth_failure`, `token_created`,
    /// `token_revoked`, `impersonation`.
    pub kind: String,
    /// The principal's subject (personal data: the audit log is the one place it goes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub organisation: Vec<String>,
    /// `all` or the kommunekoder of the row scope.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// How the user authenticated (`oidc`, `saml`, `pat`, …).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// The client application (XMLA `SspropInitAppName` / User-Agent).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_app: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub peer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cube: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub statement: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cells: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// `ok`, `fault`, `denied`, `cancelled`.
    pub outcome: String,
    /// Why (fault text, refusal reason). Never credential text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// For impersonation: the service account acting.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub acting_for: String,
}

/// The current UTC time as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.{:03}Z",
        crate::util::datetime(now.as_secs() as i64),
        now.subsec_millis()
    )
}

struct Inner {
    file: File,
    size: u64,
}

/// An append-only JSON-lines file, rotated to `<name>.1` … `<name>.<keep>` past `max_bytes`.
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    inner: Mutex<Inner>,
}

impl AuditLog {
    /// Open (create) the log at `path`; rotate when a write would pass `max_bytes`, keeping
    /// `keep` old files.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<AuditLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(AuditLog {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(4096),
            keep: keep.max(1),
            inner: Mutex::new(Inner { file, size }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one event and flush it to the operating system before returning. `secrets` are
    /// texts that must never reach the log (the credential just checked): a line containing
    /// one is not written and the call fails.
    pub fn record(&self, event: &AuditEvent, secrets: &[&str]) -> io::Result<()> {
        let mut line = serde_json::to_string(event).map_err(io::Error::other)?;
        if secrets.iter().any(|s| s.len() >= 8 && line.contains(s)) {
            return Err(io::Error::other("audit event would contain a credential; not written"));
        }
        line.push('\n');
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.size > 0 && g.size + line.len() as u64 > self.max_bytes {
            self.rotate(&mut g)?;
        }
        g.file.write_all(line.as_bytes())?;
        g.file.flush()?;
        g.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&self, g: &mut Inner) -> io::Result<()> {
        g.file.sync_data()?;
        let name = |i: usize| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        let _ = std::fs::remove_file(name(self.keep));
        for i in (1..self.keep).rev() {
            if name(i).exists() {
                std::fs::rename(name(i), name(i + 1))?;
            }
        }
        std::fs::rename(&self.path, name(1))?;
        g.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        g.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> AuditEvent {
        AuditEvent {
            time: now_rfc3339(),
            kind: "query".into(),
            user: "dev:aarhus".into(),
            scope: "751".into(),
            cube: "Befolkning".into(),
            statement: format!("SELECT {i} ON 0 FROM [Befolkning]"),
            outcome: "ok".into(),
            ..Default::default()
        }
    }

    #[test]
    fn lines_are_json_and_rotate_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, 4096, 2).unwrap();
        for i in 0..100 {
            log.record(&event(i), &[]).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.len() <= 4096, "{}", current.len());
        for l in current.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["kind"], "query");
            assert!(v.get("cells").is_none(), "empty fields are left out: {l}");
        }
        assert!(dir.path().join("audit.jsonl.1").exists());
        assert!(dir.path().join("audit.jsonl.2").exists());
        assert!(!dir.path().join("audit.jsonl.3").exists(), "only `keep` old files");
        // The newest line is the last event.
        assert!(current.lines().last().unwrap().contains("SELECT 99 ON 0"));
    }

    #[test]
    fn a_line_with_the_credential_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("a.jsonl"), 1 << 20, 1).unwrap();
        let mut e = event(1);
        e.detail = "bad token dkpat_abcdefgh12345".into();
        assert!(log.record(&e, &["dkpat_abcdefgh12345"]).is_err());
        assert_eq!(std::fs::read_to_string(dir.path().join("a.jsonl")).unwrap(), "");
    }

    #[test]
    fn time_is_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T", "{t}");
    }
}
