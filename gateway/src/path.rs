//! Request-path handling before matching, as Next.js 16.4.6 does it (DESIGN.md, "Path
//! patterns"):
//!
//! 1. a path holding `//` (or `\`) gets a 308 to the path with repeated slashes collapsed
//!    (Next's `normalizeRepeatedSlashes`, which keeps a trailing slash; the next request then
//!    gets the trailing-slash redirect), query kept;
//! 2. dot segments (`.`, `..`, and their `%2e` spellings) are removed, RFC 3986 / WHATWG
//!    style (`/api/users/..` is `/api/`); the function sees the normalized path;
//! 3. a trailing slash gets a 308 to the path without it, query kept;
//! 4. a malformed escape (`%zz`) or an escape that does not decode to UTF-8 is a 400.

use std::borrow::Cow;

/// What to do with a request path.
#[derive(Debug, PartialEq, Eq)]
pub enum PathOutcome<'a> {
    /// Route this normalized path (borrowed when the request path was already normal).
    Route(Cow<'a, str>),
    /// Answer 308 with this `Location` (query included).
    Redirect(String),
    /// Answer 400: malformed percent-encoding.
    BadRequest,
}

/// Normalizes a raw request path (`query` is kept on redirects).
pub fn normalize<'a>(path: &'a str, query: Option<&str>) -> PathOutcome<'a> {
    if path.contains("//") || path.contains('\\') {
        let mut out = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
        for c in path.chars() {
            let c = if c == '\\' { '/' } else { c };
            if c == '/' && out.ends_with('/') {
                continue;
            }
            out.push(c);
        }
        push_query(&mut out, query);
        return PathOutcome::Redirect(out);
    }
    let path: Cow<'a, str> = if has_dot_segment(path) {
        Cow::Owned(remove_dot_segments(path))
    } else {
        Cow::Borrowed(path)
    };
    if path.len() > 1 && path.ends_with('/') {
        let mut out = path.trim_end_matches('/').to_owned();
        if out.is_empty() {
            out.push('/');
        }
        push_query(&mut out, query);
        return PathOutcome::Redirect(out);
    }
    if !escapes_ok(&path) {
        return PathOutcome::BadRequest;
    }
    PathOutcome::Route(path)
}

fn push_query(out: &mut String, query: Option<&str>) {
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(q);
    }
}

fn is_single_dot(s: &str) -> bool {
    s == "." || s.eq_ignore_ascii_case("%2e")
}

fn is_double_dot(s: &str) -> bool {
    matches!(s.len(), 2 | 4 | 6)
        && matches!(
            s.to_ascii_lowercase().as_str(),
            ".." | ".%2e" | "%2e." | "%2e%2e"
        )
}

fn has_dot_segment(path: &str) -> bool {
    // Fast reject: no '.' and no "%2e"/"%2E" anywhere.
    let b = path.as_bytes();
    let maybe = b.contains(&b'.')
        || b.windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'2' && (w[2] | 0x20) == b'e');
    maybe
        && path
            .split('/')
            .skip(1)
            .any(|s| is_single_dot(s) || is_double_dot(s))
}

/// The WHATWG URL path parser's treatment of dot segments.
fn remove_dot_segments(path: &str) -> String {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let parts: Vec<&str> = rest.split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(parts.len());
    for (i, seg) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if is_double_dot(seg) {
            out.pop();
            if last {
                out.push("");
            }
        } else if is_single_dot(seg) {
            if last {
                out.push("");
            }
        } else {
            out.push(seg);
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// Every `%` starts a two-hex-digit escape, and the decoded path is UTF-8.
fn escapes_ok(path: &str) -> bool {
    let b = path.as_bytes();
    if !b.contains(&b'%') {
        return true;
    }
    apiroutes_crds::pattern::decode(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(p: &str) -> PathOutcome<'_> {
        normalize(p, None)
    }

    #[test]
    fn clean_paths_are_borrowed() {
        assert_eq!(route("/api/x"), PathOutcome::Route(Cow::Borrowed("/api/x")));
        assert_eq!(route("/"), PathOutcome::Route(Cow::Borrowed("/")));
        assert_eq!(
            route("/api/a.b/..c"),
            PathOutcome::Route(Cow::Borrowed("/api/a.b/..c"))
        );
    }

    #[test]
    fn repeated_slashes_redirect_keeping_query_and_trailing_slash() {
        assert_eq!(
            normalize("/api//x/", Some("a=1")),
            PathOutcome::Redirect("/api/x/?a=1".into())
        );
        assert_eq!(route("//api"), PathOutcome::Redirect("/api".into()));
        assert_eq!(
            normalize("/api\\x", Some("")),
            PathOutcome::Redirect("/api/x".into())
        );
    }

    #[test]
    fn trailing_slash_redirects() {
        assert_eq!(
            normalize("/api/x/", Some("q=%2F")),
            PathOutcome::Redirect("/api/x?q=%2F".into())
        );
    }

    #[test]
    fn dot_segments_are_removed_whatwg_style() {
        assert_eq!(
            route("/api/users/../hello"),
            PathOutcome::Route(Cow::Owned("/api/hello".into()))
        );
        assert_eq!(route("/api/users/.."), PathOutcome::Redirect("/api".into()));
        assert_eq!(
            route("/api/./x/%2E/y/%2e%2E/z"),
            PathOutcome::Route(Cow::Owned("/api/x/z".into()))
        );
        assert_eq!(route("/api/x/."), PathOutcome::Redirect("/api/x".into()));
        assert_eq!(route("/../.."), PathOutcome::Route(Cow::Owned("/".into())));
        assert_eq!(route("/a/.."), PathOutcome::Route(Cow::Owned("/".into())));
        assert_eq!(
            route("/a/.%2e/b"),
            PathOutcome::Route(Cow::Owned("/b".into()))
        );
    }

    #[test]
    fn malformed_escapes_are_bad_requests() {
        assert_eq!(route("/api/%zz"), PathOutcome::BadRequest);
        assert_eq!(route("/api/%"), PathOutcome::BadRequest);
        assert_eq!(route("/api/%ff"), PathOutcome::BadRequest);
        assert_eq!(
            route("/api/%C3%A9%2F"),
            PathOutcome::Route(Cow::Borrowed("/api/%C3%A9%2F"))
        );
    }
}
