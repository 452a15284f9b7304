//! Where a registry is and how it is reached: HTTPS with the platform's root certificates
//! (and an optional private CA), or plain HTTP when asked for or on loopback.

use std::{
    error::Error as StdError,
    net::IpAddr,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::http::uri::{Authority, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

use crate::{Error, Result};

/// One client for HTTPS and plain HTTP: a plain-HTTP registry may name an HTTPS token server.
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A registry's address as the user gave it, resolved to a scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host[:port]`, as given (the image's new registry in `Pushed::target`, and the key
    /// credentials are looked up by).
    pub authority: String,
    /// `https://host[:port]` or `http://host[:port]`, without a trailing slash.
    pub base: String,
    pub plain_http: bool,
}

impl Endpoint {
    /// `registry` is `host[:port]`, `https://host[:port]` or `http://host[:port]` (a trailing
    /// `/` is allowed). Without a scheme it is HTTPS unless `insecure`, or the host is on
    /// loopback (`localhost`, 127.0.0.0/8, `::1`): plain HTTP there, as docker does.
    pub fn parse(registry: &str, insecure: bool) -> Result<Endpoint> {
        let bad = |why: &str| Error::Spec(format!("registry `{registry}`: {why}"));
        let given = registry.trim();
        let (scheme, rest) = match given.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Some(false), rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Some(true), rest),
            Some(_) => return Err(bad("the scheme must be https:// or http://")),
            None => (None, given),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.ends_with(':') || rest.contains(['/', '@', '?', '#']) {
            return Err(bad(
                "expected HOST[:PORT], optionally after https:// or http://",
            ));
        }
        let authority: Authority = rest
            .parse()
            .map_err(|_| bad("expected HOST[:PORT], optionally after https:// or http://"))?;
        let port = &authority.as_str()[authority.host().len()..];
        let port_ok = port.strip_prefix(':').map(str::parse::<u16>);
        if !(port.is_empty() || port_ok.is_some_and(|p| p.is_ok_and(|p| p > 0))) {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
        let plain_http = match scheme {
            Some(false) if insecure => {
                return Err(bad(
                    "https:// and the insecure (plain HTTP) option contradict each other",
                ));
            }
            Some(plain) => plain,
            None => insecure || is_loopback(authority.host()),
        };
        let authority = authority.as_str().to_owned();
        let base = format!(
            "{}://{authority}",
            if plain_http { "http" } else { "https" }
        );
        Ok(Endpoint {
            authority,
            base,
            plain_http,
        })
    }

    /// Whether `url` goes to this registry (same scheme, host and port): only then does a
    /// request carry the registry's credentials (an upload `Location` may point elsewhere).
    pub fn owns(&self, url: &str) -> bool {
        url.strip_prefix(&self.base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
    }
}

/// `localhost`, 127.0.0.0/8 or `::1` (`host` as in a URL: an IPv6 address in brackets).
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a URL (a token realm) is plain HTTP to something other than loopback.
pub(crate) fn is_plain_remote(url: &Uri) -> bool {
    url.scheme_str() == Some("http") && !url.host().is_some_and(is_loopback)
}

/// The trust for HTTPS: the platform's root certificates, plus `ca_file`'s.
///
/// The platform's store (rustls-native-certs, as kube's client in this workspace does)
/// rather than a compiled-in Mozilla list: a company's CA installed on the machine, and
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`, work for a private registry as they do for docker
/// and curl; the store is updated with the system.
pub(crate) struct Trust {
    pub client: HttpClient,
    /// Root certificates the platform gave (0 tells a certificate error's reader why), and
    /// the first problem met loading them.
    pub platform_roots: usize,
    pub platform_problem: Option<String>,
    pub ca_file: Option<PathBuf>,
}

pub(crate) fn client(ca_file: Option<&Path>) -> Result<Trust> {
    let roots = apiroutes_tls::roots(true, ca_file).map_err(|e| Error::Spec(e.to_string()))?;
    let (platform_roots, platform_problem) = (roots.system, roots.system_problem);
    let tls = apiroutes_tls::client_config(roots.store).map_err(|e| Error::Spec(e.to_string()))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Trust {
        client: Client::builder(TokioExecutor::new()).build(connector),
        platform_roots,
        platform_problem,
        ca_file: ca_file.map(Path::to_path_buf),
    })
}

impl Trust {
    /// A failed request in words: every cause, and for a TLS failure what to do about it.
    pub fn describe(&self, err: &(dyn StdError + 'static)) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut tls = None;
        let mut next = Some(err);
        while let Some(e) = next {
            let text = e.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            // io::Error's source() skips the error it wraps; rustls' is in there.
            let inner = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|i| i as &(dyn StdError + 'static));
            tls = tls.or_else(|| {
                e.downcast_ref::<rustls::Error>()
                    .or_else(|| inner.and_then(|i| i.downcast_ref::<rustls::Error>()))
            });
            next = e.source().or(inner);
        }
        let mut out = parts.join(": ");
        match tls {
            Some(rustls::Error::InvalidCertificate(_)) => {
                out.push_str(
                    "; the registry's TLS certificate is not trusted: trust its CA with \
                     the CA-file option (`--ca-file` / APIROUTES_REGISTRY_CA)",
                );
                if let Some(ca) = &self.ca_file {
                    out.push_str(&format!(" (now {})", ca.display()));
                }
                out.push_str(" or the system's store");
                if self.platform_roots == 0 {
                    out.push_str(" (none were found on this machine");
                    if let Some(p) = &self.platform_problem {
                        out.push_str(&format!(": {p}"));
                    }
                    out.push(')');
                }
            }
            Some(rustls::Error::InvalidMessage(_)) => out.push_str(
                "; the registry does not speak TLS here: a plain-HTTP registry is given as \
                 http://HOST:PORT or with the insecure option (`--insecure`)",
            ),
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, insecure: bool) -> Result<(String, String, bool)> {
        let e = Endpoint::parse(s, insecure)?;
        Ok((e.authority, e.base, e.plain_http))
    }

    #[test]
    fn https_unless_asked_or_loopback() -> Result<()> {
        for (given, insecure, authority, base) in [
            ("ghcr.io", false, "ghcr.io", "https://ghcr.io"),
            (
                "registry.example:5000",
                false,
                "registry.example:5000",
                "https://registry.example:5000",
            ),
            (
                "https://registry.example:5000/",
                false,
                "registry.example:5000",
                "https://registry.example:5000",
            ),
            (
                "10.244.255.1:5000",
                true,
                "10.244.255.1:5000",
                "http://10.244.255.1:5000",
            ),
            (
                "http://10.244.255.1:5000",
                false,
                "10.244.255.1:5000",
                "http://10.244.255.1:5000",
            ),
            (
                "HTTP://10.244.255.1:5000",
                false,
                "10.244.255.1:5000",
                "http://10.244.255.1:5000",
            ),
            (
                "127.0.0.1:5000",
                false,
                "127.0.0.1:5000",
                "http://127.0.0.1:5000",
            ),
            (
                "127.1.2.3:5000",
                false,
                "127.1.2.3:5000",
                "http://127.1.2.3:5000",
            ),
            (
                "localhost:5000",
                false,
                "localhost:5000",
                "http://localhost:5000",
            ),
            ("LocalHost", false, "LocalHost", "http://LocalHost"),
            ("[::1]:5000", false, "[::1]:5000", "http://[::1]:5000"),
            // Loopback over TLS when said so.
            (
                "https://127.0.0.1:5000",
                false,
                "127.0.0.1:5000",
                "https://127.0.0.1:5000",
            ),
            // Not loopback: a private address, a name that merely starts like one.
            (
                "10.0.0.1:5000",
                false,
                "10.0.0.1:5000",
                "https://10.0.0.1:5000",
            ),
            (
                "localhost.example",
                false,
                "localhost.example",
                "https://localhost.example",
            ),
            ("[::2]:5000", false, "[::2]:5000", "https://[::2]:5000"),
        ] {
            let plain = base.starts_with("http:");
            assert_eq!(
                ep(given, insecure)?,
                (authority.to_owned(), base.to_owned(), plain),
                "{given}"
            );
        }
        Ok(())
    }

    #[test]
    fn bad_registries_are_refused() {
        for (given, insecure, want) in [
            ("", false, "expected HOST[:PORT]"),
            ("https://", false, "expected HOST[:PORT]"),
            ("https:", false, "expected HOST[:PORT]"),
            ("ghcr.io:", false, "expected HOST[:PORT]"),
            ("ghcr.io//", false, "expected HOST[:PORT]"),
            ("ghcr.io/apiroutes", false, "expected HOST[:PORT]"),
            ("user:pw@ghcr.io", false, "expected HOST[:PORT]"),
            ("ftp://ghcr.io", false, "https:// or http://"),
            ("host:port", false, "the port must be a number"),
            ("host:0", false, "the port must be a number"),
            ("[::1]x", false, "the port must be a number"),
            ("https://ghcr.io", true, "contradict"),
        ] {
            let err = ep(given, insecure)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(want), "{given:?}: {err}");
        }
    }

    #[test]
    fn credentials_go_only_to_the_registry() -> Result<()> {
        let e = Endpoint::parse("https://r.example:5000", false)?;
        assert!(e.owns("https://r.example:5000/v2/x/blobs/uploads/1?_state=a"));
        assert!(e.owns("https://r.example:5000"));
        assert!(!e.owns("https://r.example:50001/v2/"));
        assert!(!e.owns("http://r.example:5000/v2/"));
        assert!(!e.owns("https://r.example:5000.evil.example/v2/"));
        assert!(!e.owns("https://storage.example/blob"));
        Ok(())
    }

    #[test]
    fn plain_remote_realms() -> Result<()> {
        let u = |s: &str| s.parse::<Uri>().map_err(|e| Error::Spec(e.to_string()));
        assert!(is_plain_remote(&u("http://auth.example/token")?));
        assert!(!is_plain_remote(&u("https://auth.example/token")?));
        assert!(!is_plain_remote(&u("http://127.0.0.1:5001/token")?));
        assert!(!is_plain_remote(&u("http://[::1]:5001/token")?));
        Ok(())
    }
}
