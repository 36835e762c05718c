//! coffer's parsers, with no I/O: the domain newtypes every input becomes at the edge, the
//! presigned-URL signer and verifier, and the `Range` header. Its own crate so that the fuzz
//! targets and the parsers' property tests build it alone, without coffer's servers and SDKs.

pub mod domain;
pub mod presign;
pub mod range;
mod secret;

pub use secret::Secret;
