//! XMLA sessions: `BeginSession` creates one, `Session` uses it, `EndSession` ends it.
//!
//! Bounded: at most [`MAX_SESSIONS`] live sessions (the least recently used is evicted),
//! idle sessions expire after [`IDLE_TIMEOUT`], and each session keeps at most
//! [`MAX_SESSION_PROPERTIES`] properties. An unknown session id is tolerated by starting a
//! fresh session under that id: a fault would kill the Excel workbook's connection, and the
//! id carries no authority (identity comes from the credentials on every request).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_SESSIONS: usize = 10_000;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
pub const MAX_SESSION_PROPERTIES: usize = 256;
/// Most `CREATE SESSION MEMBER/SET` definitions one session keeps.
pub const MAX_SESSION_DEFINITIONS: usize = 256;
/// Longest definition (its MDX text) a session keeps.
pub const MAX_DEFINITION_BYTES: usize = 64 * 1024;
const MAX_PROPERTY_BYTES: usize = 4096;

/// What a session remembers between requests.
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    pub id: String,
    /// The identity that opened the session; a session is only usable by the same identity.
    pub owner: String,
    pub catalog: Option<String>,
    pub locale: Option<u32>,
    /// Other properties sent with BeginSession or later requests (bounded).
    pub properties: Vec<(String, String)>,
    /// Calculated members and named sets made with `CREATE [SESSION] MEMBER/SET` (bounded).
    pub definitions: Vec<SessionDefinition>,
}

/// A session-scoped calculated member or named set: its cube, a lookup key and its MDX text
/// (`MEMBER [Measures].[X] AS …` / `SET [S] AS …`, without the cube name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDefinition {
    pub cube: String,
    /// `member:[measures].[x]` or `set:[s]`, lower-case.
    pub key: String,
    pub mdx: String,
}

impl SessionState {
    /// Add or replace a definition. Refused (with the reason) beyond the bounds.
    pub fn define(&mut self, def: SessionDefinition) -> Result<(), String> {
        if def.mdx.len() > MAX_DEFINITION_BYTES {
            return Err(format!(
                "the definition is {} bytes; a session keeps definitions of at most {MAX_DEFINITION_BYTES} bytes",
                def.mdx.len()
            ));
        }
        if let Some(slot) = self
            .definitions
            .iter_mut()
            .find(|d| d.cube.eq_ignore_ascii_case(&def.cube) && d.key == def.key)
        {
            *slot = def;
            return Ok(());
        }
        if self.definitions.len() >= MAX_SESSION_DEFINITIONS {
            return Err(format!(
                "a session keeps at most {MAX_SESSION_DEFINITIONS} calculated members and sets; DROP some first"
            ));
        }
        self.definitions.push(def);
        Ok(())
    }

    /// Remove a definition; `false` when there was none.
    pub fn undefine(&mut self, cube: &str, key: &str) -> bool {
        let before = self.definitions.len();
        self.definitions
            .retain(|d| !(d.cube.eq_ignore_ascii_case(cube) && d.key == key));
        self.definitions.len() != before
    }

    /// Remember properties the client sent (catalog and locale get their own fields).
    pub fn absorb(&mut self, props: &[(String, String)]) {
        for (k, v) in props {
            if k.eq_ignore_ascii_case("Catalog") && !v.is_empty() {
                self.catalog = Some(v.clone());
            } else if k.eq_ignore_ascii_case("LocaleIdentifier") {
                self.locale = v.trim().parse().ok();
            } else if v.len() <= MAX_PROPERTY_BYTES {
                if let Some(slot) = self.properties.iter_mut().find(|(pk, _)| pk.eq_ignore_ascii_case(k)) {
                    slot.1 = v.clone();
                } else if self.properties.len() < MAX_SESSION_PROPERTIES {
                    self.properties.push((k.clone(), v.clone()));
                }
            }
        }
    }
}

struct Entry {
    state: SessionState,
    last_used: Instant,
}

#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The session belongs to another identity.
    NotOwner,
}

impl Sessions {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a session for `owner`; returns its id (an upper-case GUID, as SSAS makes them).
    pub fn begin(&self, owner: &str) -> SessionState {
        let id = uuid::Uuid::new_v4().to_string().to_uppercase();
        let state = SessionState {
            id: id.clone(),
            owner: owner.to_string(),
            ..Default::default()
        };
        let mut map = self.lock();
        Self::make_room(&mut map);
        map.insert(
            id,
            Entry {
                state: state.clone(),
                last_used: Instant::now(),
            },
        );
        state
    }

    /// The state of session `id`, refreshed; recreated if unknown or expired.
    pub fn use_session(&self, id: &str, owner: &str) -> Result<SessionState, SessionError> {
        let mut map = self.lock();
        let now = Instant::now();
        if let Some(e) = map.get_mut(id)
            && now.duration_since(e.last_used) <= IDLE_TIMEOUT
        {
            if e.state.owner != owner {
                return Err(SessionError::NotOwner);
            }
            e.last_used = now;
            return Ok(e.state.clone());
        }
        Self::make_room(&mut map);
        let state = SessionState {
            id: id.to_string(),
            owner: owner.to_string(),
            ..Default::default()
        };
        map.insert(
            id.to_string(),
            Entry {
                state: state.clone(),
                last_used: now,
            },
        );
        Ok(state)
    }

    /// Store the updated state of a session (if it still exists).
    pub fn save(&self, state: &SessionState) {
        if let Some(e) = self.lock().get_mut(&state.id)
            && e.state.owner == state.owner
        {
            e.state = state.clone();
            e.last_used = Instant::now();
        }
    }

    /// End session `id`. Ending an unknown session is not an error.
    pub fn end(&self, id: &str, owner: &str) -> Result<(), SessionError> {
        let mut map = self.lock();
        match map.get(id) {
            Some(e) if e.state.owner != owner => Err(SessionError::NotOwner),
            _ => {
                map.remove(id);
                Ok(())
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn make_room(map: &mut HashMap<String, Entry>) {
        let now = Instant::now();
        map.retain(|_, e| now.duration_since(e.last_used) <= IDLE_TIMEOUT);
        while map.len() >= MAX_SESSIONS {
            let oldest = map.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    map.remove(&k);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_use_end() {
        let s = Sessions::new();
        let mut st = s.begin("u1");
        assert_eq!(st.id.len(), 36);
        assert!(st.id.chars().all(|c| !c.is_ascii_lowercase()));
        st.absorb(&[
            ("Catalog".into(), "FLIS".into()),
            ("LocaleIdentifier".into(), "1030".into()),
        ]);
        s.save(&st);
        let again = s.use_session(&st.id, "u1").unwrap();
        assert_eq!(again.catalog.as_deref(), Some("FLIS"));
        assert_eq!(again.locale, Some(1030));
        assert_eq!(s.use_session(&st.id, "u2").unwrap_err(), SessionError::NotOwner);
        assert_eq!(s.end(&st.id, "u2").unwrap_err(), SessionError::NotOwner);
        s.end(&st.id, "u1").unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn unknown_session_is_recreated_empty() {
        let s = Sessions::new();
        let st = s.use_session("7A1D0F2E-0000-0000-0000-000000000000", "u1").unwrap();
        assert_eq!(st.catalog, None);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn definitions_are_replaced_dropped_and_bounded() {
        let mut st = SessionState::default();
        let def = |k: &str, mdx: &str| SessionDefinition {
            cube: "Sales".into(),
            key: k.into(),
            mdx: mdx.into(),
        };
        st.define(def("member:[measures].[x]", "MEMBER [Measures].[X] AS 1"))
            .unwrap();
        st.define(def("member:[measures].[x]", "MEMBER [Measures].[X] AS 2"))
            .unwrap();
        assert_eq!(st.definitions.len(), 1);
        assert!(st.definitions[0].mdx.ends_with('2'));
        assert!(st.undefine("sales", "member:[measures].[x]"));
        assert!(!st.undefine("sales", "member:[measures].[x]"));
        for i in 0..MAX_SESSION_DEFINITIONS {
            st.define(def(&format!("set:[s{i}]"), "SET [S] AS {}")).unwrap();
        }
        let err = st.define(def("set:[one more]", "SET [S] AS {}")).unwrap_err();
        assert!(err.contains("at most"), "{err}");
        let err = st
            .define(def("set:[s0]", &"x".repeat(MAX_DEFINITION_BYTES + 1)))
            .unwrap_err();
        assert!(err.contains("bytes"), "{err}");
    }

    #[test]
    fn properties_are_bounded() {
        let mut st = SessionState::default();
        let many: Vec<(String, String)> = (0..1000).map(|i| (format!("P{i}"), "v".into())).collect();
        st.absorb(&many);
        assert_eq!(st.properties.len(), MAX_SESSION_PROPERTIES);
        st.absorb(&[("Big".into(), "x".repeat(MAX_PROPERTY_BYTES + 1))]);
        assert!(!st.properties.iter().any(|(k, _)| k == "Big"));
    }
}
