//! `Cancel` reaches the command running in a session, and only its owner may cancel it.
//! The executor here is a stand-in that blocks until its command is cancelled (the fault
//! injected is "a command that runs forever"); the DuckDB interrupt itself is tested in
//! datakube-engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datakube_auth::{AuthMethod, Principal, RowScope};
use datakube_members::MemberStore;

use crate::discover::{Fault, ServerProps};
use crate::response::codes;
use crate::service::{ExecuteRequest, Executor, Runtime, XmlaService};

struct Forever;
impl Executor for Forever {
    fn execute(&self, req: &ExecuteRequest) -> Result<crate::service::ExecuteResult, Fault> {
        let cancel = req.cancel;
        let start = Instant::now();
        while !cancel.is_cancelled() {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(Fault::new(codes::INTERNAL, "never cancelled"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(Fault::new(codes::CANCELLED, "the command was cancelled by the client"))
    }
}

fn user(name: &str) -> Principal {
    Principal {
        subject: name.into(),
        display_name: name.into(),
        scope: RowScope::All,
        roles: vec![],
        method: AuthMethod::Development,
        ..Principal::default()
    }
}

fn service() -> Arc<XmlaService> {
    let catalog = datakube_model::load_catalog(
        std::path::Path::new(&format!(
            "{}/../../cube-definitions",
            std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
        )),
        None,
    )
    .unwrap();
    Arc::new(XmlaService::new(
        Runtime {
            catalog,
            members: MemberStore::default(),
            snapshots: datakube_engine::storage::Snapshots::empty(std::path::Path::new(".")),
            schema_updated: String::new(),
            data_updated: String::new(),
            data_version: String::new(),
        },
        ServerProps::default(),
        Box::new(Forever),
    ))
}

fn envelope(header: &str, command: &str) -> String {
    format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Header>{header}</soap:Header><soap:Body>\
<Execute xmlns=\"urn:schemas-microsoft-com:xml-analysis\"><Command>{command}</Command><Properties/></Execute></soap:Body></soap:Envelope>"
    )
}

fn session_of(xml: &str) -> String {
    let i = xml.find("SessionId=\"").unwrap() + 11;
    xml[i..].split('"').next().unwrap().to_string()
}

#[test]
fn cancel_stops_the_running_command_of_the_session() {
    let svc = service();
    let begun = svc.handle_soap(
        envelope(
            "<BeginSession xmlns=\"urn:schemas-microsoft-com:xml-analysis\"/>",
            "<Statement/>",
        )
        .as_bytes(),
        &user("a"),
    );
    let id = session_of(&begun);
    let (svc2, id2) = (svc.clone(), id.clone());
    let worker = std::thread::spawn(move || {
        svc2.handle_soap(
            envelope(
                &format!("<Session xmlns=\"urn:schemas-microsoft-com:xml-analysis\" SessionId=\"{id2}\"/>"),
                "<Statement>SELECT FROM [Økonomi]</Statement>",
            )
            .as_bytes(),
            &user("a"),
        )
    });
    std::thread::sleep(Duration::from_millis(200));
    // Another user cannot cancel it.
    let denied = svc.handle_soap(
        envelope("", &format!("<Cancel xmlns=\"http://schemas.microsoft.com/analysisservices/2003/engine\"><SessionID>{id}</SessionID></Cancel>")).as_bytes(),
        &user("b"),
    );
    assert!(denied.contains("belongs to another user"), "{denied}");
    // The owner can, from a second connection, naming the session.
    let ok = svc.handle_soap(
        envelope("", &format!("<Cancel xmlns=\"http://schemas.microsoft.com/analysisservices/2003/engine\"><SessionID>{id}</SessionID></Cancel>")).as_bytes(),
        &user("a"),
    );
    assert!(ok.contains("xml-analysis:empty"), "{ok}");
    let answer = worker.join().unwrap();
    assert!(answer.contains("cancelled by the client"), "{answer}");
    assert!(answer.contains(&id), "the fault still carries the session id");
}

#[test]
fn cancel_without_a_session_is_a_clear_fault() {
    let svc = service();
    let r = svc.handle_soap(
        envelope(
            "",
            "<Cancel xmlns=\"http://schemas.microsoft.com/analysisservices/2003/engine\"/>",
        )
        .as_bytes(),
        &user("a"),
    );
    assert!(r.contains("Cancel needs a session"), "{r}");
}
