//! HTTP integration tests: the real server on port 0, a fresh data dir per test.

mod helpers;

mod auth;
mod delete;
mod download;
mod health;
mod list;
mod presign;
mod upload;
