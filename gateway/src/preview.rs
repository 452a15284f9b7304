//! Preview Mode (DESIGN.md "Preview Mode" and "Next.js handlers"): the gateway alone signs
//! and verifies the preview cookies. Pure: no I/O, no clock, no randomness; the caller
//! passes the time ([`files`] holds the one impure part: reading and reloading the key
//! files). Everything returns plain `http` data for the server to send.
//!
//! # Two secrets
//!
//! - The **token** (`--preview-token-file`) only opens the enable endpoint
//!   (`GET {prefix}/enable?secret=TOKEN`). It ends up in URLs, browser histories and CMS
//!   settings, so it signs nothing: no key is derived from it, and a cookie minted with the
//!   token (or anything derived from it) does not verify. Without a token the enable
//!   endpoint answers 404 and only functions start Preview Mode (`res.setPreviewData`).
//! - The **signing keys** (`--preview-keys-file`), one per line: the first signs, every one
//!   verifies. Rotation without dropping a session: add the new key second (every gateway
//!   now verifies it), then move it first (gateways sign with it), then remove the old key
//!   once the longest cookie lifetime has passed. A key may not equal the token.
//!
//! The deprecated single secret (`--preview-secret-file` / `APIROUTES_PREVIEW_SECRET`) still
//! works through [`PreviewKeys::legacy`]: it is the token, and its one signing key is derived
//! from it by a public rule, so whoever sees an enable URL can sign. The gateway logs a
//! warning for it.
//!
//! # Namespaces
//!
//! Next.js has one app per preview scope; here a namespace is the app. Preview data a
//! function sets is signed together with the function's namespace, and a request carrying
//! that pair is a preview request (data passed on, preview backends chosen) only when it is
//! routed to a function of the same namespace. Toward any other namespace it is a normal
//! request: no `x-apiroute-preview`, and the two preview cookies are removed from its
//! `Cookie` header, so the other namespace's functions can neither read the (signed, not
//! encrypted) data nor replay the pair. The enable endpoint binds to `namespace=NS` when
//! given; without it the pair is valid in every namespace (the token holder is trusted for
//! all of them; prefer `namespace=` when the gateway serves more than one app).
//!
//! # What to call where (for the server code)
//!
//! ```text
//! startup    let (keys, _) = files::KeyFiles { token, signing_keys }.load()?;  // or PreviewKeys::new
//!            let endpoints = Endpoints::new(&args.preview_prefix)?;      // default DEFAULT_PREFIX
//! request    (after path normalization and the 308/400 answers, before route matching)
//!            if let Some(reply) = endpoints.handle(&keys, &method, path, query, now) {
//!                return reply;   // 307 + two Set-Cookie, or 400/401/404/405 with a JSON body
//!            }
//!            let state = from_request(&keys, req.headers(), now);
//!            // after matching the route, in namespace `ns`:
//!            let state = state.bind(ns, req.headers_mut());
//!            // route to the preview backends iff state.is_active() && route has spec.preview
//!            // after dropping the client's x-apiroute-* headers, toward the function:
//!            if let Some((name, v)) = header_for_function(&state) { headers.insert(name, v); }
//! response   let outcome = apply_function_headers(resp.headers_mut(), &keys, ns, now);
//!            // strips every x-apiroute-* header, adds the signed (or clearing) Set-Cookies;
//!            // log outcome when it is FunctionPreview::Malformed.
//! ```
//!
//! A broken pair (tampered, mismatched, incomplete, expired, signed by a key no longer
//! listed) is not cleared here: the function gets [`PREVIEW_INVALID_HEADER`] and the runtime
//! writes Next's clearing cookies where `next start` writes them, before the handler runs
//! (runtime/node/CONTRACT.md).
//!
//! `x-apiroute-preview` goes to every function of the pair's namespace while the cookie is
//! valid (Next's `req.preview` is true in every API route of the app); only routes with
//! `spec.preview` change their backends. Without configured keys, do not call any of this:
//! preview paths route like any other path, and preview headers from functions are still
//! stripped (`strip_apiroute_headers`).
//!
//! # Cookies
//!
//! Next's names and attributes (`Path=/; HttpOnly; Secure; SameSite=None`, `Max-Age` and
//! `Path` from the options, clearing = empty values with `Expires` at the epoch), our contents:
//!
//! ```text
//! __prerender_bypass  = <id>                                 id  = b64url(HMAC(k_id, scope "." exp "." data)[..16])
//! __next_preview_data = v2.<id>.<exp>.<scope>.<data>.<mac>   mac = b64url(HMAC(k_mac, "v2." id "." exp "." scope "." data))
//! ```
//!
//! `data` is the base64url JSON of the preview data (exactly what `x-apiroute-preview`
//! carries), `exp` the expiry in Unix seconds, `scope` the namespace or `*` (every
//! namespace). The MAC covers the id and the scope, so a bypass cookie from another pair
//! fails and a pair cannot be moved to another namespace; every comparison of secret-derived
//! bytes is constant time (`subtle`). The data is signed, not encrypted (Next encrypts it):
//! do not put secrets in preview data. `k_mac` and `k_id` come from each signing key by
//! HMAC-SHA256 with fixed labels, so one key gives independent keys. Version-1 cookies
//! (before the namespace binding) are malformed now: their sessions end once.

pub mod files;

use std::{
    sync::{Arc, Weak},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use arc_swap::ArcSwap;
use base64::{
    Engine as _, alphabet,
    engine::{
        DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::URL_SAFE_NO_PAD,
    },
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use ring::hmac;
use serde::Deserialize;
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;

/// Next's bypass cookie: here the id that binds it to the data cookie.
pub const BYPASS_COOKIE: &str = "__prerender_bypass";
/// Next's data cookie: here `v2.<id>.<exp>.<scope>.<data>.<mac>`.
pub const DATA_COOKIE: &str = "__next_preview_data";
/// Request header toward functions: base64url JSON of the preview data.
pub const PREVIEW_HEADER: &str = "x-apiroute-preview";
/// Response header from functions: base64url JSON `{"data": ..., "options": {"maxAge"?, "path"?}}`.
pub const PREVIEW_SET_HEADER: &str = "x-apiroute-preview-set";
/// Request header toward functions: `1` for a broken cookie pair, so the runtime clears
/// the cookies at Next's place in the response.
pub const PREVIEW_INVALID_HEADER: &str = "x-apiroute-preview-invalid";
/// Response header from functions: `1`, or base64url JSON `{"options": {"path": ...}}`.
pub const PREVIEW_CLEAR_HEADER: &str = "x-apiroute-preview-clear";
/// The contract headers' common prefix; none of them passes the gateway toward clients.
pub const APIROUTE_HEADER_PREFIX: &str = "x-apiroute-";
/// Default `--preview-prefix`.
pub const DEFAULT_PREFIX: &str = "/__apiroutes/preview";
/// Preview data JSON is capped at 2 KiB, as Next does ("Preview data is limited to 2KB").
pub const MAX_DATA_JSON_BYTES: usize = 2048;
/// Lifetime of a cookie set without `maxAge` (Next's then never expires; ours must).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Shortest accepted token or signing key: the token guards the enable endpoint against
/// guessing, a key the cookies against forging.
pub const MIN_SECRET_BYTES: usize = 16;
/// Most signing keys in one list (a data cookie is checked against each in turn).
pub const MAX_SIGNING_KEYS: usize = 8;

/// `Expires` of a clearing cookie: JavaScript's `new Date(0).toUTCString()`, as Next sends.
const EPOCH_HTTP_DATE: &str = "Thu, 01 Jan 1970 00:00:00 GMT";
const VERSION: &str = "v2";
/// The scope field of a pair valid in every namespace.
const ALL_NAMESPACES: &str = "*";
/// Upper bound on a data cookie we even look at (the largest we issue is about 2.9 KiB).
const MAX_COOKIE_VALUE: usize = 4096;
/// Longest `maxAge` honoured (ten years), so expiry arithmetic stays far from overflow.
const MAX_AGE_CAP_SECS: u64 = 10 * 365 * 24 * 60 * 60;
/// How many cookies of one name we try (a browser may send several with different paths).
const MAX_SAME_NAME: usize = 4;

/// Why preview configuration or a preview input is not usable. Messages never hold key
/// material (lengths and line numbers only).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    #[error(
        "preview secret is {len} bytes after trimming whitespace; use at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"
    )]
    SecretTooShort { len: usize },
    #[error(
        "preview token is {len} bytes after trimming whitespace; use at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"
    )]
    TokenTooShort { len: usize },
    #[error(
        "preview signing key on line {line} is {len} bytes after trimming whitespace; use at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"
    )]
    SigningKeyTooShort { line: usize, len: usize },
    #[error("no preview signing key: list one per line (lines starting with '#' are comments)")]
    NoSigningKeys,
    #[error(
        "{0} preview signing keys; at most {MAX_SIGNING_KEYS} (remove keys older than the longest cookie lifetime)"
    )]
    TooManySigningKeys(usize),
    #[error(
        "the preview token is also a signing key (line {0}); they must differ, or whoever knows the token could sign"
    )]
    TokenIsSigningKey(usize),
    #[error("namespace {0:?} is not a DNS label (lower-case letters, digits, '-'; at most 63)")]
    BadNamespace(String),
    #[error(
        "preview prefix {0:?} must start with '/', not end with '/', and hold no '?', '#' or spaces"
    )]
    BadPrefix(String),
    #[error("preview data is not valid JSON")]
    DataNotJson,
    #[error("preview data is limited to {MAX_DATA_JSON_BYTES} bytes of JSON (got {0})")]
    DataTooLarge(usize),
    #[error("preview options: {0}")]
    BadOptions(&'static str),
    #[error(
        "{PREVIEW_SET_HEADER} or {PREVIEW_CLEAR_HEADER} is not base64url JSON of the contract's shape"
    )]
    BadFunctionHeader,
}

/// Where a signed pair is valid: in one namespace (a function set it there, or the enable
/// endpoint was given `namespace=`) or in all of them (the enable endpoint without it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Namespace(String),
}

impl Scope {
    /// The scope of one namespace; refuses what is not a DNS label (Kubernetes namespace
    /// names are, so the cookie field needs no escaping).
    pub fn namespace(ns: &str) -> Result<Scope, PreviewError> {
        let b = ns.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-';
        if ok {
            Ok(Scope::Namespace(ns.to_owned()))
        } else {
            Err(PreviewError::BadNamespace(ns.to_owned()))
        }
    }

    /// Whether a request routed to a function of `namespace` may use a pair of this scope.
    pub fn admits(&self, namespace: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Namespace(ns) => ns == namespace,
        }
    }

    fn field(&self) -> &str {
        match self {
            Scope::All => ALL_NAMESPACES,
            Scope::Namespace(ns) => ns,
        }
    }

    fn from_field(field: &str) -> Option<Scope> {
        if field == ALL_NAMESPACES {
            Some(Scope::All)
        } else {
            Scope::namespace(field).ok()
        }
    }
}

/// The two keys one signing key gives.
struct SigningKey {
    mac: hmac::Key,
    id: hmac::Key,
}

impl SigningKey {
    fn from_secret(secret: &[u8]) -> SigningKey {
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        SigningKey {
            mac: derive(&root, b"apiroutes preview cookie-mac v2"),
            id: derive(&root, b"apiroutes preview cookie-id v2"),
        }
    }
}

fn derive(root: &hmac::Key, label: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(root, label).as_ref())
}

/// The enable token, kept only as a keyed tag: the endpoint compares tags, so the token's
/// length and content leak nothing through timing.
struct Token {
    key: hmac::Key,
    tag: hmac::Tag,
}

impl Token {
    fn new(token: &[u8]) -> Token {
        let key = derive(
            &hmac::Key::new(hmac::HMAC_SHA256, token),
            b"apiroutes preview enable-token v2",
        );
        let tag = hmac::sign(&key, token);
        Token { key, tag }
    }
}

/// One loaded configuration: the keys in order (the first signs) and the token.
struct KeySet {
    signing: Vec<SigningKey>,
    token: Option<Token>,
}

impl KeySet {
    fn new(token: Option<&[u8]>, signing_keys: &[u8]) -> Result<KeySet, PreviewError> {
        let token = match token.map(<[u8]>::trim_ascii) {
            Some(t) if t.len() < MIN_SECRET_BYTES => {
                return Err(PreviewError::TokenTooShort { len: t.len() });
            }
            other => other,
        };
        let mut signing = Vec::new();
        for (i, line) in signing_keys.split(|&b| b == b'\n').enumerate() {
            let key = line.trim_ascii();
            if key.is_empty() || key.starts_with(b"#") {
                continue;
            }
            if key.len() < MIN_SECRET_BYTES {
                return Err(PreviewError::SigningKeyTooShort {
                    line: i + 1,
                    len: key.len(),
                });
            }
            // Configuration time, not reachable by a client: no timing concern.
            if token == Some(key) {
                return Err(PreviewError::TokenIsSigningKey(i + 1));
            }
            signing.push(SigningKey::from_secret(key));
        }
        if signing.is_empty() {
            return Err(PreviewError::NoSigningKeys);
        }
        if signing.len() > MAX_SIGNING_KEYS {
            return Err(PreviewError::TooManySigningKeys(signing.len()));
        }
        Ok(KeySet {
            signing,
            token: token.map(Token::new),
        })
    }
}

/// The preview keys: the signing keys and the optional enable token. Cheap to clone (all
/// clones share one configuration, which [`PreviewKeys::replace`] swaps atomically for the
/// reload of changed files). `Debug` never shows key material.
#[derive(Clone)]
pub struct PreviewKeys {
    set: Arc<ArcSwap<KeySet>>,
    default_ttl: Duration,
}

/// A [`PreviewKeys`] that does not keep the keys alive: the file reloader holds one and
/// stops when the gateway is gone.
#[derive(Clone)]
pub struct WeakPreviewKeys(Weak<ArcSwap<KeySet>>);

impl WeakPreviewKeys {
    /// [`PreviewKeys::replace`] while the keys are still in use; `None` once they are not.
    pub fn replace(
        &self,
        token: Option<&[u8]>,
        signing_keys: &[u8],
    ) -> Option<Result<(), PreviewError>> {
        let set = self.0.upgrade()?;
        Some(KeySet::new(token, signing_keys).map(|new| set.store(Arc::new(new))))
    }

    /// (number of signing keys, whether a token is set) while the keys are in use.
    pub fn summary(&self) -> Option<(usize, bool)> {
        let set = self.0.upgrade()?;
        let set = set.load();
        Some((set.signing.len(), set.token.is_some()))
    }
}

impl std::fmt::Debug for PreviewKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewKeys")
            .field("signing_keys", &self.signing_keys())
            .field("has_token", &self.has_token())
            .field("default_ttl", &self.default_ttl)
            .finish_non_exhaustive()
    }
}

/// A signed cookie pair: the values of [`BYPASS_COOKIE`] and [`DATA_COOKIE`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPair {
    pub bypass: String,
    pub data: String,
    /// Unix seconds after which [`PreviewKeys::verify`] refuses the pair.
    pub expires_at: u64,
}

/// What a valid pair carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The preview data, base64url JSON (as [`PREVIEW_HEADER`] carries it).
    pub data_b64: String,
    /// Where the pair is valid.
    pub scope: Scope,
}

/// Why a cookie pair was refused. All of them mean: clear the cookies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("preview cookie is malformed")]
    Malformed,
    #[error("preview cookie signature does not verify with any listed key")]
    BadMac,
    #[error("preview cookies do not belong together")]
    Mismatch,
    #[error("preview cookie expired")]
    Expired,
    #[error("only one of the two preview cookies is present")]
    Incomplete,
}

/// A data cookie whose MAC verified with one of the keys (not yet checked: id, expiry).
struct Opened<'a> {
    id: &'a str,
    expires_at: u64,
    scope: Scope,
    data_b64: &'a str,
}

impl PreviewKeys {
    /// Keys from the signing-keys text (one key per line; surrounding ASCII whitespace,
    /// empty lines and lines starting with `#` are ignored; the first key signs) and the
    /// optional enable token (surrounding whitespace ignored, so files ending in a newline
    /// work). The token must not be one of the keys.
    pub fn new(token: Option<&[u8]>, signing_keys: &[u8]) -> Result<Self, PreviewError> {
        Ok(PreviewKeys {
            set: Arc::new(ArcSwap::from_pointee(KeySet::new(token, signing_keys)?)),
            default_ttl: DEFAULT_TTL,
        })
    }

    /// Deprecated single secret (`--preview-secret-file` / `APIROUTES_PREVIEW_SECRET`): the
    /// secret is the enable token, and the one signing key is derived from it by a public
    /// rule. Anyone who learns the token (it is in every enable URL) can therefore sign
    /// cookies; use [`PreviewKeys::new`] with a separate key.
    pub fn legacy(secret: &[u8]) -> Result<Self, PreviewError> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(PreviewError::SecretTooShort { len: secret.len() });
        }
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let key = hmac::sign(&root, b"apiroutes preview legacy signing key v2");
        let set = KeySet {
            signing: vec![SigningKey::from_secret(key.as_ref())],
            token: Some(Token::new(secret)),
        };
        Ok(PreviewKeys {
            set: Arc::new(ArcSwap::from_pointee(set)),
            default_ttl: DEFAULT_TTL,
        })
    }

    /// Swaps in a new configuration (as [`PreviewKeys::new`] reads it) for every clone; on
    /// an error the current one stays.
    pub fn replace(&self, token: Option<&[u8]>, signing_keys: &[u8]) -> Result<(), PreviewError> {
        self.set.store(Arc::new(KeySet::new(token, signing_keys)?));
        Ok(())
    }

    /// A handle for the file reloader that does not keep the keys alive.
    pub fn downgrade(&self) -> WeakPreviewKeys {
        WeakPreviewKeys(Arc::downgrade(&self.set))
    }

    /// How many signing keys are listed.
    pub fn signing_keys(&self) -> usize {
        self.set.load().signing.len()
    }

    /// Whether an enable token is configured (else the enable endpoint is off).
    pub fn has_token(&self) -> bool {
        self.set.load().token.is_some()
    }

    /// Lifetime of pairs signed without an explicit `maxAge` (default [`DEFAULT_TTL`]).
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Whether `given` is the enable token, in constant time (independent of where they
    /// differ and of the token's length). Always false without a token.
    pub fn check_token(&self, given: &[u8]) -> bool {
        let set = self.set.load();
        let Some(token) = &set.token else {
            return false;
        };
        let tag = hmac::sign(&token.key, given);
        ct_eq(tag.as_ref(), token.tag.as_ref())
    }

    /// Signs, with the first key, a pair valid in `scope` carrying `data_b64` (base64url
    /// JSON, as [`PREVIEW_HEADER`] carries it) that expires `max_age` after `now`, or
    /// [`PreviewKeys::with_default_ttl`] after it.
    pub fn sign(
        &self,
        scope: &Scope,
        data_b64: &str,
        now: SystemTime,
        max_age: Option<Duration>,
    ) -> SignedPair {
        let ttl = max_age
            .unwrap_or(self.default_ttl)
            .as_secs()
            .min(MAX_AGE_CAP_SECS);
        let expires_at = unix_secs(now).saturating_add(ttl);
        let set = self.set.load();
        // KeySet::new refuses an empty list.
        let key = &set.signing[0];
        let scope = scope.field();
        let id_tag = hmac::sign(
            &key.id,
            format!("{scope}.{expires_at}.{data_b64}").as_bytes(),
        );
        let id = URL_SAFE_NO_PAD.encode(&id_tag.as_ref()[..16]);
        let signed = format!("{VERSION}.{id}.{expires_at}.{scope}.{data_b64}");
        let mac = URL_SAFE_NO_PAD.encode(hmac::sign(&key.mac, signed.as_bytes()));
        SignedPair {
            bypass: id,
            data: format!("{signed}.{mac}"),
            expires_at,
        }
    }

    /// Verifies a pair: the MAC holds under one of the listed keys, the two cookies belong
    /// together and the expiry has not passed. Returns the data and the pair's scope.
    pub fn verify(&self, bypass: &str, data: &str, now: SystemTime) -> Result<Verified, Invalid> {
        if bypass.len() > 64 {
            return Err(Invalid::Malformed);
        }
        self.open(data)?.check(bypass, now)
    }

    /// Parses a data cookie and finds the key whose MAC it carries.
    fn open<'a>(&self, data: &'a str) -> Result<Opened<'a>, Invalid> {
        if data.len() > MAX_COOKIE_VALUE {
            return Err(Invalid::Malformed);
        }
        let (signed, mac_b64) = data.rsplit_once('.').ok_or(Invalid::Malformed)?;
        let mut parts = signed.split('.');
        let (Some(version), Some(id), Some(exp), Some(scope), Some(data_b64), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Invalid::Malformed);
        };
        if version != VERSION
            || !exp.bytes().all(|b| b.is_ascii_digit())
            || !is_b64url(data_b64)
            || !is_b64url(id)
        {
            return Err(Invalid::Malformed);
        }
        let scope = Scope::from_field(scope).ok_or(Invalid::Malformed)?;
        let expires_at: u64 = exp.parse().map_err(|_| Invalid::Malformed)?;
        let given_mac = URL_SAFE_NO_PAD
            .decode(mac_b64)
            .map_err(|_| Invalid::Malformed)?;
        let set = self.set.load();
        let verified = set.signing.iter().any(|key| {
            let want = hmac::sign(&key.mac, signed.as_bytes());
            ct_eq(&given_mac, want.as_ref())
        });
        if !verified {
            return Err(Invalid::BadMac);
        }
        Ok(Opened {
            id,
            expires_at,
            scope,
            data_b64,
        })
    }
}

impl Opened<'_> {
    fn check(&self, bypass: &str, now: SystemTime) -> Result<Verified, Invalid> {
        if !ct_eq(bypass.as_bytes(), self.id.as_bytes()) {
            return Err(Invalid::Mismatch);
        }
        if unix_secs(now) >= self.expires_at {
            return Err(Invalid::Expired);
        }
        Ok(Verified {
            data_b64: self.data_b64.to_owned(),
            scope: self.scope.clone(),
        })
    }
}

/// Constant-time equality of secret-derived bytes. Unequal lengths are unequal (lengths
/// here are public: tags and ids have fixed sizes).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    #[cfg(test)]
    tests::CT_CALLS.with(|c| c.set(c.get() + 1));
    bool::from(a.ct_eq(b))
}

/// What the request's cookies say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreviewState {
    /// No preview cookie at all (or, after [`PreviewState::bind`], a pair of another
    /// namespace).
    None,
    /// A valid pair: the preview data (base64url JSON) for [`PREVIEW_HEADER`], and where it
    /// is valid.
    Active { data_b64: String, scope: Scope },
    /// A tampered, mismatched, incomplete or expired pair: serve as not in preview and tell
    /// the function ([`PREVIEW_INVALID_HEADER`]), which clears the cookies.
    Invalid(Invalid),
}

impl PreviewState {
    pub fn is_active(&self) -> bool {
        matches!(self, PreviewState::Active { .. })
    }

    pub fn needs_clear(&self) -> bool {
        matches!(self, PreviewState::Invalid(_))
    }

    /// The state for a request routed to a function of `namespace`. A valid pair of another
    /// namespace makes it a normal request: [`PreviewState::None`], and the two preview
    /// cookies are removed from `headers` (the request's) so that function neither reads
    /// the data nor gets a pair it could replay. Anything else is unchanged.
    pub fn bind(self, namespace: &str, headers: &mut HeaderMap) -> PreviewState {
        match &self {
            PreviewState::Active { scope, .. } if !scope.admits(namespace) => {
                strip_preview_cookies(headers);
                PreviewState::None
            }
            _ => self,
        }
    }
}

/// Removes both preview cookies from every `Cookie` header, keeping the others in order;
/// a header left empty is dropped.
pub fn strip_preview_cookies(headers: &mut HeaderMap) {
    let is_preview = |pair: &[u8]| {
        let name = pair
            .split(|&b| b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        name == BYPASS_COOKIE.as_bytes() || name == DATA_COOKIE.as_bytes()
    };
    let any = headers
        .get_all(header::COOKIE)
        .iter()
        .any(|v| v.as_bytes().split(|&b| b == b';').any(is_preview));
    if !any {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| {
            let pairs: Vec<&[u8]> = v
                .as_bytes()
                .split(|&b| b == b';')
                .map(<[u8]>::trim_ascii)
                .filter(|p| !p.is_empty() && !is_preview(p))
                .collect();
            // Only bytes of a valid value and "; ": always a valid value again.
            HeaderValue::from_bytes(&pairs.join(&b"; "[..])).ok()
        })
        .filter(|v| !v.is_empty())
        .collect();
    headers.remove(header::COOKIE);
    for v in kept {
        headers.append(header::COOKIE, v);
    }
}

/// Reads the preview cookies from every `Cookie` header (HTTP/2 clients split them).
pub fn from_request(keys: &PreviewKeys, headers: &HeaderMap, now: SystemTime) -> PreviewState {
    let mut bypass: Vec<&str> = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            let list = match name.trim() {
                BYPASS_COOKIE => &mut bypass,
                DATA_COOKIE => &mut data,
                _ => continue,
            };
            if list.len() < MAX_SAME_NAME {
                list.push(value);
            }
        }
    }
    from_cookie_values(keys, &bypass, &data, now)
}

/// [`from_request`] on already extracted cookie values (tests, other front ends). The first
/// pair that verifies wins (browsers send the cookie with the longest `Path` first);
/// otherwise the first reason found. Each data cookie's MAC is checked once.
pub fn from_cookie_values(
    keys: &PreviewKeys,
    bypass: &[&str],
    data: &[&str],
    now: SystemTime,
) -> PreviewState {
    match (bypass.is_empty(), data.is_empty()) {
        (true, true) => return PreviewState::None,
        (true, false) | (false, true) => return PreviewState::Invalid(Invalid::Incomplete),
        (false, false) => {}
    }
    let mut first_err = None;
    for d in data {
        let opened = match keys.open(d) {
            Ok(o) => o,
            Err(e) => {
                first_err.get_or_insert(e);
                continue;
            }
        };
        for b in bypass {
            let checked = if b.len() > 64 {
                Err(Invalid::Malformed)
            } else {
                opened.check(b, now)
            };
            match checked {
                Ok(Verified { data_b64, scope }) => {
                    return PreviewState::Active { data_b64, scope };
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    PreviewState::Invalid(first_err.unwrap_or(Invalid::Malformed))
}

/// The preview header for the function: [`PREVIEW_HEADER`] with the data while the pair is
/// valid, [`PREVIEW_INVALID_HEADER`] `1` when it is broken, nothing without cookies.
pub fn header_for_function(state: &PreviewState) -> Option<(&'static str, HeaderValue)> {
    match state {
        PreviewState::Active { data_b64, .. } => HeaderValue::from_str(data_b64)
            .ok()
            .map(|v| (PREVIEW_HEADER, v)),
        PreviewState::Invalid(_) => Some((PREVIEW_INVALID_HEADER, HeaderValue::from_static("1"))),
        PreviewState::None => None,
    }
}

/// Cookie options a function (or the enable endpoint) may give, as Next honours them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CookieOptions {
    /// Seconds; also the signed expiry. `None`: a session cookie expiring after the default TTL.
    pub max_age: Option<u64>,
    /// Cookie `Path`; `None` is `/`.
    pub path: Option<String>,
}

impl CookieOptions {
    fn path(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }
}

/// The two `Set-Cookie` values that start Preview Mode in `scope` with `data_json` (any
/// JSON value, at most [`MAX_DATA_JSON_BYTES`]): Next's attributes, our signed contents.
pub fn set_cookies(
    keys: &PreviewKeys,
    scope: &Scope,
    data_json: &str,
    options: &CookieOptions,
    now: SystemTime,
) -> Result<[HeaderValue; 2], PreviewError> {
    let data_json = data_json.trim();
    serde_json::from_str::<&RawValue>(data_json).map_err(|_| PreviewError::DataNotJson)?;
    if data_json.len() > MAX_DATA_JSON_BYTES {
        return Err(PreviewError::DataTooLarge(data_json.len()));
    }
    check_cookie_path(options.path())?;
    let data_b64 = URL_SAFE_NO_PAD.encode(data_json);
    let pair = keys.sign(
        scope,
        &data_b64,
        now,
        options.max_age.map(Duration::from_secs),
    );
    let attrs = match options.max_age {
        Some(age) => format!(
            "; Max-Age={}; Path={}; HttpOnly; Secure; SameSite=None",
            age.min(MAX_AGE_CAP_SECS),
            options.path()
        ),
        None => format!("; Path={}; HttpOnly; Secure; SameSite=None", options.path()),
    };
    let bypass = format!("{BYPASS_COOKIE}={}{attrs}", pair.bypass);
    let data = format!("{DATA_COOKIE}={}{attrs}", pair.data);
    Ok([header_value(bypass)?, header_value(data)?])
}

/// The two `Set-Cookie` values that end Preview Mode (Next's: empty, expired at the epoch).
pub fn clear_cookies(path: &str) -> [HeaderValue; 2] {
    let path = if check_cookie_path(path).is_ok() {
        path
    } else {
        "/"
    };
    let one = |name: &str, fallback: &'static str| {
        let text = format!(
            "{name}=; Path={path}; Expires={EPOCH_HTTP_DATE}; HttpOnly; Secure; SameSite=None"
        );
        // `path` passed check_cookie_path, so this cannot fail; keep a safe answer anyway.
        HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(fallback))
    };
    [
        one(
            BYPASS_COOKIE,
            "__prerender_bypass=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=None",
        ),
        one(
            DATA_COOKIE,
            "__next_preview_data=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=None",
        ),
    ]
}

/// Appends [`clear_cookies`] to a response's headers.
pub fn append_clear_cookies(headers: &mut HeaderMap, path: &str) {
    for v in clear_cookies(path) {
        headers.append(header::SET_COOKIE, v);
    }
}

/// What a function's response asked of Preview Mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FunctionPreview {
    /// Neither header: nothing added.
    None,
    /// `x-apiroute-preview-set`: a signed pair was added.
    Set,
    /// `x-apiroute-preview-clear` (it wins over a set in the same response): clearing added.
    Cleared,
    /// A header was present but unusable: nothing added (log it; the function is at fault).
    Malformed(PreviewError),
}

/// Removes every `x-apiroute-*` header from a response (also when Preview Mode is off).
pub fn strip_apiroute_headers(headers: &mut HeaderMap) {
    let names: Vec<header::HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(APIROUTE_HEADER_PREFIX))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

/// Turns a function's preview headers into cookies and strips every `x-apiroute-*` header.
/// `namespace` is the function's: the pair it sets is valid there only.
pub fn apply_function_headers(
    headers: &mut HeaderMap,
    keys: &PreviewKeys,
    namespace: &str,
    now: SystemTime,
) -> FunctionPreview {
    let set = headers.get(PREVIEW_SET_HEADER).cloned();
    let clear = headers.get(PREVIEW_CLEAR_HEADER).cloned();
    strip_apiroute_headers(headers);
    let result = if let Some(clear) = clear {
        parse_clear_header(&clear).map(|path| {
            append_clear_cookies(headers, path.as_deref().unwrap_or("/"));
            FunctionPreview::Cleared
        })
    } else if let Some(set) = set {
        parse_set_header(&set)
            .and_then(|(data, options)| {
                let scope = Scope::namespace(namespace)?;
                set_cookies(keys, &scope, &data, &options, now)
            })
            .map(|cookies| {
                for c in cookies {
                    headers.append(header::SET_COOKIE, c);
                }
                FunctionPreview::Set
            })
    } else {
        Ok(FunctionPreview::None)
    };
    result.unwrap_or_else(FunctionPreview::Malformed)
}

#[derive(Deserialize)]
struct SetHeader<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(default)]
    options: OptionsJson,
}

#[derive(Deserialize)]
struct ClearHeader {
    #[serde(default)]
    options: OptionsJson,
}

#[derive(Default, Deserialize)]
struct OptionsJson {
    #[serde(rename = "maxAge")]
    max_age: Option<f64>,
    path: Option<String>,
}

/// Lenient base64url (padding optional), as Node's `Buffer` reads it.
const B64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn decode_function_json(value: &HeaderValue) -> Result<Vec<u8>, PreviewError> {
    // The runtime caps the set header at 2 KiB; allow some slack, refuse the absurd.
    if value.len() > 2 * MAX_COOKIE_VALUE {
        return Err(PreviewError::BadFunctionHeader);
    }
    B64_LENIENT
        .decode(value.as_bytes())
        .map_err(|_| PreviewError::BadFunctionHeader)
}

/// `x-apiroute-preview-set` → (data JSON text, options).
fn parse_set_header(value: &HeaderValue) -> Result<(String, CookieOptions), PreviewError> {
    let json = decode_function_json(value)?;
    let parsed: SetHeader<'_> =
        serde_json::from_slice(&json).map_err(|_| PreviewError::BadFunctionHeader)?;
    let max_age = match parsed.options.max_age {
        None => None,
        Some(a) if a.is_finite() && a >= 0.0 => Some(a.floor().min(MAX_AGE_CAP_SECS as f64) as u64),
        Some(_) => {
            return Err(PreviewError::BadOptions(
                "maxAge must be a number of seconds >= 0",
            ));
        }
    };
    Ok((
        parsed.data.get().to_owned(),
        CookieOptions {
            max_age,
            path: parsed.options.path,
        },
    ))
}

/// `x-apiroute-preview-clear` → the cookie path to clear (`1` means the default `/`).
fn parse_clear_header(value: &HeaderValue) -> Result<Option<String>, PreviewError> {
    if value.as_bytes() == b"1" {
        return Ok(None);
    }
    let json = decode_function_json(value)?;
    let parsed: ClearHeader =
        serde_json::from_slice(&json).map_err(|_| PreviewError::BadFunctionHeader)?;
    if let Some(p) = &parsed.options.path {
        check_cookie_path(p)?;
    }
    Ok(parsed.options.path)
}

fn check_cookie_path(path: &str) -> Result<(), PreviewError> {
    let ok = path.starts_with('/')
        && path.len() <= 1024
        && path
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b';' && b != b',');
    if ok {
        Ok(())
    } else {
        Err(PreviewError::BadOptions(
            "path must start with '/' and hold only visible ASCII without ';'",
        ))
    }
}

fn header_value(text: String) -> Result<HeaderValue, PreviewError> {
    HeaderValue::try_from(text)
        .map_err(|_| PreviewError::BadOptions("cookie is not a valid header value"))
}

fn is_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// The enable and disable endpoints.

/// The two endpoints under `--preview-prefix`.
#[derive(Clone, Debug)]
pub struct Endpoints {
    enable: String,
    disable: String,
}

/// A complete answer for the server to send: status, headers, body (JSON or empty).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    fn error(status: StatusCode, message: &str) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let body = serde_json::json!({ "error": message }).to_string();
        Reply {
            status,
            headers,
            body,
        }
    }

    fn redirect(location: HeaderValue, cookies: [HeaderValue; 2]) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(header::LOCATION, location);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for c in cookies {
            headers.append(header::SET_COOKIE, c);
        }
        Reply {
            status: StatusCode::TEMPORARY_REDIRECT,
            headers,
            body: String::new(),
        }
    }
}

impl Endpoints {
    /// `prefix` as given by `--preview-prefix` (e.g. [`DEFAULT_PREFIX`]).
    pub fn new(prefix: &str) -> Result<Self, PreviewError> {
        let ok = prefix.starts_with('/')
            && !prefix.ends_with('/')
            && !prefix.contains(['?', '#', ' ', '\\'])
            && !prefix.contains("//");
        if !ok {
            return Err(PreviewError::BadPrefix(prefix.to_owned()));
        }
        Ok(Endpoints {
            enable: format!("{prefix}/enable"),
            disable: format!("{prefix}/disable"),
        })
    }

    /// Whether `path` (normalized) is one of the two endpoints.
    pub fn is_endpoint(&self, path: &str) -> bool {
        path == self.enable || path == self.disable
    }

    /// Answers the endpoints; `None` for any other path (route it as usual). `path` is the
    /// normalized path, `query` the raw query without `?`.
    ///
    /// `GET {prefix}/enable?secret=TOKEN[&namespace=NS][&redirect=/path][&data=JSON]
    /// [&maxAge=SECONDS]` sets the cookies (valid in `NS` only, or in every namespace
    /// without it) and redirects (307) to `redirect` (default `/`); `GET {prefix}/disable
    /// [?redirect=/path]` clears them and redirects likewise. A wrong token is 401, enable
    /// without a configured token 404, a bad input 400, another method 405.
    pub fn handle(
        &self,
        keys: &PreviewKeys,
        method: &Method,
        path: &str,
        query: Option<&str>,
        now: SystemTime,
    ) -> Option<Reply> {
        let enable = path == self.enable;
        if !enable && path != self.disable {
            return None;
        }
        if method != Method::GET && method != Method::HEAD {
            let mut reply = Reply::error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
            reply
                .headers
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(reply);
        }
        Some(if enable {
            enable_reply(keys, query.unwrap_or(""), now)
        } else {
            disable_reply(query.unwrap_or(""))
        })
    }
}

fn enable_reply(keys: &PreviewKeys, query: &str, now: SystemTime) -> Reply {
    if !keys.has_token() {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "the preview enable endpoint is off: no token is configured",
        );
    }
    let q = match Query::parse(query) {
        Ok(q) => q,
        Err(msg) => return Reply::error(StatusCode::BAD_REQUEST, msg),
    };
    let Some(secret) = q.secret else {
        return Reply::error(StatusCode::UNAUTHORIZED, "invalid preview secret");
    };
    if !keys.check_token(secret.as_bytes()) {
        return Reply::error(StatusCode::UNAUTHORIZED, "invalid preview secret");
    }
    let location = match redirect_target(q.redirect.as_deref()) {
        Ok(l) => l,
        Err(msg) => return Reply::error(StatusCode::BAD_REQUEST, msg),
    };
    let max_age = match q.max_age.as_deref().map(str::parse::<u64>) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(_)) => {
            return Reply::error(StatusCode::BAD_REQUEST, "maxAge must be whole seconds");
        }
    };
    let scope = match q.namespace.as_deref().map(Scope::namespace) {
        None => Scope::All,
        Some(Ok(scope)) => scope,
        Some(Err(e)) => return Reply::error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let options = CookieOptions {
        max_age,
        path: None,
    };
    match set_cookies(
        keys,
        &scope,
        q.data.as_deref().unwrap_or("{}"),
        &options,
        now,
    ) {
        Ok(cookies) => Reply::redirect(location, cookies),
        Err(e) => Reply::error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

fn disable_reply(query: &str) -> Reply {
    let q = match Query::parse(query) {
        Ok(q) => q,
        Err(msg) => return Reply::error(StatusCode::BAD_REQUEST, msg),
    };
    match redirect_target(q.redirect.as_deref()) {
        Ok(location) => Reply::redirect(location, clear_cookies("/")),
        Err(msg) => Reply::error(StatusCode::BAD_REQUEST, msg),
    }
}

/// The endpoints' query parameters, form-decoded; a repeated key is refused.
#[derive(Default)]
struct Query {
    secret: Option<String>,
    redirect: Option<String>,
    data: Option<String>,
    max_age: Option<String>,
    namespace: Option<String>,
}

impl Query {
    fn parse(query: &str) -> Result<Query, &'static str> {
        let mut q = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "secret" => &mut q.secret,
                "redirect" => &mut q.redirect,
                "data" => &mut q.data,
                "maxAge" => &mut q.max_age,
                "namespace" => &mut q.namespace,
                _ => continue,
            };
            if slot.is_some() {
                return Err("a query parameter is repeated");
            }
            *slot = Some(
                apiroutes_crds::pattern::decode_form(v)
                    .map_err(|_| "malformed percent-encoding in query")?,
            );
        }
        Ok(q)
    }
}

/// Validates a redirect target (already query-decoded) and returns the `Location` value.
///
/// Same origin only: the target must be a path-absolute reference, which a browser resolves
/// against the current origin whatever follows. So it starts with exactly one `/`; `//x` is
/// a network-path reference (another host), and browsers read `\` as `/` and drop tabs and
/// newlines, so `/\x` and `/<TAB>/x` are `//x` to them: any `\` or control character is
/// refused. Absent means `/`. Non-ASCII and spaces are percent-encoded for the header.
pub fn redirect_target(target: Option<&str>) -> Result<HeaderValue, &'static str> {
    let Some(target) = target else {
        return Ok(HeaderValue::from_static("/"));
    };
    let bytes = target.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err("redirect must be a path on this site, starting with '/'");
    }
    if matches!(bytes.get(1), Some(b'/')) {
        return Err("redirect must not start with '//' (another site)");
    }
    if bytes.iter().any(|&b| b == b'\\' || b < 0x20 || b == 0x7f) {
        return Err("redirect must not contain '\\' or control characters");
    }
    let mut out = String::with_capacity(target.len());
    for &b in bytes {
        if b == b' ' || b >= 0x80 || b == b'"' || b == b'<' || b == b'>' {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    HeaderValue::try_from(out).map_err(|_| "redirect is not a valid header value")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// How often `ct_eq` ran on this thread: proves the checks go through it.
        pub(super) static CT_CALLS: Cell<u64> = const { Cell::new(0) };
    }

    const TOKEN: &[u8] = b"0123456789abcdef-test-token";
    const KEY: &[u8] = b"0123456789abcdef-signing-key-1";
    const NS: &str = "shop";

    fn keys() -> PreviewKeys {
        PreviewKeys::new(Some(TOKEN), KEY).unwrap()
    }

    fn shop() -> Scope {
        Scope::namespace(NS).unwrap()
    }

    fn verified(data_b64: &str) -> Verified {
        Verified {
            data_b64: data_b64.to_owned(),
            scope: shop(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const NOW: u64 = 1_800_000_000;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn ct_calls() -> u64 {
        CT_CALLS.with(Cell::get)
    }

    fn cookie_header(pair: &SignedPair) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!(
            "a=1; {BYPASS_COOKIE}={}; {DATA_COOKIE}={}; z=2",
            pair.bypass, pair.data
        );
        h.insert(header::COOKIE, HeaderValue::from_str(&v).unwrap());
        h
    }

    /// Replaces one `.`-separated field of a data cookie.
    fn with_field(data: &str, i: usize, value: &str) -> String {
        let mut parts: Vec<&str> = data.split('.').collect();
        parts[i] = value;
        parts.join(".")
    }

    #[test]
    fn secret_rules() {
        assert_eq!(
            PreviewKeys::new(Some(b"short"), KEY).unwrap_err(),
            PreviewError::TokenTooShort { len: 5 }
        );
        assert_eq!(
            PreviewKeys::new(None, b"  \n# comment\n\n").unwrap_err(),
            PreviewError::NoSigningKeys
        );
        assert_eq!(
            PreviewKeys::new(None, b"0123456789abcdef-key-1\nshort\n").unwrap_err(),
            PreviewError::SigningKeyTooShort { line: 2, len: 5 }
        );
        let nine: String = (0..9)
            .map(|i| format!("0123456789abcdef-key-{i}\n"))
            .collect();
        assert_eq!(
            PreviewKeys::new(None, nine.as_bytes()).unwrap_err(),
            PreviewError::TooManySigningKeys(9)
        );
        // Whitespace around the token and each key (files end in newlines, CRLF too).
        let k = PreviewKeys::new(
            Some(b"0123456789abcdef-test-token\n"),
            b"# current\r\n  0123456789abcdef-key-1 \r\n\n# previous\n0123456789abcdef-key-0\n",
        )
        .unwrap();
        assert_eq!(k.signing_keys(), 2);
        assert!(k.check_token(b"0123456789abcdef-test-token"));
        assert!(!k.check_token(b"0123456789abcdef-test-tokeN"));
        assert!(!k.check_token(b""));
        let debug = format!("{k:?}");
        assert!(
            !debug.contains("token-") && !debug.contains("key-"),
            "Debug must not show keys: {debug}"
        );
        // Without a token nothing opens the enable endpoint.
        let no_token = PreviewKeys::new(None, KEY).unwrap();
        assert!(!no_token.has_token() && !no_token.check_token(b""));
        // The deprecated single secret.
        assert_eq!(
            PreviewKeys::legacy(b"short").unwrap_err(),
            PreviewError::SecretTooShort { len: 5 }
        );
        let legacy = PreviewKeys::legacy(b"0123456789abcdef-test-secret\n").unwrap();
        assert!(legacy.check_token(b"0123456789abcdef-test-secret"));
        let pair = legacy.sign(&shop(), &b64("{}"), at(NOW), None);
        assert!(legacy.verify(&pair.bypass, &pair.data, at(NOW)).is_ok());
    }

    #[test]
    fn token_can_neither_sign_nor_verify() {
        let k = keys();
        let data = b64(r#"{"admin":true}"#);
        // Whoever saw an enable URL has the token. Signing with it as a key, or with the
        // keys the old scheme derived from it, gives pairs that do not verify.
        for forger in [
            PreviewKeys::new(None, TOKEN).unwrap(),
            PreviewKeys::legacy(TOKEN).unwrap(),
        ] {
            for scope in [Scope::All, shop()] {
                let forged = forger.sign(&scope, &data, at(NOW), None);
                assert_eq!(
                    k.verify(&forged.bypass, &forged.data, at(NOW)),
                    Err(Invalid::BadMac)
                );
                assert_eq!(
                    from_request(&k, &cookie_header(&forged), at(NOW)),
                    PreviewState::Invalid(Invalid::BadMac)
                );
            }
        }
        // The token is not a key and a key is not the token.
        assert_eq!(
            PreviewKeys::new(Some(KEY), KEY).unwrap_err(),
            PreviewError::TokenIsSigningKey(1)
        );
        let two = [b"0123456789abcdef-other-key\n".as_slice(), KEY].concat();
        assert_eq!(
            PreviewKeys::new(Some(KEY), &two).unwrap_err(),
            PreviewError::TokenIsSigningKey(2)
        );
        assert_eq!(
            k.replace(Some(KEY), KEY).unwrap_err(),
            PreviewError::TokenIsSigningKey(1)
        );
        assert!(!k.check_token(KEY));
        assert!(k.check_token(TOKEN), "a refused replace keeps the old keys");
        // And the signing key's own pairs verify.
        let pair = k.sign(&shop(), &data, at(NOW), None);
        assert_eq!(
            k.verify(&pair.bypass, &pair.data, at(NOW)),
            Ok(verified(&data))
        );
    }

    #[test]
    fn rotation_first_key_signs_every_listed_key_verifies() {
        const OLD: &[u8] = b"0123456789abcdef-old-key";
        const NEW: &[u8] = b"0123456789abcdef-new-key";
        let data = b64(r#"{"v":1}"#);
        let k = PreviewKeys::new(Some(TOKEN), OLD).unwrap();
        let clone = k.clone();
        let old_pair = k.sign(&shop(), &data, at(NOW), None);

        // Step 1: the new key second. Old pairs verify; the old key still signs.
        k.replace(Some(TOKEN), &[OLD, b"\n", NEW].concat()).unwrap();
        assert_eq!(clone.signing_keys(), 2, "every clone sees the swap");
        assert!(
            clone
                .verify(&old_pair.bypass, &old_pair.data, at(NOW))
                .is_ok()
        );
        let only_old = PreviewKeys::new(None, OLD).unwrap();
        let only_new = PreviewKeys::new(None, NEW).unwrap();
        let p = k.sign(&shop(), &data, at(NOW), None);
        assert!(only_old.verify(&p.bypass, &p.data, at(NOW)).is_ok());
        // A pair signed by a gateway that already has the new key first verifies here.
        let p = only_new.sign(&shop(), &data, at(NOW), None);
        assert!(k.verify(&p.bypass, &p.data, at(NOW)).is_ok());

        // Step 2: the new key first. It signs; old pairs still verify.
        k.replace(Some(TOKEN), &[NEW, b"\n", OLD].concat()).unwrap();
        let new_pair = k.sign(&shop(), &data, at(NOW), None);
        assert!(
            only_new
                .verify(&new_pair.bypass, &new_pair.data, at(NOW))
                .is_ok()
        );
        assert_eq!(
            only_old.verify(&new_pair.bypass, &new_pair.data, at(NOW)),
            Err(Invalid::BadMac)
        );
        assert!(k.verify(&old_pair.bypass, &old_pair.data, at(NOW)).is_ok());

        // Step 3: the old key removed. Its pairs are refused (and get cleared).
        k.replace(Some(TOKEN), NEW).unwrap();
        assert_eq!(
            k.verify(&old_pair.bypass, &old_pair.data, at(NOW)),
            Err(Invalid::BadMac)
        );
        assert_eq!(
            from_request(&k, &cookie_header(&old_pair), at(NOW)),
            PreviewState::Invalid(Invalid::BadMac)
        );
        assert!(k.verify(&new_pair.bypass, &new_pair.data, at(NOW)).is_ok());
        // A bad replacement keeps the working keys.
        assert!(k.replace(Some(TOKEN), b"").is_err());
        assert!(k.verify(&new_pair.bypass, &new_pair.data, at(NOW)).is_ok());
        // Dropping every clone ends the reloader's handle.
        let weak = k.downgrade();
        assert_eq!(weak.summary(), Some((1, true)));
        drop((k, clone));
        assert!(weak.replace(None, NEW).is_none());
    }

    #[test]
    fn namespace_binding() {
        let k = keys();
        let data = b64(r#"{"tenant":"shop"}"#);
        let pair = k.sign(&shop(), &data, at(NOW), None);
        let state = from_request(&k, &cookie_header(&pair), at(NOW));
        assert_eq!(
            state,
            PreviewState::Active {
                data_b64: data.clone(),
                scope: shop()
            }
        );
        // Same namespace: preview, cookies untouched.
        let mut h = cookie_header(&pair);
        let bound = state.clone().bind(NS, &mut h);
        assert!(bound.is_active());
        assert_eq!(h, cookie_header(&pair));
        assert_eq!(header_for_function(&bound).unwrap().0, PREVIEW_HEADER);
        // Another namespace: a normal request, and its function gets neither cookie.
        let mut h = cookie_header(&pair);
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("{DATA_COOKIE}={}", pair.data)).unwrap(),
        );
        h.append(header::COOKIE, HeaderValue::from_static("theme=dark"));
        let bound = state.clone().bind("blog", &mut h);
        assert_eq!(bound, PreviewState::None);
        assert_eq!(header_for_function(&bound), None);
        let cookies: Vec<&str> = h
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies, ["a=1; z=2", "theme=dark"]);
        // The scope is signed: moving a pair to another namespace breaks the MAC.
        let moved = with_field(&pair.data, 3, "blog");
        assert_eq!(
            k.verify(&pair.bypass, &moved, at(NOW)),
            Err(Invalid::BadMac)
        );
        let everywhere = with_field(&pair.data, 3, "*");
        assert_eq!(
            k.verify(&pair.bypass, &everywhere, at(NOW)),
            Err(Invalid::BadMac)
        );
        assert_eq!(
            k.verify(&pair.bypass, &with_field(&pair.data, 3, "Bad_NS"), at(NOW)),
            Err(Invalid::Malformed)
        );
        // A pair for every namespace (the enable endpoint without namespace=).
        let all = k.sign(&Scope::All, &data, at(NOW), None);
        let state = from_request(&k, &cookie_header(&all), at(NOW));
        let mut h = cookie_header(&all);
        assert!(state.clone().bind("blog", &mut h).is_active());
        assert!(state.bind(NS, &mut h).is_active());
        assert_eq!(h, cookie_header(&all));
        // Broken pairs stay broken everywhere (the function clears them).
        let mut h = cookie_header(&pair);
        let broken = PreviewState::Invalid(Invalid::Expired).bind("blog", &mut h);
        assert!(broken.needs_clear());
        assert_eq!(h, cookie_header(&pair));

        // A function's set: bound to its namespace.
        let mut h = function_response(PREVIEW_SET_HEADER, r#"{"data":{"x":1}}"#);
        assert_eq!(
            apply_function_headers(&mut h, &k, "blog", at(NOW)),
            FunctionPreview::Set
        );
        let data_cookie = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|c| c.starts_with(DATA_COOKIE))
            .unwrap()
            .to_owned();
        assert!(data_cookie.contains(".blog."), "{data_cookie}");
        // A namespace that is no DNS label cannot be signed into a cookie.
        let mut h = function_response(PREVIEW_SET_HEADER, r#"{"data":{}}"#);
        assert_eq!(
            apply_function_headers(&mut h, &k, "a.b", at(NOW)),
            FunctionPreview::Malformed(PreviewError::BadNamespace("a.b".into()))
        );
        assert!(h.get(header::SET_COOKIE).is_none());
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(Scope::namespace(bad).is_err(), "{bad:?}");
        }
        assert!(Scope::namespace(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn strip_preview_cookies_keeps_the_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("__prerender_bypass=x;__next_preview_data=y"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1;  __next_preview_data = y ; b=2;;"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        strip_preview_cookies(&mut h);
        let cookies: Vec<&[u8]> = h
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(cookies, [b"a=1; b=2".as_slice(), b"c=3"]);
        // Without preview cookies nothing is rewritten.
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1;b=2"));
        strip_preview_cookies(&mut h);
        assert_eq!(h.get(header::COOKIE).unwrap(), "a=1;b=2");
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let data = b64(r#"{"draft":true,"slug":"héllo"}"#);
        let pair = k.sign(&shop(), &data, at(NOW), Some(Duration::from_secs(60)));
        assert_eq!(pair.expires_at, NOW + 60);
        assert_eq!(
            k.verify(&pair.bypass, &pair.data, at(NOW)),
            Ok(verified(&data))
        );
        assert_eq!(
            k.verify(&pair.bypass, &pair.data, at(NOW + 59)),
            Ok(verified(&data))
        );
        let state = from_request(&k, &cookie_header(&pair), at(NOW + 1));
        assert_eq!(
            state,
            PreviewState::Active {
                data_b64: data.clone(),
                scope: shop()
            }
        );
        assert!(state.is_active() && !state.needs_clear());
        assert_eq!(
            header_for_function(&state).unwrap(),
            (PREVIEW_HEADER, HeaderValue::from_str(&data).unwrap())
        );
    }

    #[test]
    fn default_ttl_applies_without_max_age() {
        let k = keys().with_default_ttl(Duration::from_secs(100));
        let pair = k.sign(&shop(), &b64("{}"), at(NOW), None);
        assert_eq!(pair.expires_at, NOW + 100);
        assert!(k.verify(&pair.bypass, &pair.data, at(NOW + 99)).is_ok());
        assert_eq!(
            k.verify(&pair.bypass, &pair.data, at(NOW + 100)),
            Err(Invalid::Expired)
        );
    }

    #[test]
    fn expired() {
        let k = keys();
        let pair = k.sign(&shop(), &b64("{}"), at(NOW), Some(Duration::from_secs(10)));
        assert_eq!(
            k.verify(&pair.bypass, &pair.data, at(NOW + 10)),
            Err(Invalid::Expired)
        );
        assert_eq!(
            from_request(&k, &cookie_header(&pair), at(NOW + 11)),
            PreviewState::Invalid(Invalid::Expired)
        );
        // Zero maxAge: expired at once, as a Max-Age=0 cookie is.
        let zero = k.sign(&shop(), &b64("{}"), at(NOW), Some(Duration::ZERO));
        assert_eq!(
            k.verify(&zero.bypass, &zero.data, at(NOW)),
            Err(Invalid::Expired)
        );
    }

    #[test]
    fn tampering_is_refused() {
        let k = keys();
        let data = b64(r#"{"user":"a"}"#);
        let pair = k.sign(&shop(), &data, at(NOW), Some(Duration::from_secs(60)));
        let verify = |bypass: &str, d: &str| k.verify(bypass, d, at(NOW));
        // The data, the expiry (later, to extend the session), the id, the MAC.
        let other_data = with_field(&pair.data, 4, &b64(r#"{"user":"b"}"#));
        assert_eq!(verify(&pair.bypass, &other_data), Err(Invalid::BadMac));
        let later = with_field(&pair.data, 2, &(NOW + 1_000_000).to_string());
        assert_eq!(verify(&pair.bypass, &later), Err(Invalid::BadMac));
        let other_id = with_field(&pair.data, 1, "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(
            verify("AAAAAAAAAAAAAAAAAAAAAA", &other_id),
            Err(Invalid::BadMac)
        );
        let mut mac = URL_SAFE_NO_PAD
            .decode(pair.data.rsplit('.').next().unwrap())
            .unwrap();
        mac[0] ^= 1;
        let bad_mac = with_field(&pair.data, 5, &URL_SAFE_NO_PAD.encode(&mac));
        assert_eq!(verify(&pair.bypass, &bad_mac), Err(Invalid::BadMac));
        let short_mac = with_field(&pair.data, 5, "AAAA");
        assert_eq!(verify(&pair.bypass, &short_mac), Err(Invalid::BadMac));
        // Another key's pair.
        let other_keys = PreviewKeys::new(None, b"another-secret-of-16+").unwrap();
        let foreign = other_keys.sign(&shop(), &data, at(NOW), Some(Duration::from_secs(60)));
        assert_eq!(verify(&foreign.bypass, &foreign.data), Err(Invalid::BadMac));
        // Shapes.
        for bad in [
            "",
            "v2",
            "v2.a.b.c",
            // Version 1 (no scope field) is gone.
            "v1.a.1.e30.mac",
            "v2.a.1.e30.mac",
            "v3.a.1.shop.e30.mac",
            "v2.a.1x.shop.e30.mac",
            "v2.a.1.shop.e3+0.mac",
            "v2.a.1.Shop.e30.mac",
            "v2.a.1..e30.mac",
            "v2.a.b.1.shop.e30.mac",
        ] {
            assert_eq!(
                verify(&pair.bypass, bad),
                Err(Invalid::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(&pair.bypass, &"A".repeat(5000)),
            Err(Invalid::Malformed)
        );
    }

    #[test]
    fn swapped_pair_is_a_mismatch() {
        let k = keys();
        let a = k.sign(
            &shop(),
            &b64(r#"{"a":1}"#),
            at(NOW),
            Some(Duration::from_secs(60)),
        );
        let b = k.sign(
            &shop(),
            &b64(r#"{"b":1}"#),
            at(NOW),
            Some(Duration::from_secs(60)),
        );
        assert_ne!(a.bypass, b.bypass);
        assert_eq!(
            k.verify(&b.bypass, &a.data, at(NOW)),
            Err(Invalid::Mismatch)
        );
        assert_eq!(k.verify("", &a.data, at(NOW)), Err(Invalid::Mismatch));
        let mixed = SignedPair {
            bypass: b.bypass.clone(),
            ..a.clone()
        };
        let state = from_request(&k, &cookie_header(&mixed), at(NOW));
        assert_eq!(state, PreviewState::Invalid(Invalid::Mismatch));
        assert!(state.needs_clear());
        assert_eq!(
            header_for_function(&state),
            Some((PREVIEW_INVALID_HEADER, HeaderValue::from_static("1")))
        );
    }

    #[test]
    fn cookie_header_forms() {
        let k = keys();
        let pair = k.sign(&shop(), &b64("{}"), at(NOW), None);
        assert_eq!(
            from_request(&k, &HeaderMap::new(), at(NOW)),
            PreviewState::None
        );
        let mut only_one = HeaderMap::new();
        only_one.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{BYPASS_COOKIE}={}", pair.bypass)).unwrap(),
        );
        assert_eq!(
            from_request(&k, &only_one, at(NOW)),
            PreviewState::Invalid(Invalid::Incomplete)
        );
        // HTTP/2 splits cookies over several headers; a stale pair beside a good one.
        let mut split = HeaderMap::new();
        split.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("{DATA_COOKIE}=v1.x.1.e30.AAAA")).unwrap(),
        );
        split.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("{BYPASS_COOKIE}={}", pair.bypass)).unwrap(),
        );
        split.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("{DATA_COOKIE}={}", pair.data)).unwrap(),
        );
        assert!(from_request(&k, &split, at(NOW)).is_active());
    }

    #[test]
    fn constant_time_compare_is_used() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        let k = keys();
        let pair = k.sign(&shop(), &b64("{}"), at(NOW), None);
        let before = ct_calls();
        assert!(k.verify(&pair.bypass, &pair.data, at(NOW)).is_ok());
        assert_eq!(ct_calls() - before, 2, "MAC and id are compared with ct_eq");
        let before = ct_calls();
        assert!(!k.check_token(b"guess"));
        assert_eq!(
            ct_calls() - before,
            1,
            "the enable token is compared with ct_eq"
        );
        // With two keys, a pair of the second (older) key: one MAC compare per key tried.
        let rotated = PreviewKeys::new(
            Some(TOKEN),
            &[b"0123456789abcdef-newer-key\n".as_slice(), KEY].concat(),
        )
        .unwrap();
        let before = ct_calls();
        assert!(rotated.verify(&pair.bypass, &pair.data, at(NOW)).is_ok());
        assert_eq!(
            ct_calls() - before,
            3,
            "each key's MAC and the id via ct_eq"
        );
        let before = ct_calls();
        let forged = with_field(&pair.data, 5, "AAAA");
        assert_eq!(
            rotated.verify(&pair.bypass, &forged, at(NOW)),
            Err(Invalid::BadMac)
        );
        assert_eq!(
            ct_calls() - before,
            2,
            "a bad MAC is compared with every key"
        );
    }

    #[test]
    fn set_cookie_strings_are_nexts() {
        let k = keys();
        let with_age = CookieOptions {
            max_age: Some(3600),
            path: None,
        };
        let [bypass, data] = set_cookies(&k, &shop(), r#"{"a":1}"#, &with_age, at(NOW)).unwrap();
        let pair = k.sign(
            &shop(),
            &b64(r#"{"a":1}"#),
            at(NOW),
            Some(Duration::from_secs(3600)),
        );
        assert_eq!(
            bypass,
            format!(
                "__prerender_bypass={}; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=None",
                pair.bypass
            )
            .as_str()
        );
        assert_eq!(
            data,
            format!(
                "__next_preview_data={}; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=None",
                pair.data
            )
            .as_str()
        );
        let session = CookieOptions {
            max_age: None,
            path: Some("/docs".into()),
        };
        let [bypass, _] = set_cookies(&k, &shop(), "{}", &session, at(NOW)).unwrap();
        let text = bypass.to_str().unwrap();
        assert!(text.starts_with("__prerender_bypass="), "{text}");
        assert!(
            text.ends_with("; Path=/docs; HttpOnly; Secure; SameSite=None"),
            "{text}"
        );
        let [a, b] = clear_cookies("/");
        assert_eq!(
            a,
            "__prerender_bypass=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=None"
        );
        assert_eq!(
            b,
            "__next_preview_data=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=None"
        );
        let [a, _] = clear_cookies("/x; Domain=evil");
        assert!(
            a.to_str().unwrap().contains("; Path=/; "),
            "bad path falls back to /"
        );
    }

    #[test]
    fn data_limits() {
        let k = keys();
        let o = CookieOptions::default();
        assert_eq!(
            set_cookies(&k, &shop(), "{nope", &o, at(NOW)).unwrap_err(),
            PreviewError::DataNotJson
        );
        let big = format!("\"{}\"", "x".repeat(MAX_DATA_JSON_BYTES));
        assert!(matches!(
            set_cookies(&k, &shop(), &big, &o, at(NOW)),
            Err(PreviewError::DataTooLarge(_))
        ));
        let just = format!("\"{}\"", "x".repeat(MAX_DATA_JSON_BYTES - 2));
        let [_, data] = set_cookies(&k, &shop(), &just, &o, at(NOW)).unwrap();
        assert!(
            data.len() < 4000,
            "largest cookie fits browsers' 4 KiB: {}",
            data.len()
        );
    }

    fn function_response(name: &str, json: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert("x-apiroute-other", HeaderValue::from_static("leak"));
        h.insert("x-apiroute-params", HeaderValue::from_static("{}"));
        h.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&b64(json)).unwrap(),
        );
        h
    }

    fn no_apiroute_headers(h: &HeaderMap) -> bool {
        h.keys().all(|n| !n.as_str().starts_with("x-apiroute-"))
    }

    #[test]
    fn function_set_becomes_signed_cookies() {
        let k = keys();
        let mut h = function_response(
            PREVIEW_SET_HEADER,
            r#"{"data":{"draft":"yes"},"options":{"maxAge":120.7,"path":"/"}}"#,
        );
        assert_eq!(
            apply_function_headers(&mut h, &k, NS, at(NOW)),
            FunctionPreview::Set
        );
        assert!(no_apiroute_headers(&h));
        assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "application/json");
        let cookies: Vec<&str> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies.len(), 2);
        assert!(
            cookies[0].contains("; Max-Age=120; Path=/; HttpOnly"),
            "{}",
            cookies[0]
        );
        // The browser sends them back: the function then sees the same data.
        let value = |c: &str| {
            c.split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_owned()
        };
        let state = from_cookie_values(
            &k,
            &[&value(cookies[0])],
            &[&value(cookies[1])],
            at(NOW + 5),
        );
        assert_eq!(
            header_for_function(&state).unwrap().1,
            b64(r#"{"draft":"yes"}"#).as_str()
        );
        assert_eq!(
            from_cookie_values(
                &k,
                &[&value(cookies[0])],
                &[&value(cookies[1])],
                at(NOW + 120)
            ),
            PreviewState::Invalid(Invalid::Expired)
        );
    }

    #[test]
    fn function_clear_and_malformed() {
        let k = keys();
        let mut h = HeaderMap::new();
        h.insert(PREVIEW_CLEAR_HEADER, HeaderValue::from_static("1"));
        h.insert(
            PREVIEW_SET_HEADER,
            HeaderValue::from_str(&b64(r#"{"data":{}}"#)).unwrap(),
        );
        assert_eq!(
            apply_function_headers(&mut h, &k, NS, at(NOW)),
            FunctionPreview::Cleared
        );
        assert!(no_apiroute_headers(&h));
        let cookies: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies.len(), 2, "clear wins over set");
        assert!(cookies.iter().all(|c| {
            c.to_str()
                .unwrap()
                .contains("=; Path=/; Expires=Thu, 01 Jan 1970")
        }));

        let mut h = function_response(PREVIEW_CLEAR_HEADER, r#"{"options":{"path":"/docs"}}"#);
        assert_eq!(
            apply_function_headers(&mut h, &k, NS, at(NOW)),
            FunctionPreview::Cleared
        );
        assert!(
            h.get(header::SET_COOKIE)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("; Path=/docs; ")
        );

        for (name, json) in [
            (PREVIEW_SET_HEADER, "not json"),
            (PREVIEW_SET_HEADER, r#"{"options":{}}"#),
            (PREVIEW_SET_HEADER, r#"{"data":{},"options":{"maxAge":-1}}"#),
            (
                PREVIEW_SET_HEADER,
                r#"{"data":{},"options":{"path":"/a;b"}}"#,
            ),
            (PREVIEW_CLEAR_HEADER, r#"{"options":{"path":"nope"}}"#),
        ] {
            let mut h = function_response(name, json);
            assert!(
                matches!(
                    apply_function_headers(&mut h, &k, NS, at(NOW)),
                    FunctionPreview::Malformed(_)
                ),
                "{json}"
            );
            assert!(
                no_apiroute_headers(&h) && h.get(header::SET_COOKIE).is_none(),
                "{json}"
            );
        }
        let mut h = function_response("x-apiroute-name", "{}");
        assert_eq!(
            apply_function_headers(&mut h, &k, NS, at(NOW)),
            FunctionPreview::None
        );
        assert!(no_apiroute_headers(&h) && h.get(header::SET_COOKIE).is_none());
    }

    #[test]
    fn redirect_targets() {
        let good = [
            (None, "/"),
            (Some("/"), "/"),
            (Some("/posts/1"), "/posts/1"),
            (Some("/a?b=c&d=/e#frag"), "/a?b=c&d=/e#frag"),
            (Some("/%2F%2Fevil.com"), "/%2F%2Fevil.com"),
            (Some("/a//b"), "/a//b"),
            (Some("/..//evil.com"), "/..//evil.com"),
            (Some("/héllo wörld"), "/h%C3%A9llo%20w%C3%B6rld"),
        ];
        for (target, want) in good {
            assert_eq!(redirect_target(target).unwrap(), want, "{target:?}");
        }
        let bad = [
            "",
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "http://x",
            "https://evil.com/",
            "javascript:alert(1)",
            "evil.com",
            "%2F%2Fevil",
            "/\t/evil.com",
            "/\n/evil.com",
            "/a\\b",
            " /x",
        ];
        for target in bad {
            assert!(
                redirect_target(Some(target)).is_err(),
                "{target:?} must be refused"
            );
        }
    }

    fn endpoints() -> Endpoints {
        Endpoints::new(DEFAULT_PREFIX).unwrap()
    }

    fn get(path: &str, query: Option<&str>) -> Option<Reply> {
        endpoints().handle(&keys(), &Method::GET, path, query, at(NOW))
    }

    #[test]
    fn enable_endpoint() {
        let secret = std::str::from_utf8(TOKEN).unwrap();
        let q = format!(
            "secret={secret}&redirect=%2Fposts%2F1%3Fx%3D1&data=%7B%22draft%22%3Atrue%7D&maxAge=60"
        );
        let r = get("/__apiroutes/preview/enable", Some(&q)).unwrap();
        assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(r.headers.get(header::LOCATION).unwrap(), "/posts/1?x=1");
        assert_eq!(r.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
        let cookies: Vec<&str> = r
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies.len(), 2);
        let value = |c: &str| {
            c.split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_owned()
        };
        let state = from_cookie_values(
            &keys(),
            &[&value(cookies[0])],
            &[&value(cookies[1])],
            at(NOW),
        );
        assert_eq!(
            state,
            PreviewState::Active {
                data_b64: b64(r#"{"draft":true}"#),
                scope: Scope::All
            }
        );
        assert!(cookies[0].contains("Max-Age=60"));

        // Defaults: redirect to /, data {}.
        let r = get(
            "/__apiroutes/preview/enable",
            Some(&format!("secret={secret}")),
        )
        .unwrap();
        assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(r.headers.get(header::LOCATION).unwrap(), "/");

        let status = |q: &str| get("/__apiroutes/preview/enable", Some(q)).unwrap().status;
        assert_eq!(status(""), StatusCode::UNAUTHORIZED);
        assert_eq!(
            status("secret=wrong-but-long-enough-x"),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&format!("secret={secret}&redirect=%2F%2Fevil.com")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&format!("secret={secret}&redirect=//evil.com")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&format!("secret={secret}&redirect=%2F%5Cevil.com")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&format!("secret={secret}&redirect=http://x")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&format!("secret={secret}&redirect=")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&format!("secret={secret}&redirect=%zz")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&format!("secret={secret}&data=%7Bnope")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&format!("secret={secret}&maxAge=-1")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&format!("secret={secret}&secret=x")),
            StatusCode::BAD_REQUEST
        );
        // namespace=: the pair is valid there only.
        let r = get(
            "/__apiroutes/preview/enable",
            Some(&format!("secret={secret}&namespace={NS}")),
        )
        .unwrap();
        assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
        let cookies: Vec<String> = r
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| value(v.to_str().unwrap()))
            .collect();
        let state = from_cookie_values(&keys(), &[&cookies[0]], &[&cookies[1]], at(NOW));
        assert_eq!(
            state,
            PreviewState::Active {
                data_b64: b64("{}"),
                scope: shop()
            }
        );
        assert_eq!(
            status(&format!("secret={secret}&namespace=Not_A_Label")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&format!("secret={secret}&namespace=")),
            StatusCode::BAD_REQUEST
        );
        // The signing key is not the token.
        let key = std::str::from_utf8(KEY).unwrap();
        assert_eq!(status(&format!("secret={key}")), StatusCode::UNAUTHORIZED);
        // Without a token the endpoint is off.
        let no_token = PreviewKeys::new(None, KEY).unwrap();
        let r = endpoints()
            .handle(
                &no_token,
                &Method::GET,
                "/__apiroutes/preview/enable",
                Some(&format!("secret={secret}")),
                at(NOW),
            )
            .unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(r.headers.get(header::SET_COOKIE).is_none());

        let r = get("/__apiroutes/preview/enable", Some("secret=nope")).unwrap();
        assert!(r.headers.get(header::SET_COOKIE).is_none());
        assert_eq!(
            r.headers.get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        assert!(serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["error"].is_string());
    }

    #[test]
    fn disable_endpoint_and_routing() {
        let r = get("/__apiroutes/preview/disable", Some("redirect=/docs")).unwrap();
        assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(r.headers.get(header::LOCATION).unwrap(), "/docs");
        assert_eq!(r.headers.get_all(header::SET_COOKIE).iter().count(), 2);
        let r = get("/__apiroutes/preview/disable", None).unwrap();
        assert_eq!(r.headers.get(header::LOCATION).unwrap(), "/");
        assert_eq!(
            get("/__apiroutes/preview/disable", Some("redirect=//evil.com"))
                .unwrap()
                .status,
            StatusCode::BAD_REQUEST
        );

        assert!(get("/api/hello", None).is_none());
        assert!(get("/__apiroutes/preview", None).is_none());
        assert!(get("/__apiroutes/preview/enable/x", None).is_none());
        assert!(endpoints().is_endpoint("/__apiroutes/preview/enable"));
        let post = endpoints()
            .handle(
                &keys(),
                &Method::POST,
                "/__apiroutes/preview/enable",
                None,
                at(NOW),
            )
            .unwrap();
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers.get(header::ALLOW).unwrap(), "GET, HEAD");

        for bad in ["", "x", "/x/", "/a//b", "/a?b"] {
            assert!(Endpoints::new(bad).is_err(), "{bad:?}");
        }
        assert!(Endpoints::new("/preview").is_ok());
    }
}
