//! The distribution auth flow's pure parts: `WWW-Authenticate` challenges, the token
//! request, and the token server's answer.

use std::collections::BTreeMap;

use base64::Engine;

/// One challenge of a `WWW-Authenticate` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lower-cased: `basic`, `bearer`.
    pub scheme: String,
    /// Parameter names lower-cased; values unquoted and unescaped.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` value (RFC 9110 §11.6.1): one or more challenges, each a
/// scheme and comma-separated `name=value` parameters, values a token or a quoted string
/// (which may hold commas, `=` and `\"`). A `token68` (`Negotiate abc==`) is skipped.
/// What cannot be read ends the parse; the challenges read so far are kept.
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip(b" \t,");
        let Some(scheme) = p.token() else { break };
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        p.skip(b" \t");
        // Parameters until the next scheme: a token not followed by `=`.
        let mut first = true;
        loop {
            let save = p.i;
            let comma = p.skip(b" \t,");
            let Some(name) = p.token() else { break };
            p.skip(b" \t");
            if !p.eat(b'=') {
                if first && !comma {
                    first = false; // a token68 right after the scheme (`Negotiate abc`)
                    continue;
                }
                p.i = save; // the next challenge's scheme
                break;
            }
            first = false;
            p.skip(b" \t");
            let value = if p.peek() == Some(b'"') {
                p.quoted()
            } else if p.peek() == Some(b'=') || p.peek().is_none() || p.peek() == Some(b',') {
                // token68 padding (`abc==`): not a parameter.
                p.skip(b"=");
                None
            } else {
                p.token().map(str::to_owned)
            };
            match value {
                Some(v) => {
                    challenge.params.insert(name.to_ascii_lowercase(), v);
                }
                None => {
                    // Unreadable (an unterminated quote) or a token68: skip to the next comma.
                    while p.peek().is_some_and(|c| c != b',') {
                        p.i += 1;
                    }
                }
            }
        }
        out.push(challenge);
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }
    /// Skips bytes of `set`; whether a comma was among them.
    fn skip(&mut self, set: &[u8]) -> bool {
        let mut comma = false;
        while let Some(c) = self.peek().filter(|c| set.contains(c)) {
            comma |= c == b',';
            self.i += 1;
        }
        comma
    }
    /// An RFC 9110 token, extended with `/` so a token68 reads as one word.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&c))
        {
            self.i += 1;
        }
        (self.i > start)
            .then(|| std::str::from_utf8(&self.s[start..self.i]).ok())
            .flatten()
    }
    /// A quoted string, the opening quote next; `None` if it is not closed.
    fn quoted(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    out.push(self.peek()?);
                    self.i += 1;
                }
                c => out.push(c),
            }
        }
        None
    }
}

/// `repository:<repo>:pull,push`: everything a push needs, asked for once.
pub(crate) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// application/x-www-form-urlencoded, for query strings and the refresh-token form.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The token request's URL: the realm with `service` (if the challenge names one) and
/// `scope` added to its query.
pub(crate) fn token_url(realm: &str, service: Option<&str>, scope: &str) -> String {
    let mut pairs = Vec::new();
    if let Some(s) = service {
        pairs.push(("service", s));
    }
    pairs.push(("scope", scope));
    let sep = if realm.contains('?') { '&' } else { '?' };
    format!("{realm}{sep}{}", form(&pairs))
}

/// `Basic base64(user:password)`.
pub(crate) fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The token of a token server's JSON answer: `token`, else `access_token` (OAuth2).
/// The error never quotes the body (it may hold a token).
pub(crate) fn token_from(body: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
    }
    let a: Answer = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the answer is not the JSON of a token (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    a.token
        .filter(|t| !t.is_empty())
        .or(a.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| "the answer has neither `token` nor `access_token`".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str) -> Challenge {
        let mut all = parse_challenges(header);
        assert_eq!(all.len(), 1, "{header}: {all:?}");
        all.remove(0)
    }

    #[test]
    fn a_bearer_challenge_with_commas_inside_quotes() {
        let c = one(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:apiroutes/echo:pull,push""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("service"), Some("registry.example"));
        assert_eq!(
            c.param("scope"),
            Some("repository:apiroutes/echo:pull,push")
        );
    }

    #[test]
    fn schemes_and_names_are_case_insensitive_and_spacing_is_free() {
        let c = one(r#"BEARER  Realm = "https://a/t" ,  SERVICE=reg.example ,scope="x""#);
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://a/t"));
        assert_eq!(c.param("service"), Some("reg.example"));
        assert_eq!(c.param("scope"), Some("x"));
        assert_eq!(one(r#"basic realm="Registry Realm""#).scheme, "basic");
        assert_eq!(one("Basic").params.len(), 0);
    }

    #[test]
    fn escapes_in_quoted_values() {
        let c = one(r#"Basic realm="say \"hi\", then \\ go""#);
        assert_eq!(c.param("realm"), Some(r#"say "hi", then \ go"#));
    }

    #[test]
    fn several_challenges_in_one_field() {
        let all = parse_challenges(
            r#"Negotiate abc==, Basic realm="r1", charset="UTF-8", Bearer realm="https://a/t",scope="repository:x:pull,push""#,
        );
        let schemes: Vec<&str> = all.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["negotiate", "basic", "bearer"]);
        let unpadded = parse_challenges(r#"Negotiate a1/b2, Basic realm="r""#);
        let schemes: Vec<&str> = unpadded.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["negotiate", "basic"]);
        assert!(all[0].params.is_empty());
        assert_eq!(all[1].param("realm"), Some("r1"));
        assert_eq!(all[1].param("charset"), Some("UTF-8"));
        assert_eq!(all[2].param("scope"), Some("repository:x:pull,push"));
    }

    #[test]
    fn broken_input_keeps_what_was_read() {
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges("  ,, ").is_empty());
        let c = one(r#"Bearer realm="https://a/t", scope="unterminated"#);
        assert_eq!(c.param("realm"), Some("https://a/t"));
        assert_eq!(c.param("scope"), None);
    }

    #[test]
    fn the_token_request() {
        assert_eq!(
            token_url(
                "https://auth.example/token",
                Some("registry.example"),
                &push_scope("apiroutes/echo")
            ),
            "https://auth.example/token?service=registry.example&scope=repository%3Aapiroutes%2Fecho%3Apull%2Cpush"
        );
        assert_eq!(
            token_url("https://a/t?account=x", None, "s"),
            "https://a/t?account=x&scope=s"
        );
        assert_eq!(basic("ann", "pa:ss"), "Basic YW5uOnBhOnNz");
    }

    #[test]
    fn the_token_answer() {
        assert_eq!(
            token_from(br#"{"token":"t1","access_token":"t2"}"#),
            Ok("t1".into())
        );
        assert_eq!(
            token_from(br#"{"access_token":"t2","expires_in":300}"#),
            Ok("t2".into())
        );
        assert_eq!(
            token_from(br#"{"token":"","access_token":"t2"}"#),
            Ok("t2".into())
        );
        let err = token_from(br#"{"error":"secret-ish"}"#)
            .err()
            .unwrap_or_default();
        assert!(err.contains("neither"), "{err}");
        let err = token_from(br#"{"token": 5, "x": "secret-ish"}"#)
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("not the JSON of a token") && !err.contains("secret"),
            "{err}"
        );
    }
}
