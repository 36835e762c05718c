use std::fmt;

use percent_encoding::percent_decode_str;
use unicode_normalization::UnicodeNormalization;

use super::DomainError;

/// A file name that stays inside its `tenant-{id}/{category}/` prefix and names exactly one
/// thing.
///
/// Policy, decided once here:
/// - normalised to Unicode NFC, so an NFD name from macOS and its NFC twin are one name;
/// - at most 255 bytes (after NFC), not empty;
/// - rejected: `/`, `\`, NUL and every control character; names made only of dots (`.`, `..`,
///   `...`); leading or trailing white space;
/// - rejected: look-alike separators (full-width and mathematical slashes and backslashes such
///   as U+FF0F, U+2215, U+2044, U+29F5) and invisible characters that make two names look alike
///   (zero-width spaces and joiners, bidirectional controls such as U+202E, U+FEFF, soft hyphen);
/// - rejected: percent-encoded separators, dot segments or controls, also when encoded twice
///   (`%2f`, `%252f`, `%2e%2e`, `%00`); a literal `%` otherwise is an ordinary character;
/// - a leading dot is allowed (`.env` is a real file name): objects are never addressed through a
///   shell or a directory listing, so it hides nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Filename(String);

const LOOKALIKE_SEPARATORS: &[char] = &[
    '\u{2044}', '\u{2215}', '\u{2216}', '\u{29F5}', '\u{29F8}', '\u{29F9}', '\u{FF0F}', '\u{FF3C}', '\u{FE68}',
    '\u{2571}', '\u{2572}', '\u{1735}',
];

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

impl Filename {
    pub const MAX_BYTES: usize = 255;

    /// Parses and normalises a file name. Returns `InvalidFilename` with the reason when the
    /// name breaks any rule in the type's documentation.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        // Most names are NFC already (all ASCII ones are): the quick check says so without
        // composing anything.
        let name: String = match unicode_normalization::is_nfc_quick(raw.chars()) {
            unicode_normalization::IsNormalized::Yes => raw.to_owned(),
            _ => raw.nfc().collect(),
        };
        check(&name)?;
        // Percent-encoded tricks: the decoded forms (once and twice) must pass too. Without a
        // '%' there is nothing to decode (and nothing to allocate).
        if name.contains('%') {
            let once = percent_decode_str(&name).decode_utf8_lossy().into_owned();
            if once != name {
                check(&once)
                    .map_err(|_| DomainError::InvalidFilename("contains an encoded separator or control character"))?;
                let twice = percent_decode_str(&once).decode_utf8_lossy().into_owned();
                if twice != once {
                    check(&twice).map_err(|_| {
                        DomainError::InvalidFilename("contains an encoded separator or control character")
                    })?;
                }
            }
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The extension after the last dot, if any (used for type detection).
    pub fn extension(&self) -> Option<&str> {
        let (stem, ext) = self.0.rsplit_once('.')?;
        (!stem.is_empty() && !ext.is_empty()).then_some(ext)
    }
}

fn check(name: &str) -> Result<(), DomainError> {
    let err = DomainError::InvalidFilename;
    if name.is_empty() {
        return Err(err("must not be empty"));
    }
    if name.len() > Filename::MAX_BYTES {
        return Err(err("must be at most 255 bytes"));
    }
    if name.contains(['/', '\\']) {
        return Err(err("must not contain '/' or '\\'"));
    }
    if name.chars().any(char::is_control) {
        return Err(err("must not contain control characters"));
    }
    if name.chars().any(|c| LOOKALIKE_SEPARATORS.contains(&c)) {
        return Err(err("must not contain characters that look like '/' or '\\'"));
    }
    if name.chars().any(is_invisible) {
        return Err(err("must not contain invisible or bidirectional control characters"));
    }
    if name.chars().all(|c| c == '.' || c == '\u{FF0E}') {
        return Err(err("must not be made only of dots"));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(err("must not start or end with white space"));
    }
    Ok(())
}

impl fmt::Display for Filename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["proposal.pdf", "carbon audit 2024.xlsx", ".env", "résumé.docx", "100%.txt", "日本語.pdf", "a..b"]
        {
            assert!(Filename::parse(ok).is_ok(), "{ok:?} refused");
        }
    }

    #[test]
    fn rejects_escapes_and_lookalikes() {
        let long = "a".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "...",
            "a/b",
            "a\\b",
            "a\0b",
            "a\nb",
            "\u{7f}",
            "a%2fb",
            "a%2Fb",
            "a%5cb",
            "%2e%2e",
            "%252f",
            "a%00b",
            "a\u{FF0F}b",
            "a\u{2215}b",
            "\u{202E}fdp.exe",
            "a\u{200B}b",
            " a.pdf",
            "a.pdf ",
            "\u{FEFF}a",
            &long,
        ] {
            assert!(Filename::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn nfd_and_nfc_are_one_name() {
        let nfd = "re\u{301}sume\u{301}.pdf";
        let nfc = "r\u{e9}sum\u{e9}.pdf";
        assert_eq!(Filename::parse(nfd).unwrap(), Filename::parse(nfc).unwrap());
        assert_eq!(Filename::parse(nfd).unwrap().as_str(), nfc);
    }

    #[test]
    fn extension() {
        assert_eq!(Filename::parse("a.PDF").unwrap().extension(), Some("PDF"));
        assert_eq!(Filename::parse(".env").unwrap().extension(), None);
        assert_eq!(Filename::parse("noext").unwrap().extension(), None);
    }

    proptest! {
        #[test]
        fn accepted_names_never_escape(s in "\\PC{0,300}|[a./\\\\%2fFe5c]{0,12}") {
            if let Ok(f) = Filename::parse(&s) {
                let v = f.as_str();
                prop_assert!(!v.contains(['/', '\\', '\0']));
                prop_assert!(v != "." && v != "..");
                prop_assert!(v.len() <= 255);
                prop_assert!(!v.to_ascii_lowercase().contains("%2f"));
                prop_assert!(!v.to_ascii_lowercase().contains("%5c"));
                // Idempotent: parsing the normalised form gives the same name.
                prop_assert_eq!(Filename::parse(v).unwrap().as_str().to_owned(), v);
            }
        }

        #[test]
        fn plain_names_are_kept(s in "[A-Za-z0-9_-][A-Za-z0-9 _.-]{0,60}[A-Za-z0-9_-]") {
            prop_assume!(!s.chars().all(|c| c == '.'));
            prop_assert_eq!(Filename::parse(&s).unwrap().as_str().to_owned(), s);
        }
    }
}
