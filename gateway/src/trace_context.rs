//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>, Level 1): parsing an incoming
//! `traceparent`, the gateway's own span in a trace, and the `traceparent` it sends on.
//!
//! Pure: the only input besides the header is a source of random `u64`s. The gateway
//! participates in the trace: a valid incoming `traceparent` is continued (same trace id,
//! the caller's span as parent, the caller's sampled flag), anything else starts a new trace
//! (the caller's `tracestate` then goes too: it belonged to a trace that is not continued).

use http::{HeaderMap, HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The `sampled` bit of `trace-flags`, the only flag of version 00.
pub const SAMPLED: u8 = 0x01;

/// Length of a version-00 `traceparent`: `00-` + 32 + `-` + 16 + `-` + 2.
pub const LEN: usize = 55;

/// The fields of a valid incoming `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub version: u8,
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

/// One lower-case hex digit (upper case is not `HEXDIGLC`).
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// `2 * N` lower-case hex digits into `N` bytes.
fn hex_bytes<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(out)
}

/// Parses one `traceparent` value; `None` when it is invalid (the trace is then restarted).
///
/// Version 00 is exactly `00-<32 hex>-<16 hex>-<2 hex>`. A higher version (any but `ff`) is
/// parsed as the spec's "Versioning of traceparent" asks: at least 55 characters, the same
/// first four fields, and after the flags either the end or a `-` (fields it adds are
/// ignored). Hex is lower case only; an all-zero trace id or parent id is invalid.
pub fn parse(value: &[u8]) -> Option<TraceParent> {
    // Surrounding optional whitespace is not part of a field value (RFC 9110 §5.5).
    let v = value.trim_ascii();
    if v.len() < LEN {
        return None;
    }
    let [version] = hex_bytes::<1>(&v[0..2])?;
    if version == 0xff || v[2] != b'-' {
        return None;
    }
    if version == 0 && v.len() != LEN {
        return None;
    }
    if v[35] != b'-' || v[52] != b'-' || (v.len() > LEN && v[LEN] != b'-') {
        return None;
    }
    let trace_id = hex_bytes::<16>(&v[3..35])?;
    let parent_id = hex_bytes::<8>(&v[36..52])?;
    let [flags] = hex_bytes::<1>(&v[53..55])?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        version,
        trace_id,
        parent_id,
        flags,
    })
}

/// The request's `traceparent`: `None` when there is none, it is invalid, or there is more
/// than one (it is not a list header, so two lines cannot be combined into one value).
pub fn incoming(headers: &HeaderMap) -> Option<TraceParent> {
    let mut lines = headers.get_all(TRACEPARENT).iter();
    let first = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    parse(first.as_bytes())
}

/// How new traces (no valid incoming `traceparent`) are sampled: a ratio in `[0, 1]`,
/// decided on the trace id's low 8 bytes (random), so every gateway decides a trace alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampler {
    /// Sampled when the low 8 bytes of the trace id, big-endian, are below this.
    threshold: u64,
    always: bool,
}

impl Sampler {
    /// `ratio` is clamped to `[0, 1]`; NaN samples nothing.
    pub fn new(ratio: f64) -> Self {
        if ratio >= 1.0 {
            return Sampler {
                threshold: u64::MAX,
                always: true,
            };
        }
        if ratio.is_nan() || ratio <= 0.0 {
            return Sampler {
                threshold: 0,
                always: false,
            };
        }
        // 2^64 · ratio, below 2^64 since ratio < 1.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let threshold = (ratio * 18_446_744_073_709_551_616.0) as u64;
        Sampler {
            threshold,
            always: false,
        }
    }

    pub fn samples(&self, trace_id: &[u8; 16]) -> bool {
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        self.always || u64::from_be_bytes(low) < self.threshold
    }
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler::new(1.0)
    }
}

/// The gateway's span of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub trace_id: [u8; 16],
    /// The gateway's own span id: the parent id of the `traceparent` sent on.
    pub span_id: [u8; 8],
    /// The caller's span, when its `traceparent` was valid (the trace is continued).
    pub parent_id: Option<[u8; 8]>,
    pub sampled: bool,
}

/// A non-zero random `u64` (an all-zero id is invalid; `next` returns 0 once in 2^64).
fn nonzero(next: &mut impl FnMut() -> u64) -> u64 {
    loop {
        let n = next();
        if n != 0 {
            return n;
        }
    }
}

impl Span {
    /// Continues `incoming`, or starts a new trace sampled per `sampler`; `next` gives
    /// random `u64`s.
    pub fn start(
        incoming: Option<&TraceParent>,
        sampler: Sampler,
        mut next: impl FnMut() -> u64,
    ) -> Span {
        let span_id = nonzero(&mut next).to_be_bytes();
        match incoming {
            Some(tp) => Span {
                trace_id: tp.trace_id,
                span_id,
                parent_id: Some(tp.parent_id),
                sampled: tp.sampled(),
            },
            None => {
                let mut trace_id = [0u8; 16];
                trace_id[..8].copy_from_slice(&next().to_be_bytes());
                trace_id[8..].copy_from_slice(&nonzero(&mut next).to_be_bytes());
                Span {
                    trace_id,
                    span_id,
                    parent_id: None,
                    sampled: sampler.samples(&trace_id),
                }
            }
        }
    }

    /// The span of a request, from its headers, with the thread's fast generator.
    pub fn for_request(headers: &HeaderMap, sampler: Sampler) -> Span {
        Span::start(incoming(headers).as_ref(), sampler, || fastrand::u64(..))
    }

    /// Whether the caller's trace is continued (its `tracestate` then goes on as well).
    pub fn continued(&self) -> bool {
        self.parent_id.is_some()
    }

    /// The `traceparent` toward the function: version 00 (the highest this knows, whatever
    /// version came in), this span as the parent, only the sampled flag (the others are
    /// reserved: "Vendors MUST set those to zero").
    pub fn traceparent(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..3].copy_from_slice(b"00-");
        hex_into(&mut out[3..35], &self.trace_id);
        out[35] = b'-';
        hex_into(&mut out[36..52], &self.span_id);
        out[52..].copy_from_slice(if self.sampled { b"-01" } else { b"-00" });
        out
    }

    pub fn traceparent_header(&self) -> HeaderValue {
        // Always 55 visible ASCII characters: valid.
        HeaderValue::from_bytes(&self.traceparent())
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes` into `out` (`2 * bytes.len()` long).
pub fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn p(s: &str) -> Option<TraceParent> {
        parse(s.as_bytes())
    }

    #[test]
    fn the_specs_examples_parse() {
        let tp = p(VALID).unwrap();
        assert_eq!(tp.version, 0);
        assert_eq!(
            tp.trace_id,
            [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36
            ]
        );
        assert_eq!(
            tp.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(tp.sampled());
        let unsampled = p("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled());
        // A bit field: 09 is sampled plus an unknown flag.
        assert!(
            p("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09")
                .unwrap()
                .sampled()
        );
        // Optional whitespace around the value.
        assert_eq!(p(&format!(" \t{VALID} ")), p(VALID));
    }

    #[test]
    fn invalid_values_are_rejected() {
        let bad = [
            "",
            "00",
            // Upper-case hex anywhere.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            // All-zero ids.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Version ff is forbidden, also with a valid rest.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // Non-hex version, trace id, parent id, flags.
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            // Wrong lengths (one digit short or long in each field).
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // Other delimiters.
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
            // Version 00 has exactly four fields.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
            // A future version: at least 55 characters, and a dash after the flags.
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-the-future-will-not-be-like",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0100",
            "cc-00000000000000000000000000000000-00f067aa0ba902b7-01-x",
            // Inner whitespace, non-ASCII.
            "00 -4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é",
        ];
        for s in bad {
            assert_eq!(p(s), None, "{s:?} should be invalid");
        }
        assert_eq!(
            parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\xff"),
            None
        );
    }

    #[test]
    fn future_versions_give_their_first_four_fields() {
        for s in [
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        ] {
            let tp = p(s).unwrap_or_else(|| panic!("{s} should parse"));
            assert_eq!(tp.trace_id, p(VALID).unwrap().trace_id);
            assert_eq!(tp.parent_id, p(VALID).unwrap().parent_id);
            assert!(tp.sampled());
        }
        assert_eq!(
            p("fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-a")
                .unwrap()
                .version,
            0xfe
        );
    }

    #[test]
    fn one_header_line_only() {
        let mut h = HeaderMap::new();
        assert_eq!(incoming(&h), None);
        h.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert!(incoming(&h).is_some());
        h.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(incoming(&h), None, "two traceparent lines are invalid");
    }

    fn counter(start: u64) -> impl FnMut() -> u64 {
        let mut n = start;
        move || {
            let v = n;
            n = n.wrapping_add(1);
            v
        }
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_parent() {
        let tp = p("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-future").unwrap();
        let span = Span::start(Some(&tp), Sampler::new(0.0), counter(0x1122));
        assert!(span.continued());
        assert_eq!(span.trace_id, tp.trace_id);
        assert_eq!(span.parent_id, Some(tp.parent_id));
        assert_eq!(span.span_id, 0x1122u64.to_be_bytes());
        // Version 00 out, the caller's sampled flag kept whatever the ratio, the unknown
        // flag (0x02) not passed on.
        assert_eq!(
            &span.traceparent(),
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000001122-01"
        );
        let unsampled = p("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        let span = Span::start(Some(&unsampled), Sampler::new(1.0), counter(7));
        assert!(span.traceparent().ends_with(b"-00"));
    }

    #[test]
    fn new_traces_have_nonzero_ids_and_parse_back() {
        // The generator's zeros are skipped for both ids.
        let span = Span::start(None, Sampler::default(), counter(0));
        assert!(!span.continued());
        assert_eq!(span.span_id, 1u64.to_be_bytes());
        assert_eq!(&span.trace_id[..8], &2u64.to_be_bytes());
        assert_eq!(&span.trace_id[8..], &3u64.to_be_bytes());
        let sent = span.traceparent();
        let back = parse(&sent).unwrap();
        assert_eq!(
            (back.trace_id, back.parent_id),
            (span.trace_id, span.span_id)
        );
        assert!(back.sampled());
        assert_eq!(
            span.traceparent_header().as_bytes(),
            &sent[..],
            "the header value is the formatted traceparent"
        );
        // Real random ids differ.
        let h = HeaderMap::new();
        let a = Span::for_request(&h, Sampler::default());
        let b = Span::for_request(&h, Sampler::default());
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, b.span_id);
        assert!(parse(&a.traceparent()).is_some());
    }

    #[test]
    fn the_sample_ratio_decides_new_traces() {
        let never = Sampler::new(0.0);
        let always = Sampler::new(1.0);
        let half = Sampler::new(0.5);
        let mut id = [0xffu8; 16];
        assert!(always.samples(&id) && !never.samples(&id) && !half.samples(&id));
        id[8] = 0x7f;
        assert!(half.samples(&id));
        assert!(!Sampler::new(f64::NAN).samples(&[0; 16]));
        assert!(Sampler::new(7.0).samples(&id) && !Sampler::new(-1.0).samples(&[0; 16]));
        // About a tenth of random traces at 0.1.
        let tenth = Sampler::new(0.1);
        let n = (0..10_000)
            .filter(|_| tenth.samples(&Span::for_request(&HeaderMap::new(), never).trace_id))
            .count();
        assert!((700..1300).contains(&n), "{n}");
        let span = Span::start(None, never, counter(5));
        assert!(span.traceparent().ends_with(b"-00"));
    }
}
