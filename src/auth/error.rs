use thiserror::Error;

/// Why a request's credentials were refused. Each variant is a `401` with its own code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("missing bearer token: send 'Authorization: Bearer <token>'")]
    MissingToken,
    #[error("malformed token")]
    MalformedToken,
    #[error("token has expired")]
    TokenExpired,
    #[error("token is not valid yet")]
    TokenNotYetValid,
    #[error("token signature does not verify")]
    BadTokenSignature,
    #[error("token issuer is not the configured one")]
    WrongIssuer,
    #[error("token audience is not the configured one")]
    WrongAudience,
    #[error("token algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("token lives longer than the {0} seconds this server accepts (COFFER_JWT_MAX_TTL)")]
    TokenLifetimeTooLong(u64),
    #[error("token header names critical extensions coffer does not understand")]
    UnsupportedCriticalHeader,
    #[error("token claims are invalid: {0}")]
    InvalidClaims(String),
}
