use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::AuthError;
use super::Secret;
use crate::domain::TenantId;

/// The claims coffer reads. `tenant_id` names the tenant; `exp` is required.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    pub tenant_id: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// The verified identity of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub read_only: bool,
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// Clock leeway for `exp` and `nbf`.
    pub leeway: Duration,
    /// Required `iss`, when configured.
    pub issuer: Option<String>,
    /// Required `aud`, when configured.
    pub audience: Option<String>,
    /// Longest accepted token lifetime (`exp` from now, and from `iat` when present).
    pub max_ttl: Duration,
}

/// Verifies bearer tokens: HS256 with the shared secret, or RS256/ES256 with a PEM public key
/// (then HS256 is refused, so a public key can never be used as an HMAC secret).
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    max_ttl: Duration,
    leeway: Duration,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self { leeway: Duration::ZERO, issuer: None, audience: None, max_ttl: DEFAULT_MAX_TTL }
    }
}

/// Whether the token's header names an algorithm no JWT library here knows (`"alg": "none"`,
/// say): the header then fails to parse, which is no fault of the claims.
fn names_unknown_algorithm(token: &str) -> bool {
    use base64::Engine;
    let header = token.split('.').next().unwrap_or_default();
    let Ok(json) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')) else {
        return false;
    };
    let Ok(header) = serde_json::from_slice::<serde_json::Value>(&json) else { return false };
    header.get("alg").and_then(|a| a.as_str()).is_some_and(|alg| alg.parse::<Algorithm>().is_err())
}

/// `COFFER_JWT_MAX_TTL`'s default: a day.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 3600);

impl TokenVerifier {
    pub fn hs256(secret: &Secret, rules: &TokenRules) -> Self {
        Self::with(DecodingKey::from_secret(secret.expose().as_bytes()), Algorithm::HS256, rules)
    }

    /// Accepts an RSA (RS256) or EC P-256 (ES256) public key in PEM form.
    pub fn public_key(pem: &str, rules: &TokenRules) -> Result<Self, String> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
            return Ok(Self::with(key, Algorithm::RS256, rules));
        }
        DecodingKey::from_ec_pem(pem.as_bytes())
            .map(|key| Self::with(key, Algorithm::ES256, rules))
            .map_err(|e| format!("not an RSA or EC public key: {e}"))
    }

    fn with(key: DecodingKey, alg: Algorithm, rules: &TokenRules) -> Self {
        let mut validation = Validation::new(alg);
        let mut required = vec!["exp"];
        validation.validate_nbf = true;
        validation.leeway = rules.leeway.as_secs();
        validation.validate_aud = false;
        if let Some(iss) = &rules.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        if let Some(aud) = &rules.audience {
            validation.set_audience(&[aud]);
            validation.validate_aud = true;
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Self { key, validation, max_ttl: rules.max_ttl, leeway: rules.leeway }
    }

    /// Verifies `token` and returns its caller, or the precise reason it is refused.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::TokenExpired,
            ErrorKind::ImmatureSignature => AuthError::TokenNotYetValid,
            ErrorKind::InvalidSignature => AuthError::BadTokenSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::UnsupportedAlgorithm,
            ErrorKind::MissingRequiredClaim(c) => AuthError::InvalidClaims(format!("missing claim {c}")),
            ErrorKind::Json(_) if names_unknown_algorithm(token) => AuthError::UnsupportedAlgorithm,
            ErrorKind::Json(e) => AuthError::InvalidClaims(e.to_string()),
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            _ => AuthError::MalformedToken,
        })?;
        // RFC 7515 §4.1.11: coffer understands no extension, so any `crit` is refused.
        if data.header.crit.is_some() {
            return Err(AuthError::UnsupportedCriticalHeader);
        }
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let longest = self.max_ttl.as_secs().saturating_add(self.leeway.as_secs());
        let issued = data.claims.iat.unwrap_or(now).min(now);
        if data.claims.exp.saturating_sub(now) > longest || data.claims.exp.saturating_sub(issued) > longest {
            return Err(AuthError::TokenLifetimeTooLong(self.max_ttl.as_secs()));
        }
        let tenant = TenantId::parse(&data.claims.tenant_id).map_err(|e| AuthError::InvalidClaims(e.to_string()))?;
        Ok(Caller { tenant, read_only: data.claims.read_only })
    }
}

/// Mints HS256 tokens with the shared secret (`coffer token`).
pub struct TokenIssuer {
    key: EncodingKey,
}

impl TokenIssuer {
    pub fn new(secret: &Secret) -> Self {
        Self { key: EncodingKey::from_secret(secret.expose().as_bytes()) }
    }

    pub fn issue(&self, tenant: &TenantId, ttl: Duration, read_only: bool) -> String {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let claims = Claims {
            tenant_id: tenant.to_string(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            read_only,
            ..Claims::default()
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use it for expired or odd tokens).
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key).expect("HS256 signing cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn issue_then_verify() {
        let t = TenantId::parse("abc123").unwrap();
        let token = TokenIssuer::new(&secret()).issue(&t, Duration::from_secs(60), true);
        let caller = TokenVerifier::hs256(&secret(), &TokenRules::default()).verify(&token).unwrap();
        assert_eq!(caller, Caller { tenant: t, read_only: true });
    }

    #[test]
    fn refusals_say_why() {
        let v = TokenVerifier::hs256(&secret(), &TokenRules::default());
        let t = TenantId::parse("abc").unwrap();
        let other = TokenIssuer::new(&Secret::new("another-secret-another-secret-xx"));
        assert_eq!(v.verify(&other.issue(&t, Duration::from_secs(60), false)), Err(AuthError::BadTokenSignature));
        let expired = Claims { tenant_id: "abc".into(), exp: 1_000, ..Claims::default() };
        assert_eq!(v.verify(&TokenIssuer::new(&secret()).sign(&expired)), Err(AuthError::TokenExpired));
        assert_eq!(v.verify("garbage"), Err(AuthError::MalformedToken));
        let far = chrono::Utc::now().timestamp() as u64 + 3600;
        let bad_tenant = Claims { tenant_id: "../x".into(), exp: far, ..Claims::default() };
        assert!(matches!(v.verify(&TokenIssuer::new(&secret()).sign(&bad_tenant)), Err(AuthError::InvalidClaims(_))));
        // alg: none
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(r#"{"tenant_id":"abc","exp":99999999999}"#)
        );
        assert!(v.verify(&none).is_err());
    }

    #[test]
    fn lifetimes_beyond_the_maximum_are_refused() {
        let rules = TokenRules { max_ttl: Duration::from_secs(3600), ..TokenRules::default() };
        let v = TokenVerifier::hs256(&secret(), &rules);
        let issuer = TokenIssuer::new(&secret());
        let now = chrono::Utc::now().timestamp() as u64;
        let claims = |exp: u64, iat: Option<u64>| Claims { tenant_id: "abc".into(), exp, iat, ..Claims::default() };
        assert!(v.verify(&issuer.sign(&claims(now + 3600, Some(now)))).is_ok());
        for (exp, iat) in
            [(u64::MAX, None), (now + 2 * 3600, None), (now + 1800, Some(now - 7200)), (u64::MAX, Some(now))]
        {
            assert_eq!(
                v.verify(&issuer.sign(&claims(exp, iat))),
                Err(AuthError::TokenLifetimeTooLong(3600)),
                "{exp} {iat:?}"
            );
        }
    }

    #[test]
    fn critical_header_extensions_are_refused() {
        let v = TokenVerifier::hs256(&secret(), &TokenRules::default());
        let now = chrono::Utc::now().timestamp() as u64;
        let claims = Claims { tenant_id: "abc".into(), exp: now + 60, ..Claims::default() };
        let key = EncodingKey::from_secret(secret().expose().as_bytes());
        for crit in [vec!["exp".to_owned()], vec!["b64".to_owned()], vec![]] {
            let mut header = Header::new(Algorithm::HS256);
            header.crit = Some(crit.clone());
            let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
            assert_eq!(v.verify(&token), Err(AuthError::UnsupportedCriticalHeader), "{crit:?}");
        }
    }
}
