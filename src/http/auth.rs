//! The access extractors: the tenant of a request comes only from here. [`Admitted`] for a
//! bearer token; [`Access`] for a download, by bearer token or presigned link. Both hand the
//! verified caller to the service, which admits it (tenant status, scope).

use axum::extract::{FromRequestParts, Path};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState, ErrorCode};
use crate::auth::{AuthError, Caller, PresignError, is_presigned};
use crate::domain::{BlobVersion, ObjectKey};
use crate::service::Admitted;

/// The caller a bearer token names, verified but not yet admitted.
fn bearer(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    // Two credentials: which caller is meant is not for the server to guess.
    let header = super::headers::at_most_once(&parts.headers, AUTHORIZATION.as_str())
        .map_err(|_| AuthError::MalformedToken)?
        .ok_or(AuthError::MissingToken)?;
    let value = header.to_str().map_err(|_| AuthError::MalformedToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MalformedToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::MalformedToken.into());
    }
    let caller = state.verifier.verify(token.trim())?;
    tracing::Span::current().record("tenant", tracing::field::display(&caller.tenant));
    Ok(caller)
}

impl FromRequestParts<AppState> for Admitted {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = bearer(parts, state)?;
        Ok(state.service.admit(&caller).await?)
    }
}

/// Who may read `key`: a bearer token's caller, or the holder of a presigned link (then
/// `bound` is the stored version the link was issued for). A request whose query carries any
/// presign parameter is judged as a link; otherwise the token is checked before the key is
/// parsed, so a missing token is a 401 whatever the key.
pub struct Access {
    pub who: Admitted,
    pub key: ObjectKey,
    pub bound: Option<BlobVersion>,
}

impl FromRequestParts<AppState> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Path(raw_key) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidKey, e.body_text()))?;
        let raw_query = parts.uri.query().unwrap_or_default();
        if is_presigned(raw_query) {
            // No signature can cover a key that does not parse.
            let key = ObjectKey::parse(&raw_key).map_err(|_| PresignError::BadSignature)?;
            let (who, version) = state.service.admit_link(parts.method.as_str(), &key, raw_query).await?;
            tracing::Span::current().record("tenant", tracing::field::display(who.tenant()));
            return Ok(Self { who, key, bound: Some(version) });
        }
        let who = Admitted::from_request_parts(parts, state).await?;
        Ok(Self { key: ObjectKey::parse(&raw_key)?, who, bound: None })
    }
}
