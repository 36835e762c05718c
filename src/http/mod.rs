//! The HTTP layer: a thin axum client of the service. Handlers parse raw input into domain
//! types, take the tenant from the verified token, call the service, and map errors through
//! [`ApiError`].

mod auth;
mod body_guard;
mod categories;
mod console;
mod delete;
mod download;
mod error;
mod export;
mod headers;
mod health;
mod json;
mod limits;
mod linger;
mod list;
mod metrics;
mod openapi;
mod presign;
mod query;
mod restore;
mod tus;
mod upload;
mod upload_link;
mod usage;
mod view;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::{Router, middleware};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ErrorCode};
pub use headers::byte_range;
pub use metrics::metrics_router;
pub use openapi::ApiDoc;
pub use view::{FileView, ListView};

use crate::auth::TokenVerifier;
use crate::service::StorageService;

#[derive(Clone)]
pub struct AppState {
    pub service: StorageService,
    pub verifier: Arc<TokenVerifier>,
    pub limits: Arc<crate::config::Limits>,
    pub uploads: Arc<limits::UploadSlots>,
    pub metrics: Arc<metrics::MetricsAccess>,
}

impl AppState {
    pub fn new(service: StorageService, verifier: TokenVerifier, config: &crate::config::Config) -> Self {
        let limits = config.limits.clone();
        let uploads = limits::UploadSlots::new(limits.max_uploads, limits.max_uploads_per_tenant);
        let metrics =
            metrics::MetricsAccess { token: config.metrics_token.clone(), separate: config.metrics_addr.is_some() };
        Self { service, verifier: Arc::new(verifier), limits: Arc::new(limits), uploads, metrics: Arc::new(metrics) }
    }
}

/// The API router with its middleware.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    // Routes with small answers get a whole-request time limit; transfers do not.
    let bounded = Router::new()
        .route("/v1/files", get(list::list))
        .route("/v1/presign", post(presign::presign).layer(DefaultBodyLimit::max(json::MAX_JSON_BODY)))
        .route("/v1/usage", get(usage::usage))
        .route("/v1/restore", post(restore::restore).layer(DefaultBodyLimit::max(json::MAX_JSON_BODY)))
        .route("/v1/categories", get(categories::categories))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json));
    // `/metrics` lives on its own listener when COFFER_METRICS_ADDR is set.
    let bounded = if state.metrics.separate { bounded } else { bounded.merge(metrics::routes()) }
        .route_layer(middleware::from_fn_with_state(state.clone(), limits::request_timeout));
    let streaming = Router::new()
        .route("/v1/files", post(upload::upload).layer(middleware::from_fn(linger::linger)))
        .route("/v1/export", get(export::export))
        .route(
            "/v1/files/{*key}",
            get(download::download)
                .delete(delete::delete)
                .put(axum::handler::Handler::layer(upload_link::put, middleware::from_fn(linger::linger))),
        );
    let tus = Router::new()
        .route("/v1/uploads", post(tus::create).options(tus::options))
        .route("/v1/uploads/{id}", axum::routing::head(tus::head).patch(tus::patch).delete(tus::terminate))
        .route_layer(middleware::from_fn(linger::linger))
        .route_layer(middleware::from_fn(tus::protocol));
    let console = Router::new()
        .route("/console", get(console::index))
        .route("/console/", get(console::index))
        .route("/console/app.js", get(console::script))
        .route("/console/app.css", get(console::style))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/docs", get(openapi::docs_root))
        .route("/docs/", get(openapi::docs))
        .route("/docs/{*tail}", get(openapi::docs));
    let mut app = bounded
        .merge(streaming)
        .merge(tus)
        .merge(console)
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed on this route")
        })
        .route_layer(middleware::from_fn(crate::telemetry::track))
        .layer(middleware::from_fn_with_state(state.clone(), limits::request_head))
        .with_state(state.clone());
    if let Some(cors) = cors(&state.limits.cors_origins) {
        app = app.layer(cors);
    }
    app.layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(tower::util::MapRequestLayer::new(own_request_id))
}

/// The longest request id a client may choose.
const MAX_REQUEST_ID: usize = 128;

/// Drops a client's `X-Request-Id` that is empty, sent twice, longer than [`MAX_REQUEST_ID`] or
/// made of other characters than letters, digits and `-._:`, so that a fresh one is set: the id
/// is echoed in the answer and written in every log line of the request.
fn own_request_id(mut req: axum::http::Request<axum::body::Body>) -> axum::http::Request<axum::body::Body> {
    let fit = |v: &HeaderValue| {
        (1..=MAX_REQUEST_ID).contains(&v.len())
            && v.as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(b))
    };
    if !matches!(headers::at_most_once(req.headers(), "x-request-id"), Ok(Some(id)) if fit(id)) {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// The span of one request: method, path, request id, and the tenant once the token is
/// verified (the `Caller` extractor records it), so every log line of the request carries it.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
        tenant = tracing::field::Empty,
    )
}

/// CORS for the configured origins only; none configured, no CORS headers at all.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{Method, header};
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers(
                [
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::RANGE,
                    header::IF_NONE_MATCH,
                    header::IF_MODIFIED_SINCE,
                ]
                .into_iter()
                .chain(tus::REQUEST_HEADERS.map(HeaderName::from_static))
                .collect::<Vec<_>>(),
            )
            .expose_headers(
                [
                    header::ETAG,
                    header::CONTENT_DISPOSITION,
                    header::CONTENT_RANGE,
                    header::CONTENT_LOCATION,
                    header::LAST_MODIFIED,
                    HeaderName::from_static("x-request-id"),
                ]
                .into_iter()
                .chain(tus::RESPONSE_HEADERS.map(HeaderName::from_static))
                .collect::<Vec<_>>(),
            )
            .max_age(std::time::Duration::from_secs(600)),
    )
}
