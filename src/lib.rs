//! coffer: a tenant-scoped document storage service.
//!
//! Layers, outermost first: [`http`] (axum handlers) → [`service`] (isolation checks and write
//! ordering) → [`catalog`] (metadata) and [`blob`] (bytes). [`domain`] holds the parsed types
//! every layer speaks; [`config`] the typed configuration; [`auth`] tokens and signed URLs.
//! See `ARCHITECTURE.md`.

pub mod allocator;
pub mod auth;
pub mod blob;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod crypt;
pub use coffer_core::domain;
pub mod http;
pub mod server;
pub mod service;
pub mod startup;
pub mod telemetry;
pub(crate) mod util;

pub use blob::{iam, provision};
pub use service::{StorageService, reconcile};

/// The seed's `get_storage_service()`: the service configured from the environment.
pub async fn get_storage_service() -> Result<StorageService, service::StartError> {
    let config = config::Config::load(&config::Overrides::default())?;
    startup::service(&config).await
}
