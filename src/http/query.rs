//! Query-string parsing with API errors instead of framework rejections.

use serde::de::DeserializeOwned;

use super::{ApiError, ErrorCode};

/// Parses the raw query into `T`; unknown fields are refused by `T`'s serde attributes.
pub fn parse<T: DeserializeOwned + Default>(raw: Option<&str>) -> Result<T, ApiError> {
    match raw {
        None | Some("") => Ok(T::default()),
        Some(q) => serde_urlencoded::from_str(q).map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.to_string())),
    }
}

/// `true` for `1`/`true`, `false` for `0`/`false`/absent; anything else is a 400 naming `name`.
pub fn flag(value: Option<&str>, name: &str) -> Result<bool, ApiError> {
    match value {
        None | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(other) => {
            Err(ApiError::new(ErrorCode::InvalidQuery, format!("{name} must be true or false, not {other:?}")))
        }
    }
}
