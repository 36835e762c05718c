//! The `Range` header of a download, interpreted against a file's size.

use std::ops::RangeInclusive;

/// Interprets a `Range` header value for a file of `size` bytes: `Ok(None)` to serve the whole
/// file (malformed or multi-range), `Ok(Some)` for one satisfiable range within the file, `Err`
/// when unsatisfiable (416).
pub fn byte_range(value: &str, size: u64) -> Result<Option<RangeInclusive<u64>>, Unsatisfiable> {
    let Ok(parsed) = http_range_header::parse_range_header(value) else {
        return Ok(None);
    };
    // No byte of an empty file satisfies any range (the parser would answer `0..=0`; found by
    // the range_header fuzz target).
    if size == 0 {
        return Err(Unsatisfiable);
    }
    match parsed.validate(size) {
        Ok(ranges) if ranges.len() == 1 => {
            let range = ranges.into_iter().next().expect("one range");
            if range.start() <= range.end() && *range.end() < size { Ok(Some(range)) } else { Err(Unsatisfiable) }
        }
        Ok(_) => Ok(None),
        Err(_) => Err(Unsatisfiable),
    }
}

/// A `Range` that no byte of the file satisfies (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_empty_file_satisfies_no_range() {
        for v in ["bytes=0-9", "bytes=0-", "bytes=-1", "bytes=0-0"] {
            assert_eq!(byte_range(v, 0), Err(Unsatisfiable), "{v}");
        }
        assert_eq!(byte_range("bytes=0-0", 1), Ok(Some(0..=0)));
    }

    proptest! {
        #[test]
        fn ranges_stay_inside_the_file(
            value in "\\PC{0,40}|bytes=[0-9]{0,4}-[0-9]{0,4}|bytes=-[0-9]{1,4}",
            size in prop_oneof![Just(0u64), Just(1u64), 0u64..5000],
        ) {
            if let Ok(Some(r)) = byte_range(&value, size) {
                prop_assert!(r.start() <= r.end());
                prop_assert!(*r.end() < size);
            }
        }
    }
}
