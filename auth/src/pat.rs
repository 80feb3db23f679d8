//! Personal access tokens: what a user types as the password in Excel, Power BI or TARGIT
//! (MSOLAP sends HTTP Basic after a 401 challenge; the user name is ignored).
//!
//! A token is `dkpat_` + 256 random bits (base64url). It is shown once; the store keeps only
//! its SHA-256, with a name, the [`Identity`] it was created from (the mapper is applied again
//! at every use, so role changes apply at once), creation, expiry (at most [`MAX_DAYS`] days),
//! last use and revocation. The store is one JSON file, replaced atomically (temporary file,
//! fsync, rename) on every change.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::util::{random_token, sha256_hex, unix_now};
use crate::{AuthMethod, AuthOutcome, Authenticator, BoxFuture, Identity, IdentityMapper, parse_basic};

/// Every token starts with this (so it is recognisable, e.g. by secret scanners).
pub const PREFIX: &str = "dkpat_";
/// Longest lifetime a user may choose.
pub const MAX_DAYS: u32 = 90;
/// Most live tokens per user.
pub const MAX_PER_USER: usize = 50;
/// Longest token name (characters).
pub const MAX_NAME_CHARS: usize = 100;
/// Last use is written to disk at most this often per token (seconds); it is kept in memory
/// at once.
pub const LAST_USE_WRITE_INTERVAL: u64 = 60;
/// Revoked and expired tokens are listed for this long, then dropped from the file.
pub const KEEP_DEAD_SECONDS: u64 = 30 * 86_400;

/// One stored token (never the token text: only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatRecord {
    /// Public id (for the list and revocation).
    pub id: String,
    pub name: String,
    /// SHA-256 of the whole token text, hex.
    pub hash: String,
    /// Who created it, as verified at creation.
    pub identity: Identity,
    pub created: u64,
    pub expires: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<u64>,
}

impl PatRecord {
    /// Whether `identity` owns this token (same subject from the same kind of provider).
    pub fn owned_by(&self, identity: &Identity) -> bool {
        self.identity.subject == identity.subject && self.identity.method == identity.method
    }
    pub fn is_live(&self, now: u64) -> bool {
        self.revoked.is_none() && now < self.expires
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatError {
    BadName(String),
    BadLifetime(u32),
    TooMany,
    NotFound,
    Io(String),
}

impl std::fmt::Display for PatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PatError::BadName(why) => write!(f, "token name: {why}"),
            PatError::BadLifetime(d) => write!(f, "a token lives 1 to {MAX_DAYS} days, not {d}"),
            PatError::TooMany => write!(f, "at most {MAX_PER_USER} live tokens per user; revoke one first"),
            PatError::NotFound => write!(f, "no such token"),
            PatError::Io(e) => write!(f, "the token store could not be written: {e}"),
        }
    }
}

/// Why a presented token was refused (texts for the audit log; never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatRefusal {
    Unknown,
    Revoked,
    Expired,
}

impl std::fmt::Display for PatRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PatRefusal::Unknown => "unknown personal access token",
            PatRefusal::Revoked => "revoked personal access token",
            PatRefusal::Expired => "expired personal access token",
        })
    }
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    tokens: Vec<PatRecord>,
}

struct Inner {
    tokens: Vec<PatRecord>,
    /// hash → index in `tokens`.
    by_hash: HashMap<String, usize>,
    /// id → last-use time last written to disk.
    written_last_use: HashMap<String, u64>,
}

impl Inner {
    fn reindex(&mut self) {
        self.by_hash = self
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.hash.clone(), i))
            .collect();
    }
}

/// The token store (one JSON file).
pub struct PatStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        crate::util::random_token(6)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl PatStore {
    /// Open the store at `path` (created on the first write).
    pub fn open(path: &Path) -> io::Result<PatStore> {
        let tokens = match std::fs::read(path) {
            Ok(b) => {
                serde_json::from_slice::<File>(&b)
                    .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?
                    .tokens
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let written_last_use = tokens
            .iter()
            .filter_map(|t| t.last_used.map(|u| (t.id.clone(), u)))
            .collect();
        let mut inner = Inner {
            tokens,
            by_hash: HashMap::new(),
            written_last_use,
        };
        inner.reindex();
        Ok(PatStore {
            path: path.to_path_buf(),
            inner: Mutex::new(inner),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, inner: &mut Inner, now: u64) -> Result<(), PatError> {
        inner
            .tokens
            .retain(|t| t.is_live(now) || now.saturating_sub(t.revoked.unwrap_or(t.expires)) < KEEP_DEAD_SECONDS);
        inner.reindex();
        let file = File {
            tokens: inner.tokens.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| PatError::Io(e.to_string()))?;
        write_atomic(&self.path, &bytes).map_err(|e| PatError::Io(e.to_string()))?;
        inner.written_last_use = inner
            .tokens
            .iter()
            .filter_map(|t| t.last_used.map(|u| (t.id.clone(), u)))
            .collect();
        Ok(())
    }

    /// Create a token for `identity`, named `name`, living `days` (1 to [`MAX_DAYS`]).
    /// Returns the token text (to show once) and its record.
    pub fn create(
        &self,
        identity: &Identity,
        name: &str,
        days: u32,
        now: u64,
    ) -> Result<(String, PatRecord), PatError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(PatError::BadName("give the token a name".into()));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(PatError::BadName(format!("at most {MAX_NAME_CHARS} characters")));
        }
        if name.chars().any(char::is_control) {
            return Err(PatError::BadName("no control characters".into()));
        }
        if days == 0 || days > MAX_DAYS {
            return Err(PatError::BadLifetime(days));
        }
        let mut g = self.lock();
        if g.tokens
            .iter()
            .filter(|t| t.owned_by(identity) && t.is_live(now))
            .count()
            >= MAX_PER_USER
        {
            return Err(PatError::TooMany);
        }
        let token = format!("{PREFIX}{}", random_token(32));
        let record = PatRecord {
            id: random_token(9),
            name: name.to_string(),
            hash: sha256_hex(token.as_bytes()),
            identity: identity.clone(),
            created: now,
            expires: now + u64::from(days) * 86_400,
            last_used: None,
            revoked: None,
        };
        g.tokens.push(record.clone());
        if let Err(e) = self.save(&mut g, now) {
            g.tokens.pop();
            g.reindex();
            return Err(e);
        }
        Ok((token, record))
    }

    /// The tokens of `identity`, newest first (live, then recently revoked or expired).
    pub fn list(&self, identity: &Identity) -> Vec<PatRecord> {
        let mut v: Vec<PatRecord> = self
            .lock()
            .tokens
            .iter()
            .filter(|t| t.owned_by(identity))
            .cloned()
            .collect();
        v.sort_by_key(|t| std::cmp::Reverse(t.created));
        v
    }

    /// Revoke token `id` of `identity`.
    pub fn revoke(&self, identity: &Identity, id: &str, now: u64) -> Result<PatRecord, PatError> {
        let mut g = self.lock();
        let i = g
            .tokens
            .iter()
            .position(|t| t.id == id && t.owned_by(identity) && t.revoked.is_none())
            .ok_or(PatError::NotFound)?;
        g.tokens[i].revoked = Some(now);
        let record = g.tokens[i].clone();
        if let Err(e) = self.save(&mut g, now) {
            if let Some(t) = g.tokens.iter_mut().find(|t| t.id == record.id) {
                t.revoked = None;
            }
            return Err(e);
        }
        Ok(record)
    }

    /// Check a presented token: its record if it is live (its last use is recorded).
    pub fn check(&self, token: &str, now: u64) -> Result<PatRecord, PatRefusal> {
        if !token.starts_with(PREFIX) || token.len() > 200 {
            return Err(PatRefusal::Unknown);
        }
        let hash = sha256_hex(token.as_bytes());
        let mut g = self.lock();
        let i = *g.by_hash.get(&hash).ok_or(PatRefusal::Unknown)?;
        let t = &mut g.tokens[i];
        if t.revoked.is_some() {
            return Err(PatRefusal::Revoked);
        }
        if now >= t.expires {
            return Err(PatRefusal::Expired);
        }
        t.last_used = Some(now);
        let record = t.clone();
        let written = g.written_last_use.get(&record.id).copied().unwrap_or(0);
        if now.saturating_sub(written) >= LAST_USE_WRITE_INTERVAL
            && let Err(e) = self.save(&mut g, now)
        {
            tracing::warn!("could not record the last use of a personal access token: {e}");
        }
        Ok(record)
    }
}

/// Accepts `Authorization: Basic <any user>:<PAT>` (Excel, Power BI, TARGIT after the 401
/// challenge) and `Authorization: Bearer <PAT>`.
pub struct PatAuthenticator {
    pub store: Arc<PatStore>,
    pub mapper: Arc<dyn IdentityMapper>,
}

/// The token text of a request, if it carries a personal access token.
pub fn presented_token(authorization: Option<&str>) -> Option<String> {
    let h = authorization?;
    if let Some((_, password)) = parse_basic(h) {
        return password.starts_with(PREFIX).then_some(password);
    }
    crate::parse_bearer(h)
        .filter(|t| t.starts_with(PREFIX))
        .map(str::to_string)
}

impl Authenticator for PatAuthenticator {
    fn authenticate<'a>(&'a self, authorization: Option<&'a str>) -> BoxFuture<'a, AuthOutcome> {
        let outcome = match presented_token(authorization) {
            None => AuthOutcome::Challenge("no personal access token".into()),
            Some(token) => match self.store.check(&token, unix_now()) {
                Err(r) => AuthOutcome::Challenge(r.to_string()),
                Ok(record) => match self.mapper.map(&record.identity) {
                    Ok(mut p) => {
                        p.method = AuthMethod::PersonalAccessToken;
                        AuthOutcome::Authenticated(p)
                    }
                    Err(why) => {
                        AuthOutcome::Challenge(format!("personal access token of a user without access: {why}"))
                    }
                },
            },
        };
        Box::pin(async move { outcome })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anna() -> Identity {
        Identity {
            subject: "anna".into(),
            method: AuthMethod::Oidc,
            organisations: vec!["55133018".into()],
            ..Identity::default()
        }
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn only_the_hash_reaches_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let store = PatStore::open(&path).unwrap();
        let (token, rec) = store.create(&anna(), "Excel på min pc", 30, NOW).unwrap();
        assert!(token.starts_with(PREFIX));
        // 256 bits: 43 base64url characters after the prefix.
        assert_eq!(token.len(), PREFIX.len() + 43);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token) && !text.contains(&token[PREFIX.len()..]));
        assert!(text.contains(&sha256_hex(token.as_bytes())));
        assert_eq!(rec.expires, NOW + 30 * 86_400);
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A reopened store knows the token.
        let again = PatStore::open(&path).unwrap();
        assert_eq!(again.check(&token, NOW + 1).unwrap().identity, anna());
    }

    #[test]
    fn lifetime_is_1_to_90_days_and_names_are_required() {
        let dir = tempfile::tempdir().unwrap();
        let store = PatStore::open(&dir.path().join("t.json")).unwrap();
        assert_eq!(
            store.create(&anna(), "x", 91, NOW).unwrap_err(),
            PatError::BadLifetime(91)
        );
        assert_eq!(
            store.create(&anna(), "x", 0, NOW).unwrap_err(),
            PatError::BadLifetime(0)
        );
        assert!(matches!(store.create(&anna(), "  ", 5, NOW), Err(PatError::BadName(_))));
        let (t, r) = store.create(&anna(), "x", 90, NOW).unwrap();
        assert_eq!(r.expires - r.created, 90 * 86_400);
        assert!(store.check(&t, r.expires - 1).is_ok());
        assert_eq!(store.check(&t, r.expires).unwrap_err(), PatRefusal::Expired);
    }

    #[test]
    fn revoked_and_unknown_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = PatStore::open(&dir.path().join("t.json")).unwrap();
        let (t, r) = store.create(&anna(), "a", 10, NOW).unwrap();
        let lars = Identity {
            subject: "lars".into(),
            method: AuthMethod::Oidc,
            ..Identity::default()
        };
        // Another user cannot revoke it, nor see it.
        assert_eq!(store.revoke(&lars, &r.id, NOW).unwrap_err(), PatError::NotFound);
        assert!(store.list(&lars).is_empty());
        store.revoke(&anna(), &r.id, NOW + 5).unwrap();
        assert_eq!(store.check(&t, NOW + 6).unwrap_err(), PatRefusal::Revoked);
        assert_eq!(store.list(&anna())[0].revoked, Some(NOW + 5));
        // Revocation is on disk.
        let again = PatStore::open(&dir.path().join("t.json")).unwrap();
        assert_eq!(again.check(&t, NOW + 7).unwrap_err(), PatRefusal::Revoked);
        let mut wrong = t.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(store.check(&wrong, NOW).unwrap_err(), PatRefusal::Unknown);
        assert_eq!(store.check("password", NOW).unwrap_err(), PatRefusal::Unknown);
        // Long gone dead tokens are dropped from the file at the next write.
        store.create(&anna(), "b", 1, NOW + KEEP_DEAD_SECONDS + 10).unwrap();
        assert_eq!(store.list(&anna()).len(), 1);
    }

    #[test]
    fn last_use_is_recorded_and_written_at_most_every_minute() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let store = PatStore::open(&path).unwrap();
        let (t, _) = store.create(&anna(), "a", 10, NOW).unwrap();
        store.check(&t, NOW + 100).unwrap();
        assert_eq!(
            PatStore::open(&path).unwrap().list(&anna())[0].last_used,
            Some(NOW + 100)
        );
        store.check(&t, NOW + 110).unwrap();
        assert_eq!(store.list(&anna())[0].last_used, Some(NOW + 110), "in memory at once");
        assert_eq!(
            PatStore::open(&path).unwrap().list(&anna())[0].last_used,
            Some(NOW + 100),
            "on disk only after the interval"
        );
        store.check(&t, NOW + 200).unwrap();
        assert_eq!(
            PatStore::open(&path).unwrap().list(&anna())[0].last_used,
            Some(NOW + 200)
        );
    }

    #[test]
    fn basic_with_any_user_or_bearer_carries_the_token() {
        use base64::Engine as _;
        let b = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert_eq!(
            presented_token(Some(&b("whatever", "dkpat_x"))).as_deref(),
            Some("dkpat_x")
        );
        assert_eq!(presented_token(Some("Bearer dkpat_y")).as_deref(), Some("dkpat_y"));
        assert_eq!(presented_token(Some(&b("aarhus", "aarhus"))), None);
        assert_eq!(presented_token(None), None);
    }
}
