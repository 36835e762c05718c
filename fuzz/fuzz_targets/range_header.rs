//! The Range header interpretation: never panics; a range it serves lies inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, u32)| {
    let (value, size) = input;
    if let Ok(Some(r)) = coffer_core::range::byte_range(value, u64::from(size)) {
        assert!(r.start() <= r.end());
        assert!(*r.end() < u64::from(size));
    }
});
