//! Who is calling: bearer tokens (JWT) and coffer-signed presigned URLs.

mod error;
mod jwt;
mod presign;
mod secret;
mod signing_secret;

pub use error::AuthError;
pub use jwt::{Caller, Claims, DEFAULT_MAX_TTL, TokenIssuer, TokenRules, TokenVerifier};
pub use presign::{PresignError, UrlSigner, is_presigned};
pub use secret::Secret;
pub use signing_secret::load_or_create_secret;
