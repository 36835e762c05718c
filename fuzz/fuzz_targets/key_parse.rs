//! Key and filename parsing: never panics; whatever parses renders back to something that
//! parses to the same value and stays inside its tenant prefix.
#![no_main]

use coffer_core::domain::{BlobKey, Filename, ObjectKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = ObjectKey::parse(text) {
        let rendered = key.to_string();
        assert!(rendered.starts_with(&ObjectKey::tenant_prefix(key.tenant())));
        assert_eq!(rendered.matches('/').count(), 2);
        assert_eq!(ObjectKey::parse(&rendered).unwrap(), key);
    }
    if let Ok(name) = Filename::parse(text) {
        assert!(!name.as_str().contains(['/', '\\', '\0']));
        assert!(name.as_str() != "." && name.as_str() != "..");
        assert_eq!(Filename::parse(name.as_str()).unwrap(), name);
    }
    if let Ok(blob) = BlobKey::parse(text) {
        assert_eq!(BlobKey::parse(&blob.to_string()).unwrap(), blob);
    }
});
