//! The path-pattern language of Next.js `pages/api` routes: the whole grammar, the canonical
//! form used for conflicts, the precedence order between patterns and a reference matcher.
//!
//! # Grammar
//!
//! ```text
//! pattern   = "/"                               ; the root (pages/api/index.js is "/api")
//!           | 1*( "/" segment )                 ; no trailing "/", no empty segment ("//")
//! segment   = static                            ; users          matches itself, byte for byte
//!           | "[" name "]"                      ; [id]           exactly one segment
//!           | "[..." name "]"                   ; [...slug]      one or more segments, last only
//!           | "[[..." name "]]"                 ; [[...slug]]    zero or more segments, last only
//! static    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "!" / "$" / "&" / "(" / ")"
//!               / "*" / "+" / "," / ";" / "=" / ":" / "@" / pct-encoded ), not "." or ".."
//! name      = 1*( ALPHA / DIGIT / "_" / "-" ), unique within the pattern
//! ```
//!
//! # Precedence (what Next.js does)
//!
//! Next.js sorts its routes into a trie and tries them depth first; at every level a route
//! that ends there comes first, then static children, then the dynamic child, then the
//! catch-all, then the optional catch-all. The first route whose whole pattern matches the
//! request wins, so a path that fits nothing below a static segment falls back to a dynamic
//! sibling higher up. [`Precedence`] is that order as an [`Ord`] key: of all patterns that
//! match a path, the winner is the **greatest**.
//!
//! # Matching (what Next.js does)
//!
//! Paths are split on `/` *before* percent-decoding: static segments compare undecoded and
//! case-sensitively, parameter values are percent-decoded after matching (`%2F` becomes `/`
//! inside a value). A required catch-all never matches zero segments; an optional catch-all
//! that matches zero segments leaves its parameter absent.

use std::{cmp::Ordering, fmt, str::FromStr};

use percent_encoding::percent_decode_str;
use serde::{Serialize, Serializer};

/// One segment of a pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// `users`: matches exactly this text (undecoded, case-sensitive).
    Static(String),
    /// `[id]`: matches one segment.
    Dynamic(String),
    /// `[...slug]`: matches one or more segments; last only.
    CatchAll(String),
    /// `[[...slug]]`: matches zero or more segments; last only.
    OptionalCatchAll(String),
}

impl Segment {
    /// The parameter name, for the segments that bind one.
    pub fn param(&self) -> Option<&str> {
        match self {
            Segment::Static(_) => None,
            Segment::Dynamic(n) | Segment::CatchAll(n) | Segment::OptionalCatchAll(n) => Some(n),
        }
    }

    /// Parses one segment of a pattern; `at` is its byte offset, for the error. The one
    /// reader of the bracket syntax: the CLI's importer walks a Next.js file tree with it.
    pub fn parse(part: &str, at: usize) -> Result<Segment, PatternError> {
        parse_segment(part, at)
    }

    /// The segment with its parameter name erased (`[]`, `[...]`, `[[...]]`).
    pub fn canonical(&self) -> &str {
        match self {
            Segment::Static(s) => s,
            Segment::Dynamic(_) => "[]",
            Segment::CatchAll(_) => "[...]",
            Segment::OptionalCatchAll(_) => "[[...]]",
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Segment::Static(_) => 3,
            Segment::Dynamic(_) => 2,
            Segment::CatchAll(_) => 1,
            Segment::OptionalCatchAll(_) => 0,
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Static(s) => f.write_str(s),
            Segment::Dynamic(n) => write!(f, "[{n}]"),
            Segment::CatchAll(n) => write!(f, "[...{n}]"),
            Segment::OptionalCatchAll(n) => write!(f, "[[...{n}]]"),
        }
    }
}

/// Why a pattern is not valid. `at` is the byte offset in the pattern text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern is empty; it must start with '/', e.g. /api/users/[id]")]
    Empty,
    #[error("pattern must start with '/' (got {0:?})")]
    NoLeadingSlash(String),
    #[error("pattern must not end with '/' (at byte {at})")]
    TrailingSlash { at: usize },
    #[error("empty segment ('//') at byte {at}")]
    EmptySegment { at: usize },
    #[error("segment {segment:?} at byte {at}: '.' and '..' are not allowed")]
    DotSegment { segment: String, at: usize },
    #[error("segment {segment:?} at byte {at}: character {ch:?} is not allowed")]
    BadCharacter {
        segment: String,
        ch: char,
        at: usize,
    },
    #[error("segment {segment:?} at byte {at}: malformed percent-escape")]
    BadEscape { segment: String, at: usize },
    #[error(
        "segment {segment:?} at byte {at}: malformed parameter; use [name], [...name] or [[...name]]"
    )]
    MalformedParam { segment: String, at: usize },
    #[error(
        "segment {segment:?} at byte {at}: optional parameters are only for catch-alls: use \"[[...{name}]]\""
    )]
    OptionalNotCatchAll {
        segment: String,
        name: String,
        at: usize,
    },
    #[error("segment {segment:?} at byte {at}: empty parameter name")]
    EmptyParamName { segment: String, at: usize },
    #[error(
        "segment {segment:?} at byte {at}: parameter name may hold only letters, digits, '_' and '-'"
    )]
    BadParamName { segment: String, at: usize },
    #[error("parameter {name:?} appears twice (second at byte {at})")]
    DuplicateParam { name: String, at: usize },
    #[error("catch-all {segment:?} at byte {at} must be the last segment")]
    CatchAllNotLast { segment: String, at: usize },
}

impl PatternError {
    /// Whether the error is in a parameter's brackets (as opposed to a static segment's
    /// characters or the path's shape).
    pub fn in_param(&self) -> bool {
        matches!(
            self,
            PatternError::MalformedParam { .. }
                | PatternError::OptionalNotCatchAll { .. }
                | PatternError::EmptyParamName { .. }
                | PatternError::BadParamName { .. }
        )
    }
}

/// A parsed path pattern such as `/api/users/[id]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    segments: Vec<Segment>,
}

impl Pattern {
    /// Parses a pattern, saying what is wrong and where when it is not valid.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PatternError::NoLeadingSlash(text.to_owned()));
        };
        if rest.is_empty() {
            return Ok(Pattern { segments: vec![] });
        }
        let mut segments: Vec<Segment> = Vec::new();
        let mut at = 1;
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if part.is_empty() {
                return Err(if last {
                    PatternError::TrailingSlash { at: at - 1 }
                } else {
                    PatternError::EmptySegment { at }
                });
            }
            let segment = parse_segment(part, at)?;
            if let Some(name) = segment.param()
                && segments.iter().any(|s| s.param() == Some(name))
            {
                return Err(PatternError::DuplicateParam {
                    name: name.to_owned(),
                    at,
                });
            }
            if let Some(prev) = segments.last()
                && matches!(prev, Segment::CatchAll(_) | Segment::OptionalCatchAll(_))
            {
                let prev_at = at - 1 - prev.to_string().len();
                return Err(PatternError::CatchAllNotLast {
                    segment: prev.to_string(),
                    at: prev_at,
                });
            }
            segments.push(segment);
            at += part.len() + 1;
        }
        Ok(Pattern { segments })
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The parameter names, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(Segment::param)
    }

    /// The pattern with parameter names erased: two patterns with equal canonical forms
    /// match exactly the same paths (`/api/[id]` and `/api/[slug]` are both `/api/[]`).
    pub fn canonical(&self) -> String {
        if self.segments.is_empty() {
            return "/".to_owned();
        }
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            out.push_str(s.canonical());
        }
        out
    }

    /// The Next.js precedence key: of all patterns matching a path, the greatest wins.
    pub fn precedence(&self) -> Precedence<'_> {
        Precedence(&self.segments)
    }

    /// Matches a request path that is already normalized (no dot segments, no empty or
    /// trailing segments; see the gateway) against this pattern alone. Returns the
    /// parameters, percent-decoded, or `None` when the path does not fit.
    ///
    /// This is the reference for the gateway's trie: simple rather than fast.
    pub fn match_path(&self, path: &str) -> Result<Option<Params>, MatchError> {
        let raw = split_path(path);
        let mut params = Params::default();
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Static(s) => {
                    if raw.get(i) != Some(&s.as_str()) {
                        return Ok(None);
                    }
                }
                Segment::Dynamic(n) => match raw.get(i) {
                    Some(v) => params.push(n, ParamValue::One(decode(v)?)),
                    None => return Ok(None),
                },
                Segment::CatchAll(n) | Segment::OptionalCatchAll(n) => {
                    let rest = raw.get(i..).unwrap_or(&[]);
                    if rest.is_empty() {
                        return Ok(if matches!(seg, Segment::CatchAll(_)) {
                            None
                        } else {
                            params.push(n, ParamValue::Absent);
                            Some(params)
                        });
                    }
                    params.push(n, ParamValue::Many(decode_all(rest)?));
                    return Ok(Some(params));
                }
            }
        }
        Ok((raw.len() == self.segments.len()).then_some(params))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for s in &self.segments {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

impl FromStr for Pattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

fn parse_segment(part: &str, at: usize) -> Result<Segment, PatternError> {
    let malformed = || PatternError::MalformedParam {
        segment: part.to_owned(),
        at,
    };
    if part.starts_with('[') || part.ends_with(']') {
        let (inner, make): (&str, fn(String) -> Segment) = if let Some(inner) = part
            .strip_prefix("[[...")
            .and_then(|p| p.strip_suffix("]]"))
        {
            (inner, Segment::OptionalCatchAll)
        } else if let Some(inner) = part.strip_prefix("[...").and_then(|p| p.strip_suffix(']')) {
            (inner, Segment::CatchAll)
        } else if let Some(name) = part.strip_prefix("[[").and_then(|p| p.strip_suffix("]]"))
            && !name.is_empty()
            && !name.contains(['[', ']', '.'])
        {
            return Err(PatternError::OptionalNotCatchAll {
                segment: part.to_owned(),
                name: name.to_owned(),
                at,
            });
        } else if let Some(inner) = part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            (inner, Segment::Dynamic)
        } else {
            return Err(malformed());
        };
        if inner.is_empty() {
            return Err(PatternError::EmptyParamName {
                segment: part.to_owned(),
                at,
            });
        }
        if inner.contains(['[', ']', '.']) {
            return Err(malformed());
        }
        if !inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(PatternError::BadParamName {
                segment: part.to_owned(),
                at,
            });
        }
        return Ok(make(inner.to_owned()));
    }
    if part == "." || part == ".." {
        return Err(PatternError::DotSegment {
            segment: part.to_owned(),
            at,
        });
    }
    let bytes = part.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if !escape_at(bytes, i) {
                return Err(PatternError::BadEscape {
                    segment: part.to_owned(),
                    at: at + i,
                });
            }
            i += 3;
            continue;
        }
        if !is_static_char(b) {
            let ch = part[i..].chars().next().unwrap_or('?');
            return Err(PatternError::BadCharacter {
                segment: part.to_owned(),
                ch,
                at: at + i,
            });
        }
        i += 1;
    }
    Ok(Segment::Static(part.to_owned()))
}

/// RFC 3986 `pchar` minus percent (handled apart) and `'`: unreserved, sub-delims, ':' and '@'.
fn is_static_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&()*+,;=:@".contains(&b)
}

/// The precedence key of a pattern (see the module docs); greater wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Precedence<'a>(&'a [Segment]);

impl Ord for Precedence<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(other.0) {
            let by_kind = a.rank().cmp(&b.rank());
            if by_kind != Ordering::Equal {
                return by_kind;
            }
            if let (Segment::Static(a), Segment::Static(b)) = (a, b) {
                // Next sorts static siblings alphabetically and tries the first first.
                let by_name = b.cmp(a);
                if by_name != Ordering::Equal {
                    return by_name;
                }
            }
        }
        // A route that ends at a trie node is tried before the node's children.
        other.0.len().cmp(&self.0.len())
    }
}

impl PartialOrd for Precedence<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A request path was not valid UTF-8 after percent-decoding, or held a malformed escape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed percent-encoding in request path")]
pub struct MatchError;

/// Splits a normalized request path into its raw (undecoded) segments; `/` has none.
pub fn split_path(path: &str) -> Vec<&str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

/// Whether `bytes[i..]` starts with a percent-escape: `%` and two hex digits (RFC 3986
/// §2.1). The one home of that rule for patterns, paths, queries and hosts.
pub fn escape_at(bytes: &[u8], i: usize) -> bool {
    bytes.get(i) == Some(&b'%')
        && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
        && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
}

/// Where the first `%` that does not start a percent-escape is, if any.
pub fn first_bad_escape(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find(|&i| bytes[i] == b'%' && !escape_at(bytes, i))
}

/// Decodes one `application/x-www-form-urlencoded` value: `+` is a space, then as
/// [`decode`] (a malformed escape or non-UTF-8 is refused).
pub fn decode_form(raw: &str) -> Result<String, MatchError> {
    if raw.contains('+') {
        decode(&raw.replace('+', " "))
    } else {
        decode(raw)
    }
}

/// Percent-decodes one raw path segment into a parameter value.
pub fn decode(raw: &str) -> Result<String, MatchError> {
    if first_bad_escape(raw.as_bytes()).is_some() {
        return Err(MatchError);
    }
    percent_decode_str(raw)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| MatchError)
}

/// Percent-decodes raw segments into a catch-all value.
pub fn decode_all(raw: &[&str]) -> Result<Vec<String>, MatchError> {
    raw.iter().map(|s| decode(s)).collect()
}

/// A parameter value: one segment, the segments a catch-all took, or none at all (an
/// optional catch-all that took no segment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamValue {
    One(String),
    Many(Vec<String>),
    /// `null` in `x-apiroute-params`: the name is the route's, so the runtime knows it (Next
    /// drops a query key of that name from `req.url`), but `req.query` gets no value.
    Absent,
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::One(v) => v.serialize(s),
            ParamValue::Many(v) => v.serialize(s),
            ParamValue::Absent => s.serialize_unit(),
        }
    }
}

/// Route parameters in pattern order; serializes as the JSON object of `x-apiroute-params`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, ParamValue)>);

impl Params {
    pub fn push(&mut self, name: &str, value: ParamValue) {
        self.0.push((name.to_owned(), value));
    }

    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON object sent to functions as `x-apiroute-params`.
    pub fn to_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(n, v)| {
                let v = match v {
                    ParamValue::One(s) => serde_json::Value::from(s.as_str()),
                    ParamValue::Many(list) => serde_json::Value::from(list.clone()),
                    ParamValue::Absent => serde_json::Value::Null,
                };
                (n.clone(), v)
            })
            .collect();
        serde_json::Value::Object(map).to_string()
    }
}

#[cfg(test)]
mod tests;
