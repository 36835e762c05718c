//! The presigned-URL verifier: never panics, and no query it did not sign verifies.
#![no_main]

use coffer_core::presign::UrlSigner;
use coffer_core::Secret;
use coffer_core::domain::{BlobVersion, ObjectKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let signer = UrlSigner::new(&Secret::new("fuzz-secret-fuzz-secret-fuzz-secret-00"), &[]);
    let key = ObjectKey::parse("tenant-abc/reports/q1.pdf").unwrap();
    let version = BlobVersion::parse("0190a0b0c0d07e008000000000000001").unwrap();
    let genuine = signer.sign(&key, &version, 4_000_000_000, &[]);
    let result = signer.verify("GET", &key, query, 0);
    if query != genuine {
        assert!(result.is_err(), "an unsigned query verified: {query:?}");
    }
});
