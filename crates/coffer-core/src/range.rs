//! The `Range` header of a download, interpreted against a file's size.

use std::ops::RangeInclusive;

/// Interprets a `Range` header value for a file of `size` bytes: `Ok(None)` to serve the whole
/// file (malformed or multi-range), `Ok(Some)` for one satisfiable range within the file, `Err`
/// when unsatisfiable (416).
pub fn byte_range(value: &str, size: u64) -> Result<Option<RangeInclusive<u64>>, Unsatisfiable> {
    let Ok(parsed) = http_range_header::parse_range_header(value) else {
        return if satisfies_nothing(value) { Err(Unsatisfiable) } else { Ok(None) };
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

/// A single range the parser refuses that is well formed but no file satisfies (RFC 9110
/// 14.1.1): a suffix of zero bytes (`bytes=-0`), or a first byte past any length a file can
/// have (`bytes=18446744073709551616-`, too large for the parser's numbers).
fn satisfies_nothing(value: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let Some((first, last)) = value.trim().strip_prefix("bytes=").and_then(|set| set.trim().split_once('-')) else {
        return false;
    };
    if first.is_empty() {
        return digits(last) && last.bytes().all(|b| b == b'0');
    }
    if !digits(first) || first.parse::<u64>().is_ok() {
        return false;
    }
    // A last byte before the first makes the range invalid (the header is ignored), not
    // unsatisfiable.
    let number = |s: &'_ str| {
        let s = s.trim_start_matches('0');
        (s.len(), s.to_owned())
    };
    last.is_empty() || (digits(last) && number(last) >= number(first))
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

    #[test]
    fn well_formed_ranges_no_file_satisfies_are_416() {
        let past = "18446744073709551616";
        for v in ["bytes=-0", "bytes=-000", " bytes=-0 ", &format!("bytes={past}-"), &format!("bytes={past}-{past}9")] {
            assert_eq!(byte_range(v, 10), Err(Unsatisfiable), "{v}");
        }
        // Invalid (ignored: the whole file), not unsatisfiable.
        for v in [&format!("bytes={past}-5"), "bytes=-", "bytes=-0,-1", "bytes=x-0", "lines=-0", "bytes=-0x"] {
            assert_eq!(byte_range(v, 10), Ok(None), "{v}");
        }
        assert_eq!(byte_range("bytes=-1", 10), Ok(Some(9..=9)));
        assert_eq!(byte_range("bytes=18446744073709551615-", 10), Err(Unsatisfiable));
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
