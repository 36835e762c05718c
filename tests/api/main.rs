//! HTTP integration tests: the real server on port 0, a fresh data dir per test.

#[path = "../common/mod.rs"]
mod common;
mod helpers;

mod auth;
mod catalog_outage;
mod concurrency;
mod delete;
mod download;
mod encryption;
mod export_purge;
mod health;
mod hostile_forms;
mod isolation;
mod limits;
mod list;
mod presign;
mod private_files;
mod public_key;
mod reconcile;
mod s3;
mod serving;
mod tenants;
mod tus;
mod upload;
mod upload_links;
