//! Content-type decisions: what an upload is, and how a type may be served.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::domain::Filename;

/// How many leading bytes are inspected.
pub const SNIFF_LEN: usize = 8192;

const OCTET_STREAM: &str = "application/octet-stream";

/// Types a browser would execute or render as a document with script: served only as
/// sandboxed attachments.
pub fn is_active(content_type: &str) -> bool {
    let ct = essence(content_type);
    matches!(
        ct.as_str(),
        "text/html"
            | "image/svg+xml"
            | "application/xhtml+xml"
            | "text/xml"
            | "application/xml"
            | "application/javascript"
            | "text/javascript"
            | "application/ecmascript"
            | "text/ecmascript"
            | "application/x-shellscript"
            | "text/x-shellscript"
    ) || ct.ends_with("+xml")
}

fn is_executable(content_type: &str) -> bool {
    matches!(
        content_type,
        "application/vnd.microsoft.portable-executable"
            | "application/x-executable"
            | "application/x-mach-binary"
            | "application/x-msdownload"
            | "application/x-elf"
            | "application/x-sharedlib"
    )
}

/// `type/subtype` in lowercase, parameters dropped.
pub fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// What the first bytes say, if they say something clear.
pub fn sniff(head: &[u8]) -> Option<String> {
    if let Some(t) = infer::get(head) {
        return Some(t.mime_type().to_owned());
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(1024)]).to_ascii_lowercase();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with("<svg") || (trimmed.starts_with("<?xml") && trimmed.contains("<svg")) {
        return Some("image/svg+xml".into());
    }
    None
}

/// Decides the stored type of an upload from its name, the type the client declared (if
/// any) and its first bytes. The name (or declared type) is trusted unless the bytes clearly
/// contradict it: active content or an executable behind a passive name, a media name whose
/// bytes are something else, or a declared active type whose bytes are plainly binary.
pub fn decide(filename: &Filename, declared: Option<&str>, head: &[u8]) -> String {
    let declared = declared.map(essence).filter(|d| d != OCTET_STREAM && d.parse::<mime::Mime>().is_ok());
    let by_name = mime_guess::from_path(filename.as_str()).first_raw().map(str::to_owned);
    let claimed = declared.or(by_name);
    let sniffed = sniff(head);
    match (claimed, sniffed) {
        (None, None) => OCTET_STREAM.to_owned(),
        (None, Some(s)) => s,
        (Some(c), None) => c,
        (Some(c), Some(s)) => {
            let top = |t: &str| t.split('/').next().unwrap_or_default().to_owned();
            let media = matches!(top(&c).as_str(), "image" | "audio" | "video" | "font");
            let contradicts = (is_active(&s) && !is_active(&c))
                || (is_executable(&s) && top(&c) != "application")
                || (media && s != c)
                || (is_active(&c) && !is_active(&s));
            if contradicts { s } else { c }
        }
    }
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
        assert_eq!(decide(&name("logo.png"), None, PNG), "image/png");
        assert_eq!(decide(&name("notes.txt"), None, b"hello"), "text/plain");
        assert_eq!(decide(&name("report.pdf"), None, b"%PDF-1.7"), "application/pdf");
        assert_eq!(decide(&name("data.bin"), None, b"\x00\x01"), "application/octet-stream");
        assert_eq!(decide(&name("noext"), None, b"hello"), "application/octet-stream");
    }

    #[test]
    fn contradicting_bytes_win() {
        assert_eq!(decide(&name("logo.png"), None, b"<html><script>alert(1)</script>"), "text/html");
        assert_eq!(decide(&name("logo.png"), None, b"MZ\x90\x00"), "application/vnd.microsoft.portable-executable");
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        assert_eq!(decide(&name("logo.png"), None, &elf), "application/x-executable");
        assert_eq!(decide(&name("logo.png"), None, b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), "image/svg+xml");
        assert_eq!(decide(&name("logo.png"), None, b"%PDF-1.7"), "application/pdf");
        assert_eq!(decide(&name("a.txt"), Some("text/html"), PNG), "image/png");
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
    fn active_types() {
        for t in [
            "text/html; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "application/rss+xml",
            "text/javascript",
        ] {
            assert!(is_active(t), "{t}");
        }
        for t in ["image/png", "application/pdf", "text/plain", "application/json"] {
            assert!(!is_active(t), "{t}");
        }
    }
}
