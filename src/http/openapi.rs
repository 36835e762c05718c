//! The OpenAPI 3.1 document, generated from the handlers' annotations, served at
//! `/openapi.json`, and a small browsable page at `/docs` (built in, no third-party assets).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "coffer", description = "Tenant-scoped document storage service"),
    paths(
        super::upload::upload,
        super::list::list,
        super::download::download,
        super::delete::delete,
        super::presign::presign,
        super::restore::restore,
        super::usage::usage,
        super::categories::categories,
        super::health::healthz,
        super::health::readyz,
        crate::telemetry::render,
    ),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags((name = "files", description = "Files of the caller's tenant"), (name = "operations", description = "Health and metrics"))
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

/// The document, with this instance's categories as the allowed values of `category`.
pub fn document(state: &AppState) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    let names: Vec<String> = state.service.categories().iter().map(|(c, _)| c.to_string()).collect();
    if let Some(params) = doc.pointer_mut("/paths/~1v1~1files/get/parameters").and_then(|p| p.as_array_mut()) {
        for p in params.iter_mut().filter(|p| p["name"] == "category") {
            p["description"] = serde_json::json!(format!("One of: {}", names.join(", ")));
        }
    }
    doc
}

pub async fn openapi_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(document(&state))
}

const DOCS_HTML: &str = include_str!("../../console/docs.html");
const DOCS_JS: &str = include_str!("../../console/docs.js");

fn strict(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    res
}

pub async fn docs() -> Response {
    strict("text/html; charset=utf-8", DOCS_HTML)
}

pub async fn docs_script() -> Response {
    strict("text/javascript; charset=utf-8", DOCS_JS)
}
