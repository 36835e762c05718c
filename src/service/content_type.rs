//! Content-type decisions: what an upload is, and how a type may be served.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::domain::{Filename, MediaType};

/// How many leading bytes are inspected.
pub const SNIFF_LEN: usize = 8192;

fn is_executable(content_type: &MediaType) -> bool {
    matches!(
        content_type.as_str(),
        "application/vnd.microsoft.portable-executable"
            | "application/x-executable"
            | "application/x-mach-binary"
            | "application/x-msdownload"
            | "application/x-elf"
            | "application/x-sharedlib"
    )
}

/// What the first bytes say, if they say something clear.
pub fn sniff(head: &[u8]) -> Option<MediaType> {
    if let Some(t) = infer::get(head) {
        return MediaType::parse(t.mime_type());
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(1024)]).to_ascii_lowercase();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with("<svg") || (trimmed.starts_with("<?xml") && trimmed.contains("<svg")) {
        return MediaType::parse("image/svg+xml");
    }
    None
}

/// Decides the stored type of an upload from its name, the type the client declared (if
/// any, and only when it is a well-formed [`MediaType`]) and its first bytes. The declared type,
/// else the name's, is trusted unless the bytes clearly say something else where it matters:
/// a claim of a type served inline (or of any image, audio, video or font) must match the
/// bytes exactly, bytes of a type served inline win over any claim, and an executable never
/// passes as anything but `application/*`. What a stored type may be is [`MediaType::parse`];
/// how it is served is [`MediaType::serves_inline`] — never the declared type alone.
pub fn decide(filename: &Filename, declared: Option<&str>, head: &[u8]) -> MediaType {
    let declared = declared.and_then(MediaType::parse).filter(|d| *d != MediaType::octet_stream());
    let by_name = || mime_guess::from_path(filename.as_str()).first_raw().and_then(MediaType::parse);
    let claimed = declared.or_else(by_name);
    match (claimed, sniff(head)) {
        (None, None) => MediaType::octet_stream(),
        (None, Some(s)) => s,
        (Some(c), None) => c,
        (Some(c), Some(s)) => {
            let media = matches!(c.top(), "image" | "audio" | "video" | "font");
            let must_match = c.serves_inline() || s.serves_inline() || media;
            let contradicts = (must_match && s != c) || (is_executable(&s) && c.top() != "application");
            if contradicts { s } else { c }
        }
    }
}

/// How a stored type goes out: the type itself (unparsable legacy values as
/// `application/octet-stream`), whether it may be shown inline, and whether the response
/// carries `Content-Security-Policy: sandbox` (everything but the PDF viewer).
pub struct Serving {
    pub content_type: MediaType,
    pub inline: bool,
    pub sandbox: bool,
}

/// The one decision of how a stored type is served, for coffer's own responses and for direct
/// S3 links alike. `download` forces an attachment.
pub fn serving(stored: &str, download: bool) -> Serving {
    let content_type = MediaType::parse(stored).unwrap_or_else(MediaType::octet_stream);
    let inline = !download && content_type.serves_inline();
    let sandbox = !(inline && content_type.needs_unsandboxed_viewer());
    Serving { content_type, inline, sandbox }
}

/// Characters left as-is in an RFC 5987 `filename*` value (attr-char).
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` per RFC 6266: an ASCII fallback `filename` and the exact name as
/// UTF-8 in `filename*`.
pub fn content_disposition(filename: &str, attachment: bool) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' && c != '%' { c } else { '_' })
        .collect();
    let kind = if attachment { "attachment" } else { "inline" };
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{}", utf8_percent_encode(filename, ATTR_CHAR))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

    fn name(s: &str) -> Filename {
        Filename::parse(s).unwrap()
    }

    #[test]
    fn name_decides_when_bytes_agree_or_say_nothing() {
        assert_eq!(decide(&name("logo.png"), None, PNG).as_str(), "image/png");
        assert_eq!(decide(&name("notes.txt"), None, b"hello").as_str(), "text/plain");
        assert_eq!(decide(&name("report.pdf"), None, b"%PDF-1.7").as_str(), "application/pdf");
        assert_eq!(decide(&name("data.bin"), None, b"\x00\x01").as_str(), "application/octet-stream");
        assert_eq!(decide(&name("noext"), None, b"hello").as_str(), "application/octet-stream");
    }

    #[test]
    fn contradicting_bytes_win() {
        assert_eq!(decide(&name("logo.png"), None, b"<html><script>alert(1)</script>").as_str(), "text/html");
        assert_eq!(
            decide(&name("logo.png"), None, b"MZ\x90\x00").as_str(),
            "application/vnd.microsoft.portable-executable"
        );
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        assert_eq!(decide(&name("logo.png"), None, &elf).as_str(), "application/x-executable");
        assert_eq!(
            decide(&name("logo.png"), None, b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>").as_str(),
            "image/svg+xml"
        );
        assert_eq!(decide(&name("logo.png"), None, b"%PDF-1.7").as_str(), "application/pdf");
        assert_eq!(decide(&name("a.txt"), Some("text/html"), PNG).as_str(), "image/png");
    }

    #[test]
    fn disposition_encodes_unicode_and_quotes() {
        assert_eq!(
            content_disposition("résumé \"final\".pdf", false),
            "inline; filename=\"r_sum_ _final_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
        assert!(content_disposition("a.html", true).starts_with("attachment;"));
    }

    #[test]
    fn declared_types_are_stored_only_when_well_formed_and_served_by_the_allow_list() {
        // A declared document type is kept (the category's policy still applies) but can only
        // ever go out as a sandboxed attachment.
        let xsl = decide(&name("invoice.txt"), Some("text/xsl"), b"<x:script xmlns:x='http://www.w3.org/1999/xhtml'>");
        assert_eq!(xsl.as_str(), "text/xsl");
        let s = serving(xsl.as_str(), false);
        assert!(!s.inline && s.sandbox);
        // Malformed declarations fall back to the name.
        assert_eq!(decide(&name("a.txt"), Some("*/*"), b"hi").as_str(), "text/plain");
        assert_eq!(decide(&name("a.txt"), Some("text/plain; x=\"<\""), b"hi").as_str(), "text/plain");
        // A claim of an inline type must match what the bytes clearly are.
        assert_eq!(decide(&name("a.bin"), Some("image/png"), b"%PDF-1.7").as_str(), "application/pdf");
        assert_eq!(decide(&name("a.bin"), Some("text/plain"), PNG).as_str(), "image/png");
    }

    #[test]
    fn serving_decisions() {
        let s = serving("application/pdf", false);
        assert!(s.inline && !s.sandbox);
        let s = serving("application/pdf", true);
        assert!(!s.inline && s.sandbox);
        let s = serving("image/png", false);
        assert!(s.inline && s.sandbox);
        let s = serving("not a type", false);
        assert_eq!(s.content_type.as_str(), "application/octet-stream");
        assert!(!s.inline && s.sandbox);
        let s = serving("TEXT/HTML; charset=utf-8", false);
        assert_eq!(s.content_type.as_str(), "text/html");
        assert!(!s.inline);
    }
}
