//! The identities of users who logged in through the browser (subject → the last verified
//! [`Identity`]), so that a service account allowed to impersonate can name one of them in
//! `EffectiveUserName`. Only identities a provider verified get here (written at login); the
//! file is bounded and replaced atomically.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::Identity;
use crate::pat::write_atomic;

/// Most identities kept; the least recently logged-in go first.
pub const MAX_IDENTITIES: usize = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    identity: Identity,
    last_login: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    identities: Vec<Entry>,
}

pub struct IdentityStore {
    path: PathBuf,
    inner: Mutex<HashMap<String, Entry>>,
}

impl IdentityStore {
    pub fn open(path: &Path) -> io::Result<IdentityStore> {
        let entries = match std::fs::read(path) {
            Ok(b) => {
                serde_json::from_slice::<File>(&b)
                    .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?
                    .identities
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(IdentityStore {
            path: path.to_path_buf(),
            inner: Mutex::new(entries.into_iter().map(|e| (e.identity.subject.clone(), e)).collect()),
        })
    }

    /// Remember `identity` as the latest of its subject (at a browser login).
    pub fn record(&self, identity: &Identity, now: u64) -> io::Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.insert(
            identity.subject.clone(),
            Entry {
                identity: identity.clone(),
                last_login: now,
            },
        );
        if g.len() > MAX_IDENTITIES {
            let mut by_age: Vec<(u64, String)> =
                g.values().map(|e| (e.last_login, e.identity.subject.clone())).collect();
            by_age.sort();
            for (_, s) in by_age.into_iter().take(g.len() - MAX_IDENTITIES) {
                g.remove(&s);
            }
        }
        let mut identities: Vec<Entry> = g.values().cloned().collect();
        identities.sort_by(|a, b| a.identity.subject.cmp(&b.identity.subject));
        let bytes = serde_json::to_vec_pretty(&File { identities }).map_err(io::Error::other)?;
        write_atomic(&self.path, &bytes)
    }

    /// The last identity of `subject`, if that user has logged in.
    pub fn get(&self, subject: &str) -> Option<Identity> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.get(subject).map(|e| e.identity.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_survive_a_restart_and_the_latest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identities.json");
        let s = IdentityStore::open(&path).unwrap();
        let mut anna = Identity {
            subject: "anna".into(),
            organisations: vec!["55133018".into()],
            ..Identity::default()
        };
        s.record(&anna, 1).unwrap();
        anna.role_claims = vec!["admin".into()];
        s.record(&anna, 2).unwrap();
        let again = IdentityStore::open(&path).unwrap();
        assert_eq!(again.get("anna").unwrap().role_claims, vec!["admin"]);
        assert!(again.get("lars").is_none());
    }
}
