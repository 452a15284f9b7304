//! What the importer reads from a route file's source text: the HTTP methods an App Router
//! file exports, `export const config = { api: { bodyParser: ... } }` and
//! `export const maxDuration = N`.
//!
//! This is a **regex scan**, not a JavaScript parser: comments are blanked first (so a
//! commented-out export does not count), then the usual export forms are recognised:
//! `export [async] function NAME`, `export const|let|var NAME =`, `export { a as NAME }`,
//! and CommonJS `module.exports.NAME =` / `exports.NAME =`. Values must be literals
//! (`maxDuration = 60`, `sizeLimit: '2mb'`); anything else is reported as unreadable and the
//! default is used, with a warning.

use std::{collections::BTreeSet, sync::LazyLock};

use regex::Regex;

/// The methods an App Router route file may export, in the order Next.js lists them.
pub const ROUTE_METHODS: [&str; 7] = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"];

/// Replaces `//` and `/* */` comments with spaces (keeping line breaks and byte offsets),
/// leaving string and template literals alone. Regex literals are not recognised, so a
/// `//` inside one blanks the rest of that line: harmless for what is scanned here.
pub fn blank_comments(src: &str) -> String {
    blank(src, false)
}

/// Like [`blank_comments`], and blanks the contents of string and template literals too.
pub fn blank_comments_and_strings(src: &str) -> String {
    blank(src, true)
}

fn blank(src: &str, strings: bool) -> String {
    let bytes = src.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' | b'`' => {
                // Copy the literal through its closing quote (escapes skipped).
                out.push(b);
                i += 1;
                let hide = |c: u8| {
                    if strings && c != b'\n' && c.is_ascii() {
                        b' '
                    } else {
                        c
                    }
                };
                while i < bytes.len() {
                    let c = bytes[i];
                    i += 1;
                    if c == b'\\' && i < bytes.len() {
                        out.push(hide(c));
                        out.push(hide(bytes[i]));
                        i += 1;
                    } else if c == b || (c == b'\n' && b != b'`') {
                        out.push(c);
                        break;
                    } else {
                        out.push(hide(c));
                    }
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                out.extend_from_slice(b"  ");
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    out.push(if bytes[i] == b'\n' { b'\n' } else { b' ' });
                    i += 1;
                }
                if i < bytes.len() {
                    out.extend_from_slice(b"  ");
                    i += 2;
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Only ASCII bytes were replaced, each by ASCII, so the result is still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants in this file; a typo fails every test at once.
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad built-in regex {pattern:?}: {e}"))
}

static EXPORT_FN: LazyLock<Regex> =
    LazyLock::new(|| re(r"\bexport\s+(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)"));
static EXPORT_BINDING: LazyLock<Regex> =
    LazyLock::new(|| re(r"\bexport\s+(?:const|let|var)\s+([A-Za-z_$][\w$]*)"));
static EXPORT_DESTRUCTURED: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?s)\bexport\s+(?:const|let|var)\s*\{(.*?)\}\s*="));
static EXPORT_LIST: LazyLock<Regex> = LazyLock::new(|| re(r"\bexport\s*(?:type\s*)?\{([^}]*)\}"));
static EXPORT_STAR: LazyLock<Regex> = LazyLock::new(|| re(r"\bexport\s*\*\s*from\b"));
static CJS_EXPORT: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:\bmodule\.exports|\bexports)\.([A-Za-z_$][\w$]*)\s*=[^=]"));
static CONFIG_START: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:\bexport\s+const\s+config\b(?:\s*:\s*[\w.$<>]+)?|(?:\bmodule\.exports|\bexports)\.config)\s*=\s*\{",
    )
});
static BODY_PARSER_FALSE: LazyLock<Regex> = LazyLock::new(|| re(r"\bbodyParser\s*:\s*false\b"));
static EDGE_RUNTIME: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\bruntime\s*:\s*['"`](?:experimental-)?edge['"`]"#));
static SIZE_LIMIT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"\bsizeLimit\s*:\s*(?:'([^'\n]*)'|"([^"\n]*)"|`([^`$]*)`|([0-9][0-9_.eE+]*)\b|([^,}\s][^,}]*))"#,
    )
});
static MAX_DURATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:\bexport\s+(?:const|let|var)\s+maxDuration\b(?:\s*:\s*[\w.$]+)?|(?:\bmodule\.exports|\bexports)\.maxDuration)\s*=\s*([^;,\n]+)",
    )
});

/// The HTTP methods a route file exports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exports {
    /// Exported names that are HTTP methods (`GET`, `POST`, ...).
    pub methods: BTreeSet<&'static str>,
    /// `export * from '...'`: more names may be exported than the scan can see.
    pub star: bool,
}

/// Scans `src` (comments already blanked) for exported HTTP method handlers.
pub fn exported_methods(src: &str) -> Exports {
    let src = &blank_comments_and_strings(src);
    let mut names: Vec<&str> = Vec::new();
    names.extend(
        EXPORT_FN
            .captures_iter(src)
            .filter_map(|c| c.get(1))
            .map(|m| m.as_str()),
    );
    names.extend(
        EXPORT_BINDING
            .captures_iter(src)
            .filter_map(|c| c.get(1))
            .map(|m| m.as_str()),
    );
    names.extend(
        CJS_EXPORT
            .captures_iter(src)
            .filter_map(|c| c.get(1))
            .map(|m| m.as_str()),
    );
    // `export const { GET, POST } = handlers` (Auth.js): `key: NAME` binds NAME.
    for list in EXPORT_DESTRUCTURED
        .captures_iter(src)
        .filter_map(|c| c.get(1))
    {
        for item in list.as_str().split(',') {
            let bound = item.rsplit_once(':').map_or(item, |(_, b)| b);
            let bound = bound.split('=').next().unwrap_or_default();
            names.push(bound.trim_matches(|c: char| c == '{' || c == '}' || c.is_whitespace()));
        }
    }
    for list in EXPORT_LIST.captures_iter(src).filter_map(|c| c.get(1)) {
        for item in list.as_str().split(',') {
            let item = item.trim();
            let item = item.strip_prefix("type ").unwrap_or(item);
            // `local as EXPORTED` exports EXPORTED; a bare name exports itself.
            let exported = item.rsplit_once(" as ").map_or(item, |(_, e)| e).trim();
            names.push(exported);
        }
    }
    let methods = ROUTE_METHODS
        .into_iter()
        .filter(|m| names.contains(m))
        .collect();
    Exports {
        methods,
        star: EXPORT_STAR.is_match(src),
    }
}

/// What `export const config` says about the body parser of a `pages/api` route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyParser {
    /// No config, or a config without `bodyParser.sizeLimit`: Next's default (1mb).
    Default,
    /// `bodyParser: false` (or `runtime: 'edge'`): Next hands the raw stream over and caps
    /// nothing.
    Disabled,
    /// `sizeLimit` as written: a string such as `2mb`, or a number of bytes.
    SizeLimit(String),
    /// `sizeLimit` is there but not a literal this scan can read (a variable, a call).
    Unreadable(String),
}

/// Scans `src` (comments blanked) for `export const config = { api: { bodyParser: .. } }`.
pub fn body_parser(src: &str) -> BodyParser {
    let Some(start) = CONFIG_START.find(src) else {
        return BodyParser::Default;
    };
    let object = balanced_object(&src[start.end() - 1..]);
    // An Edge API route reads a Web `Request`: no body parser, no cap, like `false`.
    if BODY_PARSER_FALSE.is_match(object) || EDGE_RUNTIME.is_match(object) {
        return BodyParser::Disabled;
    }
    let Some(caps) = SIZE_LIMIT.captures(object) else {
        return BodyParser::Default;
    };
    if let Some(text) = caps.get(1).or(caps.get(2)).or(caps.get(3)) {
        BodyParser::SizeLimit(text.as_str().to_owned())
    } else if let Some(number) = caps.get(4) {
        // A number literal is bytes (`4096`, `1e6`); as a string it reads the same.
        match number.as_str().replace('_', "").parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => BodyParser::SizeLimit(format!("{}", n.floor())),
            _ => BodyParser::Unreadable(number.as_str().to_owned()),
        }
    } else {
        let raw = caps.get(5).map_or("", |m| m.as_str().trim());
        BodyParser::Unreadable(raw.to_owned())
    }
}

/// The text of the `{ ... }` object at the start of `text`, braces balanced (string
/// literals skipped); the whole rest when it never closes.
fn balanced_object(text: &str) -> &str {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' {
                i += 1;
            } else if b == q {
                quote = None;
            }
        } else {
            match b {
                b'\'' | b'"' | b'`' => quote = Some(b),
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return &text[..=i];
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    text
}

/// What `export const maxDuration = N` says.
#[derive(Clone, Debug, PartialEq)]
pub enum MaxDuration {
    Absent,
    Seconds(f64),
    /// Present but not a number literal (the text as written).
    Unreadable(String),
}

/// Scans `src` (comments blanked) for `export const maxDuration = N`.
pub fn max_duration(src: &str) -> MaxDuration {
    let Some(caps) = MAX_DURATION.captures(src) else {
        return MaxDuration::Absent;
    };
    let raw = caps.get(1).map_or("", |m| m.as_str()).trim();
    let number = raw.strip_suffix("as const").unwrap_or(raw).trim();
    match number.replace('_', "").parse::<f64>() {
        Ok(n) if n.is_finite() => MaxDuration::Seconds(n),
        _ => MaxDuration::Unreadable(raw.to_owned()),
    }
}

/// Parses a size the way Next.js does for `sizeLimit` (the `bytes` package): a number with
/// an optional `b`/`kb`/`mb`/`gb`/`tb`/`pb` unit (1024-based, case-insensitive, spaces
/// allowed before the unit, fractions floored); without a unit, the leading integer is bytes.
pub fn parse_next_bytes(text: &str) -> Option<u64> {
    const UNITS: [(&str, u64); 6] = [
        ("pb", 1 << 50),
        ("tb", 1 << 40),
        ("gb", 1 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("b", 1),
    ];
    let lower = text.to_ascii_lowercase();
    for (unit, multiplier) in UNITS {
        // bytes' regex: /^((-|\+)?(\d+(?:\.\d+)?)) *(kb|mb|gb|tb|pb)$/i; a "b" unit falls
        // through to parseInt, which reads the leading digits the same way.
        if unit == "b" {
            break;
        }
        if let Some(number) = lower.strip_suffix(unit) {
            let number = number.trim_end_matches(' ');
            let number = number.strip_prefix('+').unwrap_or(number);
            if is_decimal(number) {
                let value: f64 = number.parse().ok()?;
                return Some((value * multiplier as f64).floor() as u64);
            }
        }
    }
    // parseInt(text, 10): optional sign and leading whitespace, then digits.
    let trimmed = lower.trim_start();
    let unsigned = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let digits: String = unsigned.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn is_decimal(s: &str) -> bool {
    let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
    !whole.is_empty()
        && !frac.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// Writes a byte count as a Kubernetes quantity, exactly: the largest binary suffix that
/// divides it (`1048576` → `1Mi`, `512000` → `500Ki`), else plain bytes.
pub fn bytes_to_quantity(bytes: u64) -> String {
    for (suffix, unit) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn methods(src: &str) -> Vec<&'static str> {
        exported_methods(&blank_comments(src))
            .methods
            .into_iter()
            .collect()
    }

    #[test]
    fn finds_exported_methods_in_every_form() {
        let src = r#"
            import { NextResponse } from 'next/server'
            export async function GET(request) { return Response.json({}) }
            export function POST(req) {}
            export const PUT = async (req) => new Response('x')
            const remove = () => new Response(null)
            export { remove as DELETE, helper }
            // export function PATCH() {}
            /* export const OPTIONS = 1 */
            export const dynamic = 'force-dynamic'
            const s = "export function HEAD() {}"
        "#;
        assert_eq!(methods(src), ["DELETE", "GET", "POST", "PUT"]);
        assert_eq!(
            methods("exports.GET = async () => new Response('')"),
            ["GET"]
        );
        assert_eq!(
            methods("export const { GET, POST: post2, handlers } = auth"),
            ["GET"]
        );
        assert_eq!(
            methods("export const { auth, handlers: { GET, POST } } = NextAuth()"),
            ["GET", "POST"]
        );
        assert_eq!(
            methods("module.exports.PATCH = h; export { h as HEAD }"),
            ["HEAD", "PATCH"]
        );
        assert!(exported_methods("export * from './impl'").star);
        assert!(!exported_methods("export * as impl from './impl'").star);
        assert_eq!(
            methods("export default function handler(req, res) {}"),
            [] as [&str; 0]
        );
    }

    #[test]
    fn reads_body_parser_config() {
        let cases = [
            ("export default function h() {}", BodyParser::Default),
            (
                "export const config = { api: { bodyParser: { sizeLimit: '2mb' } } }",
                BodyParser::SizeLimit("2mb".into()),
            ),
            (
                "export const config: PageConfig = {\n  api: {\n    bodyParser: {\n      sizeLimit: \"500kb\", // small\n    },\n  },\n}",
                BodyParser::SizeLimit("500kb".into()),
            ),
            (
                "export const config = { api: { bodyParser: { sizeLimit: 4096 } } }",
                BodyParser::SizeLimit("4096".into()),
            ),
            (
                "export const config = { api: { bodyParser: { sizeLimit: 1e6 } } }",
                BodyParser::SizeLimit("1000000".into()),
            ),
            (
                "export const config = { api: { bodyParser: false } }",
                BodyParser::Disabled,
            ),
            (
                "export const config = { runtime: 'edge' }",
                BodyParser::Disabled,
            ),
            (
                "module.exports.config = { api: { bodyParser: false } }",
                BodyParser::Disabled,
            ),
            (
                "export const config = { api: { externalResolver: true } }",
                BodyParser::Default,
            ),
            (
                "export const config = { api: { bodyParser: { sizeLimit: LIMIT } } }",
                BodyParser::Unreadable("LIMIT".into()),
            ),
            (
                // Outside the config object: not ours.
                "export const config = { api: {} }\nconst other = { bodyParser: false }",
                BodyParser::Default,
            ),
            (
                "// export const config = { api: { bodyParser: false } }",
                BodyParser::Default,
            ),
        ];
        for (src, want) in cases {
            assert_eq!(body_parser(&blank_comments(src)), want, "{src}");
        }
    }

    #[test]
    fn reads_max_duration() {
        let md = |s: &str| max_duration(&blank_comments(s));
        assert_eq!(
            md("export const maxDuration = 60;"),
            MaxDuration::Seconds(60.0)
        );
        assert_eq!(
            md("export const maxDuration: number = 5\n"),
            MaxDuration::Seconds(5.0)
        );
        assert_eq!(
            md("export const maxDuration = 300 as const"),
            MaxDuration::Seconds(300.0)
        );
        assert_eq!(md("exports.maxDuration = 10"), MaxDuration::Seconds(10.0));
        assert_eq!(md("// export const maxDuration = 9"), MaxDuration::Absent);
        assert_eq!(md("export default () => {}"), MaxDuration::Absent);
        assert_eq!(
            md("export const maxDuration = FIVE_MINUTES;"),
            MaxDuration::Unreadable("FIVE_MINUTES".into())
        );
    }

    #[test]
    fn parses_sizes_like_next() {
        assert_eq!(parse_next_bytes("1mb"), Some(1_048_576));
        assert_eq!(parse_next_bytes("1MB"), Some(1_048_576));
        assert_eq!(parse_next_bytes("500kb"), Some(512_000));
        assert_eq!(parse_next_bytes("1.5mb"), Some(1_572_864));
        assert_eq!(parse_next_bytes("2 mb"), Some(2 << 20));
        assert_eq!(parse_next_bytes("1gb"), Some(1 << 30));
        assert_eq!(parse_next_bytes("4096"), Some(4096));
        assert_eq!(parse_next_bytes("100b"), Some(100));
        assert_eq!(parse_next_bytes("0.1kb"), Some(102));
        assert_eq!(parse_next_bytes("lots"), None);
        assert_eq!(parse_next_bytes(""), None);
    }

    #[test]
    fn writes_exact_quantities() {
        assert_eq!(bytes_to_quantity(1_048_576), "1Mi");
        assert_eq!(bytes_to_quantity(512_000), "500Ki");
        assert_eq!(bytes_to_quantity(1_572_864), "1536Ki");
        assert_eq!(bytes_to_quantity(1 << 30), "1Gi");
        assert_eq!(bytes_to_quantity(1000), "1000");
        assert_eq!(bytes_to_quantity(102), "102");
        for b in [1u64, 102, 512_000, 1_572_864, 3 << 40] {
            assert_eq!(
                apiroutes_crds::quantity::parse_bytes(&bytes_to_quantity(b)),
                Some(b)
            );
        }
    }
}
