//! Who is calling: bearer tokens (JWT) and coffer-signed presigned URLs.

mod error;
mod jwt;
mod signing_secret;

pub use coffer_core::Secret;
pub use coffer_core::presign::{PresignError, UrlSigner, is_presigned};
pub use error::AuthError;
pub use jwt::{Caller, Claims, DEFAULT_MAX_TTL, TokenIssuer, TokenRules, TokenVerifier};
pub use signing_secret::load_or_create_secret;
