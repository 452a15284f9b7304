//! Pushing to a real registry that wants credentials or TLS: the distribution registry (see
//! `common/mod.rs`) with htpasswd auth (a bcrypt entry made here), with a certificate from a
//! private CA from the test kit, and with token auth, its tokens issued by a small real
//! token server in this file (JWTs signed with a key the registry is told to trust).
//! Credentials come from a Docker config file written by each test.

mod common;

use std::{
    collections::BTreeMap,
    convert::Infallible,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use apiroutes_image::{PushOptions, push};
use base64::Engine;
use bytes::Bytes;
use common::{Registry, Setup, TestResult, failure, get, image, registry};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;

const USER: &str = "ann";
const PASSWORD: &str = "s3cret-pw";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A Docker config directory holding `config` as its `config.json`; the file's path.
fn docker_config(dir: &Path, name: &str, config: &str) -> TestResult<PathBuf> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join("config.json"), config)?;
    Ok(d.join("config.json"))
}

fn with_config(path: &Path) -> PushOptions {
    PushOptions {
        docker_config: Some(path.to_owned()),
        ..PushOptions::default()
    }
}

fn no_secret(err: &str) {
    for secret in [PASSWORD, "wrong-pw", &b64(&format!("{USER}:{PASSWORD}"))] {
        assert!(!err.contains(secret), "a secret in: {err}");
    }
}

/// A registry with htpasswd auth: `ann` / `s3cret-pw` (bcrypt, cost 4: the registry checks
/// it on every request).
fn htpasswd_registry(dir: &Path) -> TestResult<Option<Registry>> {
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("{USER}:{}\n", bcrypt::hash(PASSWORD, 4)?),
    )?;
    let setup = Setup {
        auth: Some(format!(
            "{{htpasswd: {{realm: apiroutes-test, path: \"{}\"}}}}",
            htpasswd.display()
        )),
        ..Setup::default()
    };
    registry(dir, &setup)
}

#[tokio::test]
async fn htpasswd_push_takes_credentials_from_the_docker_config() -> TestResult {
    let dir = tempfile::tempdir()?;
    let Some(reg) = htpasswd_registry(dir.path())? else {
        return Ok(());
    };
    let (layout, built) = image(dir.path())?;
    let addr = &reg.addr;

    // No config file: a 401 that names the registry and the file looked at.
    let missing = dir.path().join("nowhere/config.json");
    let err = failure(push(&layout, addr, &with_config(&missing)).await);
    assert!(
        err.starts_with(&format!(
            "registry {addr}: check a blob: 401 Unauthorized: the registry needs credentials, \
             and the Docker config file {} does not exist",
            missing.display()
        )),
        "{err}"
    );

    // A file with credentials for another registry only.
    let other = docker_config(
        dir.path(),
        "other",
        &format!(
            r#"{{"auths": {{"127.0.0.1:1": {{"auth": "{}"}}}}}}"#,
            b64("ann:x")
        ),
    )?;
    let err = failure(push(&layout, addr, &with_config(&other)).await);
    assert!(
        err.contains(&format!("{} has none for {addr}", other.display())),
        "{err}"
    );

    // Only a credential helper for it, which is not installed: said so, naming the entry.
    // (cli/tests/credential_helper.rs pushes with a real helper.)
    let helper = docker_config(
        dir.path(),
        "helper",
        &format!(
            r#"{{"auths": {{"{addr}": {{}}}}, "credsStore": "apiroutes-test-not-installed"}}"#
        ),
    )?;
    let err = failure(push(&layout, addr, &with_config(&helper)).await);
    assert!(
        err.starts_with(&format!(
            "registry {addr}: credential helper `docker-credential-apiroutes-test-not-installed` \
             (`credsStore` in {}) is not installed",
            helper.display()
        )),
        "{err}"
    );

    // A wrong password: refused, the user named, no secret shown.
    let wrong = docker_config(
        dir.path(),
        "wrong",
        &format!(r#"{{"auths": {{"{addr}": {{"username": "{USER}", "password": "wrong-pw"}}}}}}"#),
    )?;
    let err = failure(push(&layout, addr, &with_config(&wrong)).await);
    assert!(
        err.contains(&format!(
            "401 Unauthorized: the registry refused the credentials of user `{USER}` (`auths.{addr}` in {})",
            wrong.display()
        )),
        "{err}"
    );
    no_secret(&err);

    // The right ones, as `docker login` writes them.
    let good = docker_config(
        dir.path(),
        "good",
        &format!(
            r#"{{"auths": {{"{addr}": {{"auth": "{}"}}}}}}"#,
            b64(&format!("{USER}:{PASSWORD}"))
        ),
    )?;
    let pushed = push(&layout, addr, &with_config(&good)).await?;
    assert_eq!((pushed.uploaded, pushed.skipped), (3, 0));
    assert_eq!(pushed.digest, built.digest);
    assert_eq!(pushed.target, format!("{addr}/apiroutes/push-test:0.1.0"));
    let auth = format!(
        "Authorization: Basic {}",
        b64(&format!("{USER}:{PASSWORD}"))
    );
    let answer = get(
        addr,
        "/v2/apiroutes/push-test/manifests/0.1.0",
        &["Accept: application/vnd.oci.image.manifest.v1+json", &auth],
    )?;
    assert!(answer.contains(" 200 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("docker-content-digest: {}", built.digest)),
        "{answer}"
    );

    // The key in docker's URL form, the credentials as username/password fields.
    let url_key = docker_config(
        dir.path(),
        "url-key",
        &format!(
            r#"{{"auths": {{"https://{addr}/v1/": {{"username": "{USER}", "password": "{PASSWORD}"}}}}}}"#
        ),
    )?;
    let again = push(&layout, addr, &with_config(&url_key)).await?;
    assert_eq!((again.uploaded, again.skipped), (0, 3));

    // Where the file is looked for without `docker_config` ($DOCKER_CONFIG, else ~/.docker)
    // is the pure `docker_config::default_path`, unit-tested; this process's environment
    // is not changed by tests.
    Ok(())
}

#[tokio::test]
async fn tls_push_trusts_a_private_ca_when_given_and_refuses_otherwise() -> TestResult {
    let dir = tempfile::tempdir()?;
    let apiroutes_testkit::tls::PrivateCa { ca, cert, key } =
        apiroutes_testkit::tls::private_ca(dir.path()).map_err(|e| e.to_string())?;
    let setup = Setup {
        tls: Some((cert, key)),
        ..Setup::default()
    };
    let Some(reg) = registry(dir.path(), &setup)? else {
        return Ok(());
    };
    let (layout, built) = image(dir.path())?;
    let https = format!("https://{}", reg.addr);

    // The platform's roots do not know the CA: a certificate error that says what to do.
    let err = failure(push(&layout, &https, &PushOptions::default()).await);
    assert!(
        err.starts_with(&format!("registry {}: check a blob: ", reg.addr)),
        "{err}"
    );
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer")
            && err.contains("TLS certificate is not trusted")
            && err.contains("--ca-file"),
        "{err}"
    );

    // With the CA trusted: pushed over HTTPS.
    let trusted = PushOptions {
        ca_file: Some(ca.clone()),
        ..PushOptions::default()
    };
    let pushed = push(&layout, &https, &trusted).await?;
    assert_eq!((pushed.uploaded, pushed.skipped), (3, 0));
    assert_eq!(pushed.digest, built.digest);
    assert!(!pushed.plain_http);
    assert_eq!(
        pushed.target,
        format!("{}/apiroutes/push-test:0.1.0", reg.addr)
    );

    // The certificate names localhost too; plain HTTP to a TLS port is the registry's 400.
    let port = reg
        .addr
        .rsplit_once(':')
        .map(|(_, p)| p)
        .unwrap_or_default();
    let again = push(&layout, &format!("https://localhost:{port}"), &trusted).await?;
    assert_eq!((again.uploaded, again.skipped), (0, 3));
    let err = failure(push(&layout, &reg.addr, &trusted).await);
    assert!(
        err.contains("400 Bad Request") && err.contains("give it as https://"),
        "{err}"
    );
    Ok(())
}

/// The token server's key and what it has issued.
struct TokenServer {
    /// The signing key (PKCS#8) and its self-signed certificate (DER).
    key: Vec<u8>,
    cert: Vec<u8>,
    /// `(method, service, scope, who)` of every token request.
    asked: Mutex<Vec<(String, String, String, String)>>,
}

const SERVICE: &str = "apiroutes-test-registry";
const ISSUER: &str = "apiroutes-test-issuer";
const REFRESH_TOKEN: &str = "refresh-me-please";

impl TokenServer {
    /// A JWT (ES256, the certificate in `x5c`) granting `scope` to `sub`.
    fn jwt(&self, sub: &str, scope: &str) -> Result<String, String> {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let url = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let (kind_name, actions) = scope.rsplit_once(':').ok_or("scope")?;
        let (kind, name) = kind_name.split_once(':').ok_or("scope")?;
        let header = serde_json::json!({
            "typ": "JWT", "alg": "ES256",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&self.cert)],
        });
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": sub, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{sub}"),
            "access": [{"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}],
        });
        let input = format!(
            "{}.{}",
            url(header.to_string().as_bytes()),
            url(claims.to_string().as_bytes())
        );
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.key, &rng)
            .map_err(|e| e.to_string())?;
        let sig = key
            .sign(&rng, input.as_bytes())
            .map_err(|e| e.to_string())?;
        Ok(format!("{input}.{}", url(sig.as_ref())))
    }

    /// `GET ?service&scope` with Basic credentials → `{"token"}`; `POST` of a refresh-token
    /// form → `{"access_token"}`; else 401.
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = req.method().to_string();
        let basic = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let query = req.uri().query().unwrap_or_default().to_owned();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let form = |s: &str| -> BTreeMap<String, String> {
            s.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (decode(k), decode(v)))
                .collect()
        };
        let (params, who, field) = if method == "POST" {
            let f = form(&String::from_utf8_lossy(&body));
            let ok = f.get("grant_type").map(String::as_str) == Some("refresh_token")
                && f.get("refresh_token").map(String::as_str) == Some(REFRESH_TOKEN);
            (f, ok.then_some("refresh-token"), "access_token")
        } else {
            let want = format!("Basic {}", b64(&format!("{USER}:{PASSWORD}")));
            let ok = basic.as_deref() == Some(want.as_str());
            (form(&query), ok.then_some(USER), "token")
        };
        let get = |k: &str| params.get(k).cloned().unwrap_or_default();
        if let Ok(mut asked) = self.asked.lock() {
            asked.push((
                method,
                get("service"),
                get("scope"),
                who.unwrap_or("nobody").to_owned(),
            ));
        }
        let reply = |status, body: String| {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            r
        };
        match who.map(|w| self.jwt(w, &get("scope"))) {
            Some(Ok(token)) => reply(
                StatusCode::OK,
                serde_json::json!({ field: token, "expires_in": 300 }).to_string(),
            ),
            Some(Err(e)) => reply(StatusCode::INTERNAL_SERVER_ERROR, e),
            None => reply(StatusCode::UNAUTHORIZED, r#"{"details":"no"}"#.to_owned()),
        }
    }
}

/// Form/query decoding: `%XX` and `+`.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (c, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves `server` on 127.0.0.1; its `http://127.0.0.1:PORT/token` realm.
async fn serve_tokens(server: Arc<TokenServer>) -> TestResult<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let realm = format!("http://{}/token", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let server = server.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(realm)
}

#[tokio::test]
async fn token_auth_push_gets_a_bearer_token_from_the_realm() -> TestResult {
    let dir = tempfile::tempdir()?;
    let signing = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["apiroutes-test-tokens".to_owned()])?
        .self_signed(&signing)?;
    std::fs::write(dir.path().join("token-ca.pem"), cert.pem())?;
    let server = Arc::new(TokenServer {
        key: signing.serialize_der(),
        cert: cert.der().to_vec(),
        asked: Mutex::new(Vec::new()),
    });
    let realm = serve_tokens(server.clone()).await?;
    let setup = Setup {
        auth: Some(format!(
            "{{token: {{realm: \"{realm}\", service: {SERVICE}, issuer: {ISSUER}, \
             rootcertbundle: \"{}\"}}}}",
            dir.path().join("token-ca.pem").display()
        )),
        ..Setup::default()
    };
    let Some(reg) = registry(dir.path(), &setup)? else {
        return Ok(());
    };
    let (layout, built) = image(dir.path())?;
    let addr = &reg.addr;
    let scope = "repository:apiroutes/push-test:pull,push";

    // Anonymous: the token server refuses; the error names the realm and the config file.
    let missing = dir.path().join("nowhere/config.json");
    let err = failure(push(&layout, addr, &with_config(&missing)).await);
    assert!(
        err.starts_with(&format!(
            "registry {addr}: check a blob: get a token from {realm}: 401 Unauthorized: \
             the registry needs credentials, and the Docker config file {} does not exist",
            missing.display()
        )),
        "{err}"
    );

    // A wrong password: the token server refuses the user.
    let wrong = docker_config(
        dir.path(),
        "wrong",
        &format!(
            r#"{{"auths": {{"{addr}": {{"auth": "{}"}}}}}}"#,
            b64(&format!("{USER}:wrong-pw"))
        ),
    )?;
    let err = failure(push(&layout, addr, &with_config(&wrong)).await);
    assert!(
        err.contains(&format!("the token server refused user `{USER}`")),
        "{err}"
    );
    no_secret(&err);

    // User and password: one token for the whole push (pull,push on the repository).
    let good = docker_config(
        dir.path(),
        "good",
        &format!(
            r#"{{"auths": {{"https://{addr}": {{"auth": "{}"}}}}}}"#,
            b64(&format!("{USER}:{PASSWORD}"))
        ),
    )?;
    let before = server.asked.lock().map(|a| a.len()).unwrap_or_default();
    let pushed = push(&layout, addr, &with_config(&good)).await?;
    assert_eq!((pushed.uploaded, pushed.skipped), (3, 0));
    assert_eq!(pushed.digest, built.digest);
    let asked: Vec<_> = server
        .asked
        .lock()
        .map(|a| a[before..].to_vec())
        .unwrap_or_default();
    assert_eq!(
        asked,
        [(
            "GET".to_owned(),
            SERVICE.to_owned(),
            scope.to_owned(),
            USER.to_owned()
        )]
    );

    // An identity token (OAuth2 refresh token): POSTed to the realm, `access_token` back.
    let identity = docker_config(
        dir.path(),
        "identity",
        &format!(r#"{{"auths": {{"{addr}": {{"identitytoken": "{REFRESH_TOKEN}"}}}}}}"#),
    )?;
    let again = push(&layout, addr, &with_config(&identity)).await?;
    assert_eq!((again.uploaded, again.skipped), (0, 3));
    let last = server.asked.lock().ok().and_then(|a| a.last().cloned());
    assert_eq!(
        last,
        Some((
            "POST".to_owned(),
            SERVICE.to_owned(),
            scope.to_owned(),
            "refresh-token".to_owned()
        ))
    );
    Ok(())
}
