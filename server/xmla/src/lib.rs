//! `datakube-xmla`: XMLA for Analysis over SOAP — request parsing, sessions, Discover
//! rowsets, and the writers for rowsets, MDDataSets and faults.

pub mod cellset;
pub mod discover;
pub mod dmv;
pub mod mddataset;
pub mod response;
pub mod rowset;
pub mod rowsets;
pub mod service;
pub mod session;
pub mod sink;
pub mod soap;

/// An `xsd:double` lexical form: `INF`, `-INF`, `NaN`, otherwise Rust's shortest round-trip form.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 { "INF".into() } else { "-INF".into() }
    } else {
        format!("{d}")
    }
}

#[cfg(test)]
mod dmv_tests;
#[cfg(test)]
mod mddataset_tests;
#[cfg(test)]
mod soap_tests;

#[cfg(test)]
mod cancel_tests;

#[cfg(test)]
mod discover_tests;

#[cfg(test)]
mod stream_tests;
