use std::fmt;

/// A media type as coffer stores and serves it: `type/subtype`, lowercase, without parameters,
/// each part an RFC 6838 restricted name (1-127 characters of `[a-z0-9!#$&^_.+-]`, starting
/// with a letter or digit). This is the one place that says what a stored type may be; whether
/// a browser may show it inline is [`MediaType::serves_inline`], an allow-list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaType(String);

/// The types a browser may render inline from coffer's origin: raster images, PDF, plain text,
/// common audio and video. None of them can run script in the origin's context. Everything
/// else — HTML, XML of any kind (`text/xsl`, `text/rdf`, `*+xml`), SVG, MathML, JavaScript,
/// `multipart/x-mixed-replace`, unknown types — is served as a sandboxed attachment.
const INLINE: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "application/pdf",
    "text/plain",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/x-wav",
    "audio/webm",
    "audio/flac",
    "audio/x-flac",
    "audio/aac",
    "audio/mp4",
    "video/mp4",
    "video/webm",
    "video/ogg",
];

impl MediaType {
    /// `application/octet-stream`: what coffer stores when nothing says better.
    pub fn octet_stream() -> Self {
        Self("application/octet-stream".into())
    }

    /// Parses a `Content-Type` value: parameters are dropped, case is folded. Returns `None`
    /// for anything that is not a well-formed `type/subtype` (a wildcard, an empty part,
    /// characters outside RFC 6838's restricted names, more than 127 characters a part).
    pub fn parse(raw: &str) -> Option<Self> {
        let essence = raw.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let (top, sub) = essence.split_once('/')?;
        (restricted_name(top) && restricted_name(sub)).then_some(Self(essence))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The top-level type (`image` of `image/png`).
    pub fn top(&self) -> &str {
        self.0.split('/').next().expect("validated")
    }

    /// Whether responses may carry `Content-Disposition: inline` for this type.
    pub fn serves_inline(&self) -> bool {
        INLINE.contains(&self.0.as_str())
    }

    /// Whether a `Content-Security-Policy: sandbox` header would break how browsers show this
    /// type inline (Chromium's PDF viewer refuses to run in a sandboxed document).
    pub fn needs_unsandboxed_viewer(&self) -> bool {
        self.0 == "application/pdf"
    }
}

fn restricted_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && s.len() <= 127
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_normalises() {
        assert_eq!(MediaType::parse("Text/Plain; charset=UTF-8").unwrap().as_str(), "text/plain");
        assert_eq!(MediaType::parse(" image/svg+xml ").unwrap().as_str(), "image/svg+xml");
        assert_eq!(MediaType::parse("application/vnd.ms-excel").unwrap().top(), "application");
        for bad in ["", "text", "text/", "/plain", "*/*", "image/*", "text/pl ain", "a/b/c", "tëxt/plain", "text/\u{0}"]
        {
            assert!(MediaType::parse(bad).is_none(), "{bad:?} accepted");
        }
        assert!(MediaType::parse(&format!("text/{}", "a".repeat(128))).is_none());
    }

    /// Every type a major browser renders as a document (and so could run script in) is
    /// refused inline.
    #[test]
    fn document_types_never_serve_inline() {
        for t in [
            "text/html",
            "application/xhtml+xml",
            "text/xml",
            "application/xml",
            "text/xsl",
            "application/xslt+xml",
            "text/rdf",
            "application/rdf+xml",
            "application/rss+xml",
            "application/atom+xml",
            "application/vnd.mozilla.xul+xml",
            "image/svg+xml",
            "application/mathml+xml",
            "text/mathml",
            "application/javascript",
            "text/javascript",
            "application/ecmascript",
            "text/ecmascript",
            "application/x-javascript",
            "text/jscript",
            "text/livescript",
            "text/x-javascript",
            "application/json",
            "multipart/x-mixed-replace",
            "text/css",
            "text/vtt",
            "text/cache-manifest",
            "application/x-shockwave-flash",
            "application/octet-stream",
            "application/x-unknown-thing",
            "text/x-anything",
        ] {
            assert!(!MediaType::parse(t).unwrap().serves_inline(), "{t} would be served inline");
        }
        for t in ["image/png", "image/jpeg", "application/pdf", "text/plain", "video/mp4", "audio/mpeg"] {
            assert!(MediaType::parse(t).unwrap().serves_inline(), "{t}");
        }
    }

    proptest! {
        #[test]
        fn parsed_types_are_canonical(raw in "\\PC{0,40}|[A-Za-z0-9.+-]{1,12}/[A-Za-z0-9.+-]{1,12}(; ?[a-z]+=[a-z0-9]+)?") {
            if let Some(t) = MediaType::parse(&raw) {
                prop_assert_eq!(MediaType::parse(t.as_str()), Some(t.clone()));
                prop_assert!(!t.as_str().contains([';', ' ', '*']));
                prop_assert_eq!(t.as_str().to_ascii_lowercase(), t.as_str());
            }
        }

        #[test]
        fn well_formed_types_parse(top in "[a-z][a-z0-9.+-]{0,20}", sub in "[a-z0-9][a-z0-9.+-]{0,20}") {
            let t = MediaType::parse(&format!("{top}/{sub}; charset=utf-8"));
            prop_assert_eq!(t.map(|t| t.to_string()), Some(format!("{top}/{sub}")));
        }
    }
}
