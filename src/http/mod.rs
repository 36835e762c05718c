//! The HTTP layer: a thin axum client of the service. Handlers parse raw input into domain
//! types, take the tenant from the verified token, call the service, and map errors through
//! [`ApiError`].

mod auth;
mod categories;
mod console;
mod delete;
mod download;
mod error;
mod headers;
mod health;
mod list;
mod presign;
mod query;
mod restore;
mod upload;
mod usage;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use view::{FileView, ListView};

use crate::auth::TokenVerifier;
use crate::service::StorageService;

#[derive(Clone)]
pub struct AppState {
    pub service: StorageService,
    pub verifier: Arc<TokenVerifier>,
}

/// The API router with its middleware.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/v1/files", post(upload::upload).get(list::list))
        .route("/v1/files/{*key}", get(download::download).delete(delete::delete))
        .route("/v1/presign", post(presign::presign))
        .route("/v1/usage", get(usage::usage))
        .route("/v1/restore", post(restore::restore))
        .route("/v1/categories", get(categories::categories))
        .route("/console", get(console::index))
        .route("/console/", get(console::index))
        .route("/console/app.js", get(console::script))
        .route("/console/app.css", get(console::style))
        .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT }))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "method not allowed on this route")
        })
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}
