//! The web portal (issue 7): the catalogue of cubes a user may open, connection files
//! (`.odc`, `.pbids`), personal access tokens, and the administration pages.
//!
//! The portal only reads and asks: what the server is doing (definitions, refreshes) comes
//! through the [`Admin`] trait, which the binary implements over its reloader.

pub mod admin;
