//! The bearer-token extractor: the tenant of a request comes only from here (or from a
//! verified presigned URL, in the download handler).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::auth::{AuthError, Caller};

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).ok_or(AuthError::MissingToken)?;
        let value = header.to_str().map_err(|_| AuthError::MalformedToken)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::MalformedToken)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::MalformedToken.into());
        }
        let caller = state.verifier.verify(token.trim())?;
        tracing::Span::current().record("tenant", tracing::field::display(&caller.tenant));
        state.service.check_tenant(&caller.tenant).await?;
        Ok(caller)
    }
}
