//! SAML 2.0 login through KOMBIT's Context Handler (OIOSAML 3).
//!
//! * [`bpp`]: the OIO Basic Privilege Profile (privilege groups per CVR, with constraints) of
//!   the `privilegesIntermediate` attribute; pure Rust, always built.
//! * [`sp`] (feature `saml`): the service provider — metadata, signed AuthnRequest, Response
//!   validation through `samael` on xmlsec1, attributes → [`crate::Identity`].
//! * [`web`] (feature `saml`): `GET /saml/metadata`, `GET /saml/login`, `POST /saml/acs` as a
//!   `datakube_http::Handler` that hands a verified identity to a login-completion callback.
//!
//! See docs/security.md, "SAML (KOMBIT Context Handler)".

pub mod bpp;
#[cfg(feature = "saml")]
pub mod sp;
#[cfg(feature = "saml")]
pub mod web;

#[cfg(feature = "saml")]
pub use sp::{SamlConfig, SamlError, SamlLogin, SamlSp};
#[cfg(feature = "saml")]
pub use web::{LoginComplete, SamlWeb};
