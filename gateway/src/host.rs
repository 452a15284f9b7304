//! The request's authority (RFC 9110 §7.2, RFC 9112 §3.2, RFC 9113 §8.3.1): which one
//! counts, and whether it is a valid `uri-host [ ":" port ]` (RFC 3986 §3.2). Pure.

use apiroutes_crds::pattern::escape_at;
use http::{HeaderMap, HeaderValue, Uri, Version, header};

use crate::error::Error;

fn bad(reason: &'static str) -> Error {
    Error::BadHost { reason }
}

/// The authority the request is for, validated: an absolute-form target's (or h2's
/// `:authority`), else the single `Host` line. `None` for an HTTP/1.0 request without
/// either, or an empty `Host`.
pub fn request_authority(
    headers: &HeaderMap,
    uri: &Uri,
    version: Version,
) -> Result<Option<HeaderValue>, Error> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(bad("more than one Host header"));
    }
    // Every Host must be valid, even where the target's authority wins (RFC 9112 §3.2).
    if let Some(h) = host
        && !valid_authority(h.as_bytes())
    {
        return Err(bad("the Host header is not a valid host[:port]"));
    }
    if let Some(a) = uri.authority() {
        if !valid_authority(a.as_str().as_bytes()) {
            return Err(bad(
                "the request target's authority is not a valid host[:port]",
            ));
        }
        // h2: a Host naming another authority is malformed (RFC 9113 §8.3.1). HTTP/1's
        // absolute form: Host is ignored and replaced (RFC 9112 §3.2.2).
        if version == Version::HTTP_2
            && host.is_some_and(|h| !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes()))
        {
            return Err(bad("Host differs from :authority"));
        }
        return Ok(HeaderValue::from_str(a.as_str()).ok());
    }
    match host {
        Some(h) if h.is_empty() => Ok(None),
        Some(h) => Ok(Some(h.clone())),
        None if version == Version::HTTP_11 => Err(bad("an HTTP/1.1 request needs a Host")),
        None => Ok(None),
    }
}

/// The host of a valid authority, without its port (IP literals keep their brackets).
pub fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority.split_once(':').map_or(authority, |(h, _)| h)
}

/// `uri-host [ ":" port ]`: a reg-name, IPv4 address or IP literal, and a port of at most
/// 65535. No userinfo (`a@b`), no spaces. An empty value is valid (RFC 9110 §7.2).
pub fn valid_authority(s: &[u8]) -> bool {
    let (host_ok, port) = match s.first() {
        Some(b'[') => {
            let Some(end) = s.iter().position(|&b| b == b']') else {
                return false;
            };
            let port = match &s[end + 1..] {
                [] => None,
                [b':', p @ ..] => Some(p),
                _ => return false,
            };
            (valid_ip_literal(&s[1..end]), port)
        }
        _ => match s.iter().position(|&b| b == b':') {
            Some(i) => (valid_reg_name(&s[..i]), Some(&s[i + 1..])),
            None => (valid_reg_name(s), None),
        },
    };
    host_ok && port.is_none_or(valid_port)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// reg-name = *( unreserved / pct-encoded / sub-delims ); IPv4 addresses fit it too.
fn valid_reg_name(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' if escape_at(s, i) => i += 3,
            b if is_unreserved(b) || is_sub_delim(b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// IPv6address or IPvFuture (`v` HEXDIG+ `.` ( unreserved / sub-delims / `:` )+).
fn valid_ip_literal(s: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = s {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (ver, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !ver.is_empty()
            && ver.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    std::str::from_utf8(s).is_ok_and(|t| t.parse::<std::net::Ipv6Addr>().is_ok())
}

/// port = *DIGIT, and a number a TCP port can be.
fn valid_port(p: &[u8]) -> bool {
    p.len() <= 5
        && p.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(p)
            .ok()
            .is_none_or(|t| t.is_empty() || t.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn authorities_follow_rfc_3986() {
        for ok in [
            "example.com",
            "Shop.Example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "[v1.fe:80]",
            "a%2Db",
            "x:",
            "",
            "a-b_c~d!$&'()*+,;=",
            "h:65535",
        ] {
            assert!(valid_authority(ok.as_bytes()), "{ok:?} should be valid");
        }
        for bad in [
            "user@host",
            "a@b:80",
            "a b",
            "host:99999",
            "host:65536",
            "host:8x",
            "host:-1",
            "host:80:80",
            "[::1",
            "[::1]x",
            "[nope]",
            "[fe80::1%eth0]",
            "a%zz",
            "a%2",
            "a/b",
            "é.example",
            "host\t",
        ] {
            assert!(
                !valid_authority(bad.as_bytes()),
                "{bad:?} should be invalid"
            );
        }
    }

    fn headers(hosts: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(header::HOST, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn which_authority_counts() {
        let origin: Uri = "/x".parse().unwrap();
        let abs: Uri = "http://target.example:8080/x".parse().unwrap();
        let one = headers(&["other.example"]);
        let got = request_authority(&one, &origin, Version::HTTP_11).unwrap();
        assert_eq!(got.unwrap(), "other.example");
        // Absolute form: the target's authority, whatever Host says.
        let got = request_authority(&one, &abs, Version::HTTP_11).unwrap();
        assert_eq!(got.unwrap(), "target.example:8080");
        // h2: :authority, and a contradicting Host is refused.
        let got = request_authority(&HeaderMap::new(), &abs, Version::HTTP_2).unwrap();
        assert_eq!(got.unwrap(), "target.example:8080");
        assert!(request_authority(&one, &abs, Version::HTTP_2).is_err());
        let same = headers(&["Target.example:8080"]);
        assert!(request_authority(&same, &abs, Version::HTTP_2).is_ok());

        assert!(request_authority(&headers(&["a", "a"]), &origin, Version::HTTP_11).is_err());
        assert!(request_authority(&headers(&["a@b"]), &origin, Version::HTTP_11).is_err());
        assert!(request_authority(&headers(&["a@b"]), &abs, Version::HTTP_11).is_err());
        let userinfo: Uri = "http://u@h/x".parse().unwrap();
        assert!(request_authority(&HeaderMap::new(), &userinfo, Version::HTTP_11).is_err());
        assert!(request_authority(&HeaderMap::new(), &origin, Version::HTTP_11).is_err());
        let none = request_authority(&HeaderMap::new(), &origin, Version::HTTP_10).unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn hosts_lose_their_ports() {
        assert_eq!(host_of("Shop.example.com:8080"), "Shop.example.com");
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of("a.example"), "a.example");
    }
}
