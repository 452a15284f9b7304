//! Pushing a layout to a registry over the distribution API.
//!
//! HTTPS by default, trusting the platform's root certificates and optionally a private CA
//! ([`PushOptions::ca_file`]); plain HTTP for `http://HOST:PORT`, with
//! [`PushOptions::insecure`], or for a registry on loopback (as docker does). The local
//! node's registry is plain HTTP at a private address: it is pushed to with `http://` or
//! the insecure option.
//!
//! Credentials come from the Docker config file (`docker login`'s), or from the credential
//! helper it names for the registry (`docker-credential-<name> get`). They are read only when
//! the registry answers 401, then sent as its `WWW-Authenticate` challenge asks: `Basic`,
//! or `Bearer` with a token from the challenge's realm for `repository:<repo>:pull,push`.
//! Nothing secret is ever printed or put in an error.
//!
//! The image keeps its repository and tag and changes registry: `ghcr.io/apiroutes/echo:1`
//! pushed to `10.244.255.1:5000` is `10.244.255.1:5000/apiroutes/echo:1`, which a node that
//! mirrors every registry to that address pulls as `ghcr.io/apiroutes/echo:1`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri, header};

use crate::{
    Error, Result,
    auth::{self, Challenge},
    docker_config::{self, Credentials, Found, Source},
    layout::{self, MANIFEST_TYPE},
    transport::{self, Endpoint, Trust},
};

/// How to reach the registry and where its credentials are.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Plain HTTP to a registry given without a scheme, wherever it is (the local node's
    /// registry at `10.244.255.1:5000`). Contradicts an explicit `https://`.
    pub insecure: bool,
    /// A PEM file of CA certificates trusted for HTTPS besides the platform's: a private
    /// registry's CA (`--ca-file`, `APIROUTES_REGISTRY_CA` on the command line).
    pub ca_file: Option<PathBuf>,
    /// The Docker config file with the credentials; `None`: `$DOCKER_CONFIG/config.json`,
    /// else `~/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Pushed {
    /// Where it is now, as an image reference: `REGISTRY/repository:tag`, the registry as
    /// `host[:port]` without a scheme.
    pub target: String,
    pub digest: String,
    /// Blobs the registry already had.
    pub skipped: usize,
    pub uploaded: usize,
    /// Whether it went over plain HTTP (else HTTPS).
    pub plain_http: bool,
}

/// Pushes the layout in `dir` to `registry`: `host[:port]`, `https://host[:port]` or
/// `http://host[:port]` (see the module's documentation for which scheme is used).
pub async fn push(dir: &Path, registry: &str, options: &PushOptions) -> Result<Pushed> {
    let endpoint = Endpoint::parse(registry, options.insecure)?;
    let layout = layout::read(dir)?;
    let trust = transport::client(options.ca_file.as_deref())?;
    let mut p = Pusher {
        config_path: options
            .docker_config
            .clone()
            .or_else(docker_config::path_from_env),
        repo: layout.reference.repository.clone(),
        endpoint,
        trust,
        found: None,
        authorization: None,
    };
    let (mut skipped, mut uploaded) = (0, 0);
    for (digest, path) in &layout.blobs {
        if p.has_blob(digest).await? {
            skipped += 1;
            continue;
        }
        let bytes = tokio::fs::read(path).await.map_err(Error::io(path))?;
        p.upload(digest, bytes.into()).await?;
        uploaded += 1;
    }
    let tag = &layout.reference.tag;
    let call = Call {
        method: Method::PUT,
        url: format!("{}/v2/{}/manifests/{tag}", p.endpoint.base, p.repo),
        content_type: Some(MANIFEST_TYPE),
        body: Bytes::from(layout.manifest),
    };
    p.send("put the manifest", call, &[StatusCode::CREATED])
        .await?;
    Ok(Pushed {
        target: format!("{}/{}:{tag}", p.endpoint.authority, p.repo),
        digest: layout.manifest_digest,
        skipped,
        uploaded,
        plain_http: p.endpoint.plain_http,
    })
}

struct Pusher {
    endpoint: Endpoint,
    trust: Trust,
    repo: String,
    /// The Docker config file (`None`: neither DOCKER_CONFIG nor HOME is set).
    config_path: Option<PathBuf>,
    /// What the config file has for this registry; read on the first 401.
    found: Option<Found>,
    /// The `Authorization` value for the registry, once a challenge asked for one.
    authorization: Option<String>,
}

/// One request, kept whole so that it can be sent again after a 401.
struct Call {
    method: Method,
    url: String,
    content_type: Option<&'static str>,
    body: Bytes,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    challenges: Vec<String>,
    body: Bytes,
}

impl Answer {
    /// The status and the start of the body, for an error.
    fn summary(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(500)]);
        format!("{}: {}", self.status, body.trim())
    }
}

impl Pusher {
    fn err(&self, step: &str, reason: impl Into<String>) -> Error {
        Error::Registry {
            registry: self.endpoint.authority.clone(),
            step: step.to_owned(),
            reason: reason.into(),
        }
    }

    async fn has_blob(&mut self, digest: &str) -> Result<bool> {
        let call = Call {
            method: Method::HEAD,
            url: format!("{}/v2/{}/blobs/{digest}", self.endpoint.base, self.repo),
            content_type: None,
            body: Bytes::new(),
        };
        let a = self
            .send(
                "check a blob",
                call,
                &[StatusCode::OK, StatusCode::NOT_FOUND],
            )
            .await?;
        Ok(a.status == StatusCode::OK)
    }

    /// A monolithic upload: POST for a session, PUT the bytes with their digest.
    async fn upload(&mut self, digest: &str, bytes: Bytes) -> Result<()> {
        let call = Call {
            method: Method::POST,
            url: format!("{}/v2/{}/blobs/uploads/", self.endpoint.base, self.repo),
            content_type: None,
            body: Bytes::new(),
        };
        let a = self
            .send("start an upload", call, &[StatusCode::ACCEPTED])
            .await?;
        let location = a
            .location
            .ok_or_else(|| self.err("start an upload", "202 without a Location"))?;
        // Location may be absolute or a path, and may already carry a query.
        let base = if location.starts_with('/') {
            format!("{}{location}", self.endpoint.base)
        } else {
            location
        };
        let sep = if base.contains('?') { '&' } else { '?' };
        let call = Call {
            method: Method::PUT,
            url: format!("{base}{sep}digest={digest}"),
            content_type: Some("application/octet-stream"),
            body: bytes,
        };
        self.send("upload a blob", call, &[StatusCode::CREATED])
            .await?;
        Ok(())
    }

    /// Sends `call`; on a 401 from the registry, authenticates as the challenge asks and
    /// sends it once more (a token that expired mid-push is renewed the same way).
    async fn send(&mut self, step: &str, call: Call, want: &[StatusCode]) -> Result<Answer> {
        let ours = self.endpoint.owns(&call.url);
        let mut retried = false;
        loop {
            let authorization = self.authorization.clone().filter(|_| ours);
            let a = self.exchange(step, &call, authorization.as_deref()).await?;
            if a.status == StatusCode::UNAUTHORIZED && ours {
                if retried {
                    return Err(self.err(step, self.refused()));
                }
                self.authenticate(step, &a).await?;
                retried = true;
                continue;
            }
            if !want.contains(&a.status) {
                let mut reason = a.summary();
                if a.status == StatusCode::BAD_REQUEST && self.endpoint.plain_http {
                    reason.push_str(
                        " (plain HTTP; if the registry serves HTTPS, give it as https://HOST:PORT)",
                    );
                }
                return Err(self.err(step, reason));
            }
            return Ok(a);
        }
    }

    async fn exchange(
        &self,
        step: &str,
        call: &Call,
        authorization: Option<&str>,
    ) -> Result<Answer> {
        let mut req = Request::builder()
            .method(call.method.clone())
            .uri(&call.url);
        if let Some(t) = call.content_type {
            req = req.header(header::CONTENT_TYPE, t);
        }
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let req = req
            .body(Full::new(call.body.clone()))
            .map_err(|e| self.err(step, format!("{}: {e}", call.url)))?;
        let wait = Duration::from_secs(120);
        let res = tokio::time::timeout(wait, self.trust.client.request(req))
            .await
            .map_err(|_| self.err(step, "no answer within 120 s"))?
            .map_err(|e| self.err(step, self.trust.describe(&e)))?;
        let status = res.status();
        let text = |v: &header::HeaderValue| v.to_str().ok().map(str::to_owned);
        let location = res.headers().get(header::LOCATION).and_then(text);
        let challenges = res
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(text)
            .collect();
        let body = tokio::time::timeout(wait, res.into_body().collect())
            .await
            .map_err(|_| self.err(step, "the answer's body did not end within 120 s"))?
            .map_err(|e| self.err(step, self.trust.describe(&e)))?
            .to_bytes();
        Ok(Answer {
            status,
            location,
            challenges,
            body,
        })
    }

    /// The registry's credentials from the Docker config file, or from the credential
    /// helper it names for the registry; read (and the helper asked) once.
    async fn credentials(&mut self) -> Result<Option<Credentials>> {
        if self.found.is_none() {
            self.found = Some(match &self.config_path {
                Some(path) => docker_config::lookup(path, &self.endpoint.authority)?,
                None => Found::NoFile,
            });
        }
        if let Some(Found::Helper(helper, field)) = &self.found {
            let (helper, field) = (helper.clone(), *field);
            let server = docker_config::helper_server(&self.endpoint.authority);
            let asked = docker_config::ask_helper(
                &helper,
                field,
                &server,
                None,
                docker_config::HELPER_TIMEOUT,
            )
            .await
            .map_err(|reason| Error::CredentialHelper {
                registry: self.endpoint.authority.clone(),
                named: self.named_by(field),
                helper: helper.clone(),
                reason,
            })?;
            self.found = Some(match asked {
                Some(c) => Found::Credentials(c),
                None => Found::HelperHasNone(helper, field),
            });
        }
        Ok(match &self.found {
            Some(Found::Credentials(c)) => Some(c.clone()),
            _ => None,
        })
    }

    /// `` `credsStore` in FILE ``: the entry that named a helper.
    fn named_by(&self, field: &str) -> String {
        let file = self
            .config_path
            .as_ref()
            .map_or_else(|| "?".to_owned(), |p| p.display().to_string());
        format!("`{field}` in {file}")
    }

    /// Sets `authorization` for the challenge of a 401.
    async fn authenticate(&mut self, step: &str, answer: &Answer) -> Result<()> {
        let challenges: Vec<Challenge> = answer
            .challenges
            .iter()
            .flat_map(|h| auth::parse_challenges(h))
            .collect();
        let creds = self.credentials().await?;
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self.token(step, bearer, creds.as_ref()).await?;
            self.authorization = Some(format!("Bearer {token}"));
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let Some((user, password)) = creds.as_ref().and_then(|c| c.basic.as_ref()) else {
                let reason = format!("401 Unauthorized: {}", self.needs_credentials());
                return Err(self.err(step, reason));
            };
            self.authorization = Some(auth::basic(user, password));
            return Ok(());
        }
        let offered = if answer.challenges.is_empty() {
            "none".to_owned()
        } else {
            answer.challenges.join(", ")
        };
        Err(self.err(
            step,
            format!(
                "401 Unauthorized without a Basic or Bearer challenge (WWW-Authenticate: {offered})"
            ),
        ))
    }

    /// A Bearer token from the challenge's realm for everything the push does.
    async fn token(
        &self,
        step: &str,
        challenge: &Challenge,
        creds: Option<&Credentials>,
    ) -> Result<String> {
        let realm = challenge
            .param("realm")
            .ok_or_else(|| self.err(step, "401 with a Bearer challenge without a realm"))?;
        let bad_realm = || self.err(step, format!("the token realm `{realm}` is not a URL"));
        let uri: Uri = realm.parse().map_err(|_| bad_realm())?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(bad_realm());
        }
        if creds.is_some() && transport::is_plain_remote(&uri) && !self.endpoint.plain_http {
            return Err(self.err(
                step,
                format!(
                    "the token server {realm} is plain HTTP: credentials for an HTTPS \
                     registry are not sent there"
                ),
            ));
        }
        let service = challenge.param("service");
        let scope = auth::push_scope(&self.repo);
        let call = match creds.and_then(|c| c.identity_token.as_deref()) {
            // An OAuth2 refresh token (`docker login` against an identity provider).
            Some(refresh) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh),
                    ("client_id", "apiroutes"),
                    ("scope", scope.as_str()),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                Call {
                    method: Method::POST,
                    url: realm.to_owned(),
                    content_type: Some("application/x-www-form-urlencoded"),
                    body: Bytes::from(auth::form(&form)),
                }
            }
            None => Call {
                method: Method::GET,
                url: auth::token_url(realm, service, &scope),
                content_type: None,
                body: Bytes::new(),
            },
        };
        let basic = creds
            .filter(|c| c.identity_token.is_none())
            .and_then(|c| c.basic.as_ref())
            .map(|(u, p)| auth::basic(u, p));
        let step = format!("{step}: get a token from {realm}");
        let a = self.exchange(&step, &call, basic.as_deref()).await?;
        match a.status {
            StatusCode::OK => auth::token_from(&a.body).map_err(|e| self.err(&step, e)),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(self.err(
                &step,
                match creds {
                    Some(c) => format!(
                        "{}: the token server refused {} ({})",
                        a.status,
                        c.who(),
                        self.source_of(c)
                    ),
                    None => format!("{}: {}", a.status, self.needs_credentials()),
                },
            )),
            _ => Err(self.err(&step, a.summary())),
        }
    }

    /// Where credentials came from: `auths.KEY in FILE`, or the helper and its entry.
    fn source_of(&self, c: &Credentials) -> String {
        match &c.source {
            Source::Auths(key) => {
                let file = self
                    .config_path
                    .as_ref()
                    .map_or_else(|| "?".to_owned(), |p| p.display().to_string());
                format!("`auths.{key}` in {file}")
            }
            Source::Helper(helper, field) => format!(
                "from credential helper `docker-credential-{helper}`, {}",
                self.named_by(field)
            ),
        }
    }

    /// The reason of a 401 after authenticating.
    fn refused(&self) -> String {
        match &self.found {
            Some(Found::Credentials(c)) => {
                let bearer = self
                    .authorization
                    .as_deref()
                    .is_some_and(|a| a.starts_with("Bearer "));
                format!(
                    "401 Unauthorized: the registry refused the credentials of {} ({}){}",
                    c.who(),
                    self.source_of(c),
                    if bearer {
                        format!(
                            ", or their token does not allow {}",
                            auth::push_scope(&self.repo)
                        )
                    } else {
                        String::new()
                    }
                )
            }
            _ => format!("401 Unauthorized: {}", self.needs_credentials()),
        }
    }

    /// Why there are no usable credentials, naming the file looked at.
    fn needs_credentials(&self) -> String {
        let registry = &self.endpoint.authority;
        let Some(path) = &self.config_path else {
            return "the registry needs credentials, and there is no Docker config file to \
                    read them from (neither DOCKER_CONFIG nor HOME is set)"
                .to_owned();
        };
        let path = path.display();
        match &self.found {
            Some(Found::NoFile) | None => format!(
                "the registry needs credentials, and the Docker config file {path} does not \
                 exist (`docker login {registry}` writes it; DOCKER_CONFIG names its directory)"
            ),
            Some(Found::Helper(helper, field) | Found::HelperHasNone(helper, field)) => format!(
                "the registry needs credentials, and the credential helper \
                 `docker-credential-{helper}` ({}) has none for {registry} \
                 (`docker login {registry}` stores them there)",
                self.named_by(field)
            ),
            Some(Found::Credentials(c)) => format!(
                "the registry asks for a user and password, and {} has only an identity token",
                self.source_of(c)
            ),
            Some(Found::Nothing) => format!(
                "the registry needs credentials, and {path} has none for {registry} (an \
                 `auths` entry with `auth`, or `username` and `password`)"
            ),
        }
    }
}
