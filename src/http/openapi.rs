//! The OpenAPI 3.1 document, generated from the handlers' annotations, served at
//! `/openapi.json`, and Swagger UI over it at `/docs/` (assets built into the binary).

use axum::Json;
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{ApiError, AppState, ErrorCode};

#[derive(OpenApi)]
#[openapi(
    info(title = "coffer", description = "Tenant-scoped document storage service"),
    paths(
        super::upload::upload,
        super::list::list,
        super::download::download,
        super::delete::delete,
        super::export::export,
        super::presign::presign,
        super::upload_link::put,
        super::tus::options,
        super::tus::create,
        super::tus::head,
        super::tus::patch,
        super::tus::terminate,
        super::restore::restore,
        super::usage::usage,
        super::categories::categories,
        super::health::healthz,
        super::health::readyz,
        crate::telemetry::render,
    ),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags((name = "files", description = "Files of the caller's tenant"),
        (name = "uploads", description = "Resumable uploads (tus 1.0.0)"), (name = "operations", description = "Health and metrics"))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        // Presigned download URLs: `expires`, `kid` and `sig` in the query instead of a token.
        components.add_security_scheme(
            "presigned",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Query(
                utoipa::openapi::security::ApiKeyValue::new("sig"),
            )),
        );
    }
}

/// The shape of an object key in the document (the parser itself is `ObjectKey::parse`); set on
/// every request body's `key` property.
pub const KEY_PATTERN: &str = r"^tenant-[A-Za-z0-9][A-Za-z0-9_-]{0,62}/[a-z0-9][a-z0-9-]{0,62}/[^/]{1,255}$";

/// The document, with this instance's categories as the allowed values of `category`.
pub fn document(state: &AppState) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    let names: Vec<String> = state.service.categories().iter().map(|(c, _)| c.to_string()).collect();
    if let Some(params) = doc.pointer_mut("/paths/~1v1~1files/get/parameters").and_then(|p| p.as_array_mut()) {
        for p in params.iter_mut().filter(|p| p["name"] == "category") {
            p["description"] = serde_json::json!(format!("One of: {}", names.join(", ")));
        }
    }
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(|s| s.as_object_mut()) {
        for schema in schemas.values_mut() {
            if let Some(key) = schema.pointer_mut("/properties/key").filter(|k| k["type"] == "string") {
                key["pattern"] = serde_json::json!(KEY_PATTERN);
            }
        }
    }
    // Every error code the API answers with, from the one list.
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    if let Some(code) = doc.pointer_mut("/components/schemas/ErrorDetail/properties/code") {
        code["enum"] = serde_json::json!(codes);
    }
    doc
}

pub async fn openapi_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(document(&state))
}

/// The Swagger UI configuration: this instance's document, "Try it out" on.
fn swagger_config() -> Arc<utoipa_swagger_ui::Config<'static>> {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(
                utoipa_swagger_ui::Config::from("/openapi.json")
                    .try_it_out_enabled(true)
                    .display_request_duration(true)
                    .persist_authorization(false),
            )
        })
        .clone()
}

/// Swagger UI at `/docs/` (assets built into the binary: it works offline), under a strict
/// Content-Security-Policy: its own scripts and styles only, calls to this origin only.
pub async fn docs(tail: Option<Path<String>>) -> Response {
    let tail = tail.map(|Path(t)| t).unwrap_or_default();
    match utoipa_swagger_ui::serve(&tail, swagger_config()) {
        Ok(Some(file)) => {
            let mut res = file.bytes.into_owned().into_response();
            let h = res.headers_mut();
            let ct = HeaderValue::from_str(&file.content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            h.insert(header::CONTENT_TYPE, ct);
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    // The one inline style Swagger UI injects, allowed by its hash.
                    "default-src 'none'; script-src 'self'; \
                     style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; img-src 'self' data:; \
                     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                ),
            );
            h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            res
        }
        Ok(None) => ApiError::new(ErrorCode::NotFound, "no such file in the API reference").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "Swagger UI asset");
            ApiError::new(ErrorCode::InternalError, "the API reference could not be served").into_response()
        }
    }
}

/// `/docs` without the trailing slash: the UI's relative asset paths need it.
pub async fn docs_root() -> Response {
    axum::response::Redirect::permanent("/docs/").into_response()
}
