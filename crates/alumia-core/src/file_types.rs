//! MIME types of files (spec 06 §3): the allow-list, the magic-byte check for
//! binary types, file-name extensions, and the preview kind.
//!
//! A small table instead of a sniffing crate: we only need to confirm a
//! declared type, for the types we allow, from the first bytes.

/// The built-in allow-list (our decision, spec 06 §3). `[files]
/// extra_mime_types` adds to it.
pub const DEFAULT_MIME_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
    "application/yaml",
    "text/yaml",
    "application/xml",
    "text/xml",
    "application/zip",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/rtf",
    "audio/mpeg",
    "audio/wav",
    "audio/ogg",
    "audio/webm",
    "audio/mp4",
    "video/mp4",
    "video/webm",
    "video/quicktime",
];

/// Bytes of an upload kept for the magic check.
pub const MAGIC_HEAD: usize = 512;

/// `type/subtype` in lowercase without parameters (`text/csv; charset=utf-8`
/// → `text/csv`).
pub fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Types whose bytes are text: no magic, but no NUL byte either.
pub fn is_text(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/json" | "application/yaml" | "application/xml"
        )
}

/// Types a browser could run as a document: always served as attachments.
pub fn is_active_content(mime: &str) -> bool {
    mime == "text/html" || mime == "image/svg+xml" || mime == "application/xhtml+xml"
}

/// What the first bytes must look like for `mime`. `None`: no check known
/// (text, or a type added in config).
/// A check of an upload's first bytes.
type Signature = fn(&[u8]) -> bool;

fn signatures(mime: &str) -> Option<&'static [Signature]> {
    fn png(b: &[u8]) -> bool {
        b.starts_with(b"\x89PNG\r\n\x1a\n")
    }
    fn jpeg(b: &[u8]) -> bool {
        b.starts_with(b"\xff\xd8\xff")
    }
    fn gif(b: &[u8]) -> bool {
        b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a")
    }
    fn webp(b: &[u8]) -> bool {
        b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WEBP"
    }
    fn wav(b: &[u8]) -> bool {
        b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WAVE"
    }
    fn pdf(b: &[u8]) -> bool {
        b.starts_with(b"%PDF-")
    }
    fn zip(b: &[u8]) -> bool {
        b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06")
    }
    fn ole(b: &[u8]) -> bool {
        b.starts_with(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
    }
    fn rtf(b: &[u8]) -> bool {
        b.starts_with(b"{\\rtf")
    }
    fn mp3(b: &[u8]) -> bool {
        b.starts_with(b"ID3") || (b.len() >= 2 && b[0] == 0xff && b[1] & 0xe0 == 0xe0)
    }
    fn ogg(b: &[u8]) -> bool {
        b.starts_with(b"OggS")
    }
    fn ebml(b: &[u8]) -> bool {
        b.starts_with(b"\x1a\x45\xdf\xa3")
    }
    fn iso_bmff(b: &[u8]) -> bool {
        b.len() >= 8 && matches!(&b[4..8], b"ftyp" | b"moov" | b"mdat" | b"free" | b"wide")
    }
    Some(match mime {
        "image/png" => &[png],
        "image/jpeg" => &[jpeg],
        "image/gif" => &[gif],
        "image/webp" => &[webp],
        "application/pdf" => &[pdf],
        "application/zip"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        | "application/vnd.oasis.opendocument.text"
        | "application/vnd.oasis.opendocument.spreadsheet"
        | "application/vnd.oasis.opendocument.presentation" => &[zip],
        "application/msword" | "application/vnd.ms-excel" | "application/vnd.ms-powerpoint" => {
            &[ole]
        }
        "application/rtf" => &[rtf],
        "audio/mpeg" => &[mp3],
        "audio/wav" => &[wav],
        "audio/ogg" => &[ogg],
        "audio/webm" | "video/webm" => &[ebml],
        "audio/mp4" | "video/mp4" | "video/quicktime" => &[iso_bmff],
        _ => return None,
    })
}

/// Whether `head` (the first bytes of an upload, up to [`MAGIC_HEAD`]) fits
/// `mime`. `complete`: the upload has ended, so `head` is all there is.
/// `None`: not enough bytes yet to decide.
pub fn magic_matches(mime: &str, head: &[u8], complete: bool) -> Option<bool> {
    if is_text(mime) {
        if head.contains(&0) {
            return Some(false);
        }
        return (complete || head.len() >= MAGIC_HEAD).then_some(true);
    }
    let Some(checks) = signatures(mime) else {
        return Some(true);
    };
    // Every signature above is decided by its first 12 bytes.
    if head.len() < 12 && !complete {
        return None;
    }
    Some(checks.iter().any(|check| check(head)))
}

/// A type from a file name, for multipart parts sent without one.
pub fn from_extension(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "json" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "xml" => "application/xml",
        "zip" => "application/zip",
        "doc" => "application/msword",
        "xls" => "application/vnd.ms-excel",
        "ppt" => "application/vnd.ms-powerpoint",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt" => "application/vnd.oasis.opendocument.text",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "odp" => "application/vnd.oasis.opendocument.presentation",
        "rtf" => "application/rtf",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" | "oga" => "audio/ogg",
        "m4a" => "audio/mp4",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        _ => return None,
    })
}

/// `previewKind` of spec 06 §3.
pub fn preview_kind(kind: &str, mime: Option<&str>) -> &'static str {
    if kind != "file" {
        return "download";
    }
    let Some(mime) = mime else {
        return "download";
    };
    match mime {
        m if m.starts_with("image/") => "image",
        "application/pdf" => "pdf",
        m if m.starts_with("video/") => "video",
        m if m.starts_with("audio/") => "audio",
        "text/csv"
        | "application/vnd.ms-excel"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.oasis.opendocument.spreadsheet" => "spreadsheet",
        "application/msword"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        | "application/vnd.oasis.opendocument.text"
        | "application/vnd.oasis.opendocument.presentation"
        | "application/rtf" => "document",
        m if is_text(m) => "text",
        _ => "download",
    }
}

/// The first `max_rows` rows of CSV text (RFC 4180 quotes; a row cut off by
/// the end of `text` is dropped unless it is the last line of the file).
pub fn csv_rows(text: &str, max_rows: usize, complete: bool) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if rows.len() >= max_rows {
            return rows;
        }
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if complete && rows.len() < max_rows && (!field.is_empty() || !row.is_empty()) {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_types_need_their_magic_and_text_types_no_nul() {
        assert_eq!(
            magic_matches("image/png", b"\x89PNG\r\n\x1a\n0000", false),
            Some(true)
        );
        assert_eq!(
            magic_matches("image/png", b"hello, world", false),
            Some(false)
        );
        assert_eq!(magic_matches("image/png", b"\x89PNG", false), None);
        assert_eq!(magic_matches("image/png", b"\x89PNG", true), Some(false));
        assert_eq!(magic_matches("image/png", b"", true), Some(false));
        assert_eq!(magic_matches("text/plain", b"hi", true), Some(true));
        assert_eq!(magic_matches("text/plain", b"h\0i", false), Some(false));
        assert_eq!(
            magic_matches("video/mp4", b"\0\0\0\x18ftypmp42", false),
            Some(true)
        );
        assert_eq!(magic_matches("application/x-custom", b"", true), Some(true));
    }

    #[test]
    fn preview_kinds_follow_the_type() {
        assert_eq!(preview_kind("file", Some("image/png")), "image");
        assert_eq!(preview_kind("file", Some("text/csv")), "spreadsheet");
        assert_eq!(preview_kind("file", Some("application/json")), "text");
        assert_eq!(preview_kind("file", Some("application/zip")), "download");
        assert_eq!(preview_kind("folder", None), "download");
    }

    #[test]
    fn csv_rows_handle_quotes_and_limits() {
        let rows = csv_rows("a,b\n\"x, y\",\"say \"\"hi\"\"\"\r\n1,2", 10, true);
        assert_eq!(
            rows,
            vec![vec!["a", "b"], vec!["x, y", "say \"hi\""], vec!["1", "2"]]
        );
        assert_eq!(csv_rows("a\nb\nc\n", 2, true).len(), 2);
        assert_eq!(csv_rows("a\nb\npartial", 10, false).len(), 2);
    }
}
