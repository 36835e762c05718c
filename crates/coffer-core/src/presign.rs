//! Coffer-signed URLs: `GET /v1/files/{key}?expires=…&kid=…&version=…&sig=…` that work without
//! a token.
//!
//! The signature is HMAC-SHA256 over the method, the key, and every other query parameter
//! (so `expires`, `kid`, `version` and any option such as `download` are covered), under a key
//! derived from the presign secret. `kid` names that key, so old links keep verifying while the
//! previous secret stays in `COFFER_PRESIGN_PREVIOUS_SECRETS`. `version` binds a link to the
//! stored version of the file it was issued for: once that version is replaced or deleted, the
//! link no longer serves anything.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::Secret;
use crate::domain::{BlobVersion, ObjectKey};

type HmacSha256 = Hmac<Sha256>;

pub const EXPIRES: &str = "expires";
pub const KEY_ID: &str = "kid";
pub const SIGNATURE: &str = "sig";
pub const VERSION: &str = "version";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PresignError {
    #[error("the presigned URL does not verify")]
    BadSignature,
    #[error("the presigned URL has expired")]
    Expired,
}

struct SigningKey {
    id: String,
    key: [u8; 32],
}

impl SigningKey {
    fn derive(secret: &Secret) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("any key length");
        mac.update(b"coffer/presign/v1");
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        let id = hex::encode(&Sha256::digest(key)[..6]);
        Self { id, key }
    }

    fn mac(&self, method: &str, key: &ObjectKey, canonical_query: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length");
        mac.update(format!("{method}\n{key}\n{canonical_query}").as_bytes());
        mac
    }
}

pub struct UrlSigner {
    current: SigningKey,
    previous: Vec<SigningKey>,
}

impl UrlSigner {
    pub fn new(current: &Secret, previous: &[Secret]) -> Self {
        Self { current: SigningKey::derive(current), previous: previous.iter().map(SigningKey::derive).collect() }
    }

    /// The query string (without `?`) that makes `GET key` valid until `expires_at` (Unix
    /// seconds) for as long as `version` is the key's stored version. `options` are extra
    /// parameters the link carries, covered by the signature.
    pub fn sign(&self, key: &ObjectKey, version: &BlobVersion, expires_at: i64, options: &[(&str, &str)]) -> String {
        self.sign_method("GET", key, version, expires_at, options)
    }

    /// [`Self::sign`] for another method: `PUT` for an upload link, whose `version` is the
    /// version the upload will get (so it also names the link).
    pub fn sign_method(
        &self,
        method: &str,
        key: &ObjectKey,
        version: &BlobVersion,
        expires_at: i64,
        options: &[(&str, &str)],
    ) -> String {
        let mut params: Vec<(String, String)> = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        params.push((VERSION.into(), version.to_string()));
        params.push((EXPIRES.into(), expires_at.to_string()));
        params.push((KEY_ID.into(), self.current.id.clone()));
        let canonical = canonical(&params);
        let sig = URL_SAFE_NO_PAD.encode(self.current.mac(method, key, &canonical).finalize().into_bytes());
        format!("{canonical}&{SIGNATURE}={sig}")
    }

    /// Checks a request's raw query string for `method key` and returns the version the link
    /// is bound to. `HEAD` is accepted wherever `GET` is. The signature is checked first (in
    /// constant time), then the expiry against `now`.
    pub fn verify(
        &self,
        method: &str,
        key: &ObjectKey,
        raw_query: &str,
        now: i64,
    ) -> Result<BlobVersion, PresignError> {
        let bad = PresignError::BadSignature;
        let method = if method == "HEAD" { "GET" } else { method };
        let mut sig = None;
        let mut params = Vec::new();
        for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
            if k == SIGNATURE {
                if sig.replace(v.into_owned()).is_some() {
                    return Err(bad);
                }
            } else {
                params.push((k.into_owned(), v.into_owned()));
            }
        }
        let sig = URL_SAFE_NO_PAD.decode(sig.ok_or(bad)?).map_err(|_| bad)?;
        let one = |name: &str| {
            let mut found = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
            match (found.next(), found.next()) {
                (Some(v), None) => Ok(v.to_owned()),
                _ => Err(bad),
            }
        };
        let kid = one(KEY_ID)?;
        let version = BlobVersion::parse(&one(VERSION)?).map_err(|_| bad)?;
        let expires: i64 = one(EXPIRES)?.parse().map_err(|_| bad)?;
        let signing_key = std::iter::once(&self.current).chain(&self.previous).find(|k| k.id == kid).ok_or(bad)?;
        let canonical = canonical(&params);
        // Reject non-canonical encodings too: the URL must be exactly what `sign` produced.
        if raw_query != format!("{canonical}&{SIGNATURE}={}", URL_SAFE_NO_PAD.encode(&sig)) {
            return Err(bad);
        }
        signing_key.mac(method, key, &canonical).verify_slice(&sig).map_err(|_| bad)?;
        if now >= expires {
            return Err(PresignError::Expired);
        }
        Ok(version)
    }
}

/// Whether a request's query claims to be presigned: it carries any of the presign parameters
/// (so a URL with one of them altered is refused as a bad signature, not treated as unsigned).
pub fn is_presigned(raw_query: &str) -> bool {
    url::form_urlencoded::parse(raw_query.as_bytes())
        .any(|(k, _)| [SIGNATURE, EXPIRES, KEY_ID, VERSION].contains(&k.as_ref()))
}

/// Parameters sorted and form-encoded: the exact text that is signed.
fn canonical(params: &[(String, String)]) -> String {
    let mut sorted: Vec<_> = params.iter().collect();
    sorted.sort();
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in sorted {
        ser.append_pair(k, v);
    }
    ser.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> ObjectKey {
        ObjectKey::parse("tenant-abc/reports/q1.pdf").unwrap()
    }

    fn v1() -> BlobVersion {
        BlobVersion::parse("0190a0b0c0d07e008000000000000001").unwrap()
    }

    fn signer() -> UrlSigner {
        UrlSigner::new(&Secret::new("s".repeat(40)), &[])
    }

    #[test]
    fn valid_until_expiry() {
        let q = signer().sign(&key(), &v1(), 1_000, &[]);
        assert_eq!(signer().verify("GET", &key(), &q, 999), Ok(v1()));
        assert_eq!(signer().verify("HEAD", &key(), &q, 999), Ok(v1()));
        assert_eq!(signer().verify("GET", &key(), &q, 1_000), Err(PresignError::Expired));
        let other = ObjectKey::parse("tenant-abc/reports/q2.pdf").unwrap();
        assert_eq!(signer().verify("GET", &other, &q, 0), Err(PresignError::BadSignature));
        assert_eq!(signer().verify("DELETE", &key(), &q, 0), Err(PresignError::BadSignature));
    }

    #[test]
    fn options_are_signed() {
        let q = signer().sign(&key(), &v1(), 1_000, &[("download", "1")]);
        assert_eq!(signer().verify("GET", &key(), &q, 0), Ok(v1()));
        let stripped = q.replace("download=1&", "");
        assert_eq!(signer().verify("GET", &key(), &stripped, 0), Err(PresignError::BadSignature));
        let added = format!("download=1&{}", signer().sign(&key(), &v1(), 1_000, &[]));
        assert_eq!(signer().verify("GET", &key(), &added, 0), Err(PresignError::BadSignature));
    }

    #[test]
    fn rotation_keeps_old_links_until_removed() {
        let old = Secret::new("o".repeat(40));
        let q = UrlSigner::new(&old, &[]).sign(&key(), &v1(), 1_000, &[]);
        let rotated = UrlSigner::new(&Secret::new("n".repeat(40)), std::slice::from_ref(&old));
        assert_eq!(rotated.verify("GET", &key(), &q, 0), Ok(v1()));
        let removed = UrlSigner::new(&Secret::new("n".repeat(40)), &[]);
        assert_eq!(removed.verify("GET", &key(), &q, 0), Err(PresignError::BadSignature));
    }

    #[test]
    fn every_single_character_change_is_refused() {
        let q = signer().sign(&key(), &v1(), 4_000_000_000, &[("download", "1")]);
        let alphabet: Vec<char> = "aZ09-_=&%.~+ ".chars().collect();
        for i in 0..q.len() {
            for &c in &alphabet {
                if q.as_bytes()[i] as char == c {
                    continue;
                }
                let mut changed: Vec<char> = q.chars().collect();
                changed[i] = c;
                let changed: String = changed.into_iter().collect();
                assert!(signer().verify("GET", &key(), &changed, 0).is_err(), "{changed} verified");
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_queries_never_verify(q in "\\PC{0,200}") {
            prop_assert!(signer().verify("GET", &key(), &q, 0).is_err());
        }
    }
}
