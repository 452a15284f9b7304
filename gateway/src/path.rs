//! Request-path handling before matching, as Next.js 16.4.6 does it (DESIGN.md, "Path
//! patterns"):
//!
//! 1. a path holding `//` (or `\`) gets a 308 to the path with repeated slashes collapsed
//!    (Next's `normalizeRepeatedSlashes`, which keeps a trailing slash; the next request then
//!    gets the trailing-slash redirect), query kept;
//! 2. dot segments (`.`, `..`, and their `%2e` spellings) are removed, RFC 3986 / WHATWG
//!    style (`/api/users/..` is `/api/`); the function sees the normalized path;
//! 3. a trailing slash gets a 308 to the path without it, the query re-serialized as Next
//!    does (see [`slash_redirect`]), unless the route it names has `trailingSlash` (then
//!    the route serves it; [`PathOutcome::TrailingSlash`]);
//! 4. a malformed escape (`%zz`) or an escape that does not decode to UTF-8 is a 400.
//!
//! A route with `trailingSlash` (Next's `trailingSlash: true`) turns step 3 around for its
//! paths: `/api/x` gets a 308 to `/api/x/` ([`add_slash_redirect`]), `/api/x/` is served,
//! and a path whose last segment names a file (`data.json`, [`is_file`]) keeps the default.

use std::borrow::Cow;

use http::{Method, Uri};

/// The form of a request target the gateway serves (RFC 9112 §3.2).
#[derive(Debug, PartialEq, Eq)]
pub enum TargetForm {
    /// A path (origin-form, or absolute-form's path): matched against the routes.
    Path,
    /// `OPTIONS *`: a question about the server, answered by the gateway.
    Asterisk,
    /// `CONNECT host:port`: a tunnel, which no route serves.
    Authority,
}

/// Which form `uri` takes for `method`, or why it is no valid request target (a 400):
/// authority-form is for `CONNECT` only, asterisk-form for `OPTIONS` only, any other
/// target starts with `/` or a scheme, and a target is ASCII (RFC 3986: other bytes are
/// percent-encoded; a recipient does not autocorrect them, RFC 9112 §3).
pub fn target_form(method: &Method, uri: &Uri) -> Result<TargetForm, &'static str> {
    let path = uri.path();
    if path == "*" {
        return if method == Method::OPTIONS {
            Ok(TargetForm::Asterisk)
        } else {
            Err("an asterisk target is for OPTIONS only")
        };
    }
    if uri.scheme().is_none() {
        if uri.authority().is_some() {
            return if method == Method::CONNECT {
                Ok(TargetForm::Authority)
            } else {
                Err("an authority target (host:port) is for CONNECT only")
            };
        }
        if !path.starts_with('/') {
            return Err("the target must start with / or a scheme");
        }
    }
    if !uri.path_and_query().is_none_or(|pq| pq.as_str().is_ascii()) {
        return Err("the target holds bytes outside ASCII (percent-encode them)");
    }
    Ok(TargetForm::Path)
}

/// What to do with a request path.
#[derive(Debug, PartialEq, Eq)]
pub enum PathOutcome<'a> {
    /// Route this normalized path (borrowed when the request path was already normal).
    Route(Cow<'a, str>),
    /// The path ends in a slash (not `/`; after dot segments are removed). A route with
    /// `trailingSlash` whose last segment is no file ([`is_file`]) serves `trimmed`, the
    /// path without the slash, for matching; anything else gets the 308 to `location`.
    /// The escapes of `trimmed` are not checked yet ([`escapes_ok`]).
    TrailingSlash {
        trimmed: Cow<'a, str>,
        location: String,
    },
    /// Answer 308 with this `Location` (query included).
    Redirect(String),
    /// Answer 400: malformed percent-encoding.
    BadRequest,
}

/// Normalizes a raw request path (`query` is kept on redirects).
pub fn normalize<'a>(path: &'a str, query: Option<&str>) -> PathOutcome<'a> {
    if path.contains("//") || path.contains('\\') {
        return PathOutcome::Redirect(collapse_slashes(path, query));
    }
    let path: Cow<'a, str> = if has_dot_segment(path) {
        Cow::Owned(remove_dot_segments(path))
    } else {
        Cow::Borrowed(path)
    };
    if let Some(location) = slash_redirect(&path, query) {
        let trimmed = match path {
            Cow::Borrowed(p) => Cow::Borrowed(p.trim_end_matches('/')),
            Cow::Owned(p) => Cow::Owned(p.trim_end_matches('/').to_owned()),
        };
        return PathOutcome::TrailingSlash { trimmed, location };
    }
    if !escapes_ok(&path) {
        return PathOutcome::BadRequest;
    }
    PathOutcome::Route(path)
}

/// The `Location` of Next.js 16.4.6's 308 for a path with repeated slashes, a backslash or
/// a trailing slash (`None` for any other path):
/// - `//` or `\\`: `\\` becomes `/`, runs of `/` collapse, the query goes on as received;
/// - a trailing slash: the path without it, and the query re-serialized the way Next does
///   it (form-parsed, grouped by key, written with Node's `querystring.escape`).
pub fn slash_redirect(path: &str, query: Option<&str>) -> Option<String> {
    if path.contains("//") || path.contains('\\') {
        return Some(collapse_slashes(path, query));
    }
    if path.len() <= 1 || !path.ends_with('/') {
        return None;
    }
    let mut out = path.trim_end_matches('/').to_owned();
    if out.is_empty() {
        out.push('/');
    }
    let q = reserialize_query(query.unwrap_or(""));
    if !q.is_empty() {
        out.push('?');
        out.push_str(&q);
    }
    Some(out)
}

/// The `Location` of Next.js's 308 under `trailingSlash: true` for a path without a
/// trailing slash: the path as received plus `/`, the query re-serialized as for
/// [`slash_redirect`] (the same redirect machinery). `None` for `/` and for a path whose
/// last segment holds a `.` (Next's rule `/:notfile((?:[^/]+/)*[^/.]+)`), which is served
/// as it is.
pub fn add_slash_redirect(path: &str, query: Option<&str>) -> Option<String> {
    let last = path.rsplit('/').next().unwrap_or_default();
    if path.len() <= 1 || last.is_empty() || last.contains('.') {
        return None;
    }
    let q = reserialize_query(query.unwrap_or(""));
    let mut out = String::with_capacity(path.len() + 2 + q.len());
    out.push_str(path);
    out.push('/');
    if !q.is_empty() {
        out.push('?');
        out.push_str(&q);
    }
    Some(out)
}

/// Whether Next.js's `trailingSlash: true` treats the path's last segment as a file name
/// (`[^/]+\.\w+`: something, a dot, then letters, digits or `_` to its end, such as
/// `data.json`): with a trailing slash such a path still gets the 308 without it.
pub fn is_file(path: &str) -> bool {
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    match last.rfind('.') {
        Some(dot) if dot > 0 => {
            let ext = &last[dot + 1..];
            !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        _ => false,
    }
}

fn collapse_slashes(path: &str, query: Option<&str>) -> String {
    let mut out = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    for c in path.chars() {
        let c = if c == '\\' { '/' } else { c };
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Names `Object.prototype` has (Node 20+). Next groups query values on a plain object, so
/// such a key first finds the inherited function, which `querystring` writes as empty.
const OBJECT_PROTO: [&str; 11] = [
    "constructor",
    "__defineGetter__",
    "__defineSetter__",
    "hasOwnProperty",
    "__lookupGetter__",
    "__lookupSetter__",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toString",
    "valueOf",
    "toLocaleString",
];

/// A canonical array index ("0", "7", not "07"; below 2^32 - 1): JavaScript lists such
/// object keys first, in numeric order, whatever order they were added in.
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    key.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

/// Next's re-serialization of a query on its trailing-slash redirect: `URLSearchParams`
/// parsing, values grouped on a plain object, `querystring.stringify`. A `__proto__` key
/// is dropped (on the object it replaces the prototype; what that does to later keys named
/// like array members is not modelled, see docs/gateway.md).
fn reserialize_query(query: &str) -> String {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        let key = form_decode(k);
        if key == "__proto__" {
            continue;
        }
        let value = form_decode(v);
        match groups.iter_mut().find(|(g, _)| *g == key) {
            Some((_, values)) => values.push(value),
            None => {
                // An inherited member is the first value, written empty.
                let values = if OBJECT_PROTO.contains(&key.as_str()) {
                    vec![String::new(), value]
                } else {
                    vec![value]
                };
                groups.push((key, values));
            }
        }
    }
    // Stable: index keys in numeric order first, the others in first-seen order.
    groups.sort_by_key(|(k, _)| array_index(k).map_or((1, 0), |n| (0, n)));
    let mut out = String::with_capacity(query.len());
    for (key, values) in &groups {
        for value in values {
            if !out.is_empty() {
                out.push('&');
            }
            qs_escape(&mut out, key);
            out.push('=');
            qs_escape(&mut out, value);
        }
    }
    out
}

/// `application/x-www-form-urlencoded` decoding of one name or value: `+` is a space, a
/// malformed `%` stays literal, invalid UTF-8 becomes U+FFFD.
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut bytes = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = match (b.get(i + 1), b.get(i + 2)) {
            (Some(&h), Some(&l)) if b[i] == b'%' => hex(h).zip(hex(l)),
            _ => None,
        };
        match (b[i], escaped) {
            (_, Some((h, l))) => {
                bytes.push(h << 4 | l);
                i += 2;
            }
            (b'+', None) => bytes.push(b' '),
            (c, None) => bytes.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Node's `querystring.escape`: UTF-8 percent-encoding of everything but
/// `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
fn qs_escape(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&c) {
            out.push(char::from(c));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 15)]));
        }
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
pub fn escapes_ok(path: &str) -> bool {
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
    fn request_targets_take_the_form_their_method_allows() {
        // What hyper's parser refuses itself (400) is refused here too.
        let form = |m: Method, t: &str| match t.parse::<Uri>() {
            Ok(uri) => target_form(&m, &uri),
            Err(_) => Err("unparsable"),
        };
        assert_eq!(form(Method::GET, "/api/x?y=1"), Ok(TargetForm::Path));
        assert_eq!(form(Method::GET, "http://h/api/x"), Ok(TargetForm::Path));
        assert_eq!(form(Method::OPTIONS, "*"), Ok(TargetForm::Asterisk));
        assert_eq!(form(Method::CONNECT, "h:443"), Ok(TargetForm::Authority));
        for (m, t) in [
            (Method::GET, "*"),
            (Method::GET, "h:80"),
            (Method::GET, "x"),
            (Method::POST, "api/x"),
            (Method::OPTIONS, "h:443"),
        ] {
            assert!(form(m.clone(), t).is_err(), "{m} {t}");
        }
        // Raw bytes outside ASCII, as hyper's parser lets them through.
        let raw = Uri::from_maybe_shared(bytes::Bytes::from_static(b"/caf\xc3\xa9"));
        if let Ok(uri) = raw {
            assert!(target_form(&Method::GET, &uri).is_err());
        }
        assert_eq!(form(Method::GET, "/caf%C3%A9"), Ok(TargetForm::Path));
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

    /// Next's answers, computed by the runtime's `nextSlashRedirect`
    /// (runtime/node/conformance/differences.mjs), which the conformance suite checks
    /// against Next.js 16.4.6.
    #[test]
    fn slash_redirect_matches_next() {
        let cases = [
            ("/api/x/", "/api/x"),
            ("/api/x/?", "/api/x"),
            ("/api/x/?a=1&b&a=2", "/api/x?a=1&a=2&b="),
            (
                "/api/x/?x=%20+y&t=%27&z=%zz",
                "/api/x?x=%20%20y&t='&z=%25zz",
            ),
            (
                "/api/echo/?x=%20+y&t=~!*()%27&z=%zz",
                "/api/echo?x=%20%20y&t=~!*()'&z=%25zz",
            ),
            ("/api//x?b&a=1", "/api/x?b&a=1"),
            ("/api/x//?q=1", "/api/x/?q=1"),
            ("/api\\x?q=a+b", "/api/x?q=a+b"),
            ("/api//echo", "/api/echo"),
            ("/api/x/?constructor=1", "/api/x?constructor=&constructor=1"),
            ("/api/x/?__proto__=1&a=2", "/api/x?a=2"),
            (
                "/api/x/?toString&valueOf=2",
                "/api/x?toString=&toString=&valueOf=&valueOf=2",
            ),
            (
                "/api/x/?hasOwnProperty=1&hasOwnProperty=2",
                "/api/x?hasOwnProperty=&hasOwnProperty=1&hasOwnProperty=2",
            ),
            ("/api/x/?b=1&2=x&1=y&01=z", "/api/x?1=y&2=x&b=1&01=z"),
            (
                "/api/x/?4294967295=b&4294967294=a&0=z&00=y",
                "/api/x?0=z&4294967294=a&4294967295=b&00=y",
            ),
            (
                "/api/x/?%C3%A9=%E2%82%AC&k=~!*()'-_.",
                "/api/x?%C3%A9=%E2%82%AC&k=~!*()'-_.",
            ),
            ("/api/x/?a=%ff&b=%2", "/api/x?a=%EF%BF%BD&b=%252"),
            ("/api/x/?a=%e2%82", "/api/x?a=%EF%BF%BD"),
            ("/api/x/?&&a&=&=v", "/api/x?a=&=&=v"),
            ("/api/x/?a=1;b=2,c", "/api/x?a=1%3Bb%3D2%2Cc"),
            ("/api/x/?q=%2F%3F%26%3D", "/api/x?q=%2F%3F%26%3D"),
            ("/api/x/?a+b=c+d", "/api/x?a%20b=c%20d"),
            ("/api/x//", "/api/x/"),
            ("/api/x///?a", "/api/x/?a"),
            ("/api/items/5/", "/api/items/5"),
            ("/api/things/9/?x=1", "/api/things/9?x=1"),
        ];
        for (target, want) in cases {
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target, None),
            };
            assert_eq!(
                slash_redirect(path, query).as_deref(),
                Some(want),
                "{target}"
            );
        }
        assert_eq!(slash_redirect("/api/x", Some("a=1")), None);
        assert_eq!(slash_redirect("/", None), None);
    }

    fn slashed<'a>(trimmed: Cow<'a, str>, location: &str) -> PathOutcome<'a> {
        PathOutcome::TrailingSlash {
            trimmed,
            location: location.into(),
        }
    }

    #[test]
    fn trailing_slash_redirects() {
        assert_eq!(
            normalize("/api/x/", Some("q=%2F")),
            slashed(Cow::Borrowed("/api/x"), "/api/x?q=%2F")
        );
        // The `/api` index, and an encoded last segment, kept as received.
        assert_eq!(
            normalize("/api/", Some("b&a=1")),
            slashed(Cow::Borrowed("/api"), "/api?b=&a=1")
        );
        assert_eq!(
            normalize("/api/caf%C3%A9%2F/", None),
            slashed(Cow::Borrowed("/api/caf%C3%A9%2F"), "/api/caf%C3%A9%2F")
        );
        // Escapes are checked where the path is served, not before the redirect.
        assert_eq!(
            normalize("/api/%zz/", None),
            slashed(Cow::Borrowed("/api/%zz"), "/api/%zz")
        );
        assert!(!escapes_ok("/api/%zz"));
        // Repeated slashes first: the query as received, the trailing slash kept.
        assert_eq!(
            normalize("/api//x//", Some("a+b=1")),
            PathOutcome::Redirect("/api/x/?a+b=1".into())
        );
    }

    /// Next.js's `trailingSlash: true` redirect (load-custom-routes.ts: `/:notfile(...)`
    /// to `/:notfile/`, through the same destination code as the default redirect).
    #[test]
    fn trailing_slash_true_adds_the_slash() {
        let cases = [
            ("/api/x", "/api/x/"),
            ("/api", "/api/"),
            ("/api/x?a=1&b&a=2", "/api/x/?a=1&a=2&b="),
            ("/api/x?q=%2F+y&t=%27", "/api/x/?q=%2F%20y&t='"),
            ("/api/x?constructor=1", "/api/x/?constructor=&constructor=1"),
            ("/api/x?", "/api/x/"),
            ("/api/caf%C3%A9", "/api/caf%C3%A9/"),
            ("/api/a%2Fb", "/api/a%2Fb/"),
            ("/api/users/42", "/api/users/42/"),
            // A dot in an earlier segment does not matter.
            ("/api/v1.2/x", "/api/v1.2/x/"),
        ];
        for (target, want) in cases {
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target, None),
            };
            assert_eq!(
                add_slash_redirect(path, query).as_deref(),
                Some(want),
                "{target}"
            );
        }
        // The root, a path already ending in `/`, and any last segment with a dot are
        // served as they are.
        for path in [
            "/",
            "/api/x/",
            "/api/data.json",
            "/api/a.b-c",
            "/api/.env",
            "/api/x.",
        ] {
            assert_eq!(add_slash_redirect(path, Some("a=1")), None, "{path}");
        }
    }

    #[test]
    fn file_names_keep_the_default_redirect_under_trailing_slash_true() {
        for path in [
            "/api/data.json",
            "/api/data.json/",
            "/api/a.b.c_1",
            "/api/v1.2/report.CSV/",
        ] {
            assert!(is_file(path), "{path}");
        }
        for path in [
            "/api/x",
            "/api/x/",
            "/api/.json",
            "/api/a.b-c",
            "/api/x.",
            "/api/v1.2/x",
            "/api/%2Ejson",
            "/",
        ] {
            assert!(!is_file(path), "{path}");
        }
    }

    #[test]
    fn dot_segments_are_removed_whatwg_style() {
        assert_eq!(
            route("/api/users/../hello"),
            PathOutcome::Route(Cow::Owned("/api/hello".into()))
        );
        assert_eq!(
            route("/api/users/.."),
            slashed(Cow::Owned("/api".into()), "/api")
        );
        assert_eq!(
            route("/api/./x/%2E/y/%2e%2E/z"),
            PathOutcome::Route(Cow::Owned("/api/x/z".into()))
        );
        assert_eq!(
            route("/api/x/."),
            slashed(Cow::Owned("/api/x".into()), "/api/x")
        );
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
