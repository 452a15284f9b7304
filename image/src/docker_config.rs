//! Registry credentials from the Docker config file (`docker login` writes it):
//! `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
//!
//! `auths.<registry>` holds `auth` (base64 of `user:password`), or `username` and
//! `password`, and maybe `identitytoken` (an OAuth2 refresh token for a Bearer token
//! server). Keys are written `host:port`, `https://host:port` or `https://host/v1/`; they
//! are matched by `host[:port]`. Without inline credentials for the registry, the
//! credential helper named for it (`credHelpers.<registry>`, else `credsStore`) is asked
//! ([`ask_helper`]: docker-credential-helpers' `get`), as docker does.

use std::{
    ffi::{OsStr, OsString},
    fmt,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use base64::Engine;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use crate::{Error, Result};

/// What `docker login` left for one registry. Never printed: `Debug` hides the secrets.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// Where they came from (to name it in errors).
    pub source: Source,
    /// `(user, password)`, from `auth` or `username`/`password`.
    pub basic: Option<(String, String)>,
    pub identity_token: Option<String>,
}

/// Where credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// The `auths` key the entry was found under.
    Auths(String),
    /// A credential helper: its name and the field that named it (`credHelpers`,
    /// `credsStore`).
    Helper(String, &'static str),
}

impl Credentials {
    /// Who, for an error message: the user name, never a secret.
    pub fn who(&self) -> String {
        match (&self.basic, &self.identity_token) {
            (Some((user, _)), _) => format!("user `{user}`"),
            (None, _) => "an identity token".to_owned(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("source", &self.source)
            .field("user", &self.basic.as_ref().map(|(u, _)| u))
            .field("password", &self.basic.as_ref().map(|_| "<hidden>"))
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

/// The result of looking a registry up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    Credentials(Credentials),
    /// No inline credentials, but a helper is named: `(helper, "credHelpers" | "credsStore")`.
    /// Not asked yet.
    Helper(String, &'static str),
    /// The helper was asked and has no credentials for the registry.
    HelperHasNone(String, &'static str),
    /// The file has nothing for this registry.
    Nothing,
    /// There is no such file.
    NoFile,
}

/// The config file to read: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`
/// (empty variables count as unset, as docker has it).
pub(crate) fn default_path(
    docker_config: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    set(docker_config)
        .map(|d| d.join("config.json"))
        .or_else(|| set(home).map(|h| h.join(".docker").join("config.json")))
}

/// The file from the environment, as [`default_path`].
pub(crate) fn path_from_env() -> Option<PathBuf> {
    default_path(std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME"))
}

/// Looks `authority` (`host[:port]`) up in the file at `path`; a missing file is
/// [`Found::NoFile`], an unreadable or malformed one an error.
pub(crate) fn lookup(path: &Path, authority: &str) -> Result<Found> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::NoFile),
        Err(e) => return Err(Error::io(path)(e)),
    };
    lookup_in(&text, authority).map_err(|reason| Error::DockerConfig {
        path: path.to_owned(),
        reason,
    })
}

/// `host[:port]` of an `auths` key: scheme and path dropped, lower-cased.
fn key_authority(key: &str) -> String {
    let rest = key.split_once("://").map_or(key, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    hub_alias(&authority.to_ascii_lowercase()).to_owned()
}

/// Docker Hub's names are one registry (`docker login` writes `https://index.docker.io/v1/`).
fn hub_alias(authority: &str) -> &str {
    match authority {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => "index.docker.io",
        a => a,
    }
}

/// The lookup on the file's text; the error is a reason that never quotes a value.
pub(crate) fn lookup_in(text: &str, authority: &str) -> Result<Found, String> {
    // serde_json's messages can quote the input ("invalid type: string \"...\""): only the
    // position is kept.
    let config: Value = serde_json::from_str(text)
        .map_err(|e| format!("not valid JSON (line {}, column {})", e.line(), e.column()))?;
    let config = config
        .as_object()
        .ok_or("not a JSON object at the top level")?;
    let want = hub_alias(&authority.to_ascii_lowercase()).to_owned();
    let empty = Map::new();
    let auths = match config.get("auths") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err("`auths` is not an object".to_owned()),
    };
    // The key written exactly as given first, then the other spellings (in key order).
    let mut keys: Vec<&String> = auths
        .keys()
        .filter(|k| k.as_str() != authority && key_authority(k) == want)
        .collect();
    if let Some((k, _)) = auths.get_key_value(authority) {
        keys.insert(0, k);
    }
    for key in keys {
        if let Some(c) = entry(key, &auths[key.as_str()])? {
            return Ok(Found::Credentials(c));
        }
    }
    if let Some(helpers) = config.get("credHelpers").and_then(Value::as_object) {
        for (key, helper) in helpers {
            if key_authority(key) == want
                && let Some(h) = helper.as_str().filter(|h| !h.is_empty())
            {
                return Ok(Found::Helper(h.to_owned(), "credHelpers"));
            }
        }
    }
    if let Some(h) = config
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
    {
        return Ok(Found::Helper(h.to_owned(), "credsStore"));
    }
    Ok(Found::Nothing)
}

/// One `auths` entry: `None` when it holds nothing usable (`{}` when a helper keeps it).
fn entry(key: &str, value: &Value) -> Result<Option<Credentials>, String> {
    let field = |name: &str| -> Result<Option<String>, String> {
        match value.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`auths.{key}.{name}` is not a string")),
        }
    };
    if !value.is_object() {
        return Err(format!("`auths.{key}` is not an object"));
    }
    let basic = match field("auth")? {
        Some(auth) => {
            let bad = || format!("`auths.{key}.auth` is not base64 of `user:password`");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(bytes).map_err(|_| bad())?;
            let (user, password) = text.split_once(':').ok_or_else(bad)?;
            Some((user.to_owned(), password.to_owned()))
        }
        None => match (field("username")?, field("password")?) {
            (Some(u), Some(p)) => Some((u, p)),
            _ => None,
        },
    };
    let identity_token = field("identitytoken")?;
    if basic.is_none() && identity_token.is_none() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        source: Source::Auths(key.to_owned()),
        basic,
        identity_token,
    }))
}

/// How long a credential helper may take to answer before it is killed.
pub(crate) const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer of docker-credential-helpers when it has nothing for the server.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// The user name with which a helper hands over an identity token (docker's `<token>`).
const TOKEN_USER: &str = "<token>";

/// The server URL a helper is asked about, as docker asks it: the registry's `host[:port]`,
/// and for Docker Hub the key `docker login` stores it under.
pub(crate) fn helper_server(authority: &str) -> String {
    match hub_alias(&authority.to_ascii_lowercase()) {
        "index.docker.io" => "https://index.docker.io/v1/".to_owned(),
        _ => authority.to_owned(),
    }
}

/// Runs `docker-credential-<helper> get` with `server` on its standard input (the
/// docker-credential-helpers protocol) and reads its `{"ServerURL", "Username", "Secret"}`
/// answer. `Ok(None)`: the helper's "credentials not found" answer, or an empty secret.
/// User `<token>` hands over an identity token. The program is looked up on `path` when
/// given (the child's `PATH`), else on this process's `PATH`; it is killed after `timeout`.
/// The error says what went wrong without quoting an answer that could hold a secret
/// (only a failing helper's own message, which docker shows too).
pub(crate) async fn ask_helper(
    helper: &str,
    field: &'static str,
    server: &str,
    path: Option<&OsStr>,
    timeout: Duration,
) -> Result<Option<Credentials>, String> {
    if helper.is_empty() || helper.contains(['/', '\\']) || helper.contains(char::is_whitespace) {
        return Err("is not a helper name (a word such as `desktop` or `ecr-login`)".to_owned());
    }
    let program = format!("docker-credential-{helper}");
    let mut cmd = tokio::process::Command::new(&program);
    cmd.arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            "is not installed: no such program on PATH (install it, or remove the entry that \
             names it)"
                .to_owned()
        }
        _ => format!("could not be started: {e}"),
    })?;
    let stdin = child.stdin.take();
    let run = async move {
        if let Some(mut stdin) = stdin {
            // A helper that exits without reading its input is judged by its answer.
            let _ = stdin.write_all(server.as_bytes()).await;
            drop(stdin);
        }
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| format!("gave no answer within {} s (killed)", timeout.as_secs()))?
        .map_err(|e| format!("could not be run: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.trim() == NOT_FOUND {
            return Ok(None);
        }
        let message = [stdout.trim(), String::from_utf8_lossy(&out.stderr).trim()]
            .into_iter()
            .find(|m| !m.is_empty())
            .map(|m| {
                let line = m.lines().next().unwrap_or_default();
                let short: String = line.chars().take(200).collect();
                format!(": {short}")
            })
            .unwrap_or_default();
        return Err(format!("failed ({}){message}", out.status));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: Option<String>,
        #[serde(rename = "Secret", default)]
        secret: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "answered something other than the JSON of credentials {{ServerURL, Username, \
             Secret}} (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let Some(secret) = answer.secret.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let user = answer.username.unwrap_or_default();
    let (basic, identity_token) = if user == TOKEN_USER {
        (None, Some(secret))
    } else {
        (Some((user, secret)), None)
    };
    Ok(Some(Credentials {
        source: Source::Helper(helper.to_owned(), field),
        basic,
        identity_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn user_password(found: Found) -> Option<(String, String)> {
        match found {
            Found::Credentials(c) => c.basic,
            _ => None,
        }
    }

    #[test]
    fn keys_in_every_form_match_by_host_and_port() -> Result<(), String> {
        for key in [
            "registry.example:5000",
            "https://registry.example:5000",
            "https://registry.example:5000/v1/",
            "http://registry.example:5000",
            "Registry.Example:5000",
        ] {
            let config = format!(
                r#"{{"auths": {{"{key}": {{"auth": "{}"}}}}}}"#,
                b64("ann:s3cret:x")
            );
            let found = lookup_in(&config, "registry.example:5000")?;
            // The password is everything after the first colon.
            assert_eq!(
                user_password(found),
                Some(("ann".into(), "s3cret:x".into())),
                "{key}"
            );
            // Another port, or the host without the port, is another registry.
            assert_eq!(
                lookup_in(&config, "registry.example:5001")?,
                Found::Nothing,
                "{key}"
            );
            assert_eq!(
                lookup_in(&config, "registry.example")?,
                Found::Nothing,
                "{key}"
            );
        }
        Ok(())
    }

    #[test]
    fn username_and_password_fields_and_identity_tokens() -> Result<(), String> {
        let config = r#"{"auths": {
            "a.example": {"username": "bob", "password": "pw"},
            "b.example": {"identitytoken": "refresh-me"},
            "c.example": {"username": "carl"},
            "d.example": {"auth": "", "username": "", "identitytoken": null}
        }}"#;
        assert_eq!(
            user_password(lookup_in(config, "a.example")?),
            Some(("bob".into(), "pw".into()))
        );
        match lookup_in(config, "b.example")? {
            Found::Credentials(c) => {
                assert_eq!(c.basic, None);
                assert_eq!(c.identity_token.as_deref(), Some("refresh-me"));
                assert_eq!(c.who(), "an identity token");
            }
            other => panic!("{other:?}"),
        }
        // A user without a password, or empty fields: nothing usable.
        assert_eq!(lookup_in(config, "c.example")?, Found::Nothing);
        assert_eq!(lookup_in(config, "d.example")?, Found::Nothing);
        Ok(())
    }

    #[test]
    fn the_exact_key_wins_over_other_spellings() -> Result<(), String> {
        let config = format!(
            r#"{{"auths": {{"https://r.example/v1/": {{"auth": "{}"}}, "r.example": {{"auth": "{}"}}}}}}"#,
            b64("old:1"),
            b64("new:2")
        );
        assert_eq!(
            user_password(lookup_in(&config, "r.example")?),
            Some(("new".into(), "2".into()))
        );
        Ok(())
    }

    #[test]
    fn docker_hub_is_one_registry_under_its_names() -> Result<(), String> {
        let config = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}}}}}}"#,
            b64("hub:pw")
        );
        for name in ["docker.io", "registry-1.docker.io", "index.docker.io"] {
            assert!(user_password(lookup_in(&config, name)?).is_some(), "{name}");
        }
        Ok(())
    }

    #[test]
    fn helpers_are_named_when_there_is_no_inline_entry() -> Result<(), String> {
        let config = format!(
            r#"{{"auths": {{"ghcr.io": {{}}, "inline.example": {{"auth": "{}"}}}},
                "credsStore": "desktop",
                "credHelpers": {{"123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"}}}}"#,
            b64("u:p")
        );
        assert_eq!(
            lookup_in(&config, "ghcr.io")?,
            Found::Helper("desktop".into(), "credsStore")
        );
        assert_eq!(
            lookup_in(&config, "123.dkr.ecr.us-east-1.amazonaws.com")?,
            Found::Helper("ecr-login".into(), "credHelpers")
        );
        assert!(user_password(lookup_in(&config, "inline.example")?).is_some());
        assert_eq!(lookup_in("{}", "ghcr.io")?, Found::Nothing);
        Ok(())
    }

    #[test]
    fn malformed_files_are_named_without_quoting_secrets() {
        for (config, want) in [
            (
                r#"{"auths": {"r.example": {"auth": "not base64!"}}}"#.to_owned(),
                "`auths.r.example.auth` is not base64",
            ),
            (
                format!(
                    r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
                    b64("no-colon")
                ),
                "`auths.r.example.auth` is not base64 of `user:password`",
            ),
            (
                r#"{"auths": {"r.example": {"password": 5}}}"#.to_owned(),
                "`auths.r.example.password` is not a string",
            ),
            (
                r#"{"auths": ["hunter2"]}"#.to_owned(),
                "`auths` is not an object",
            ),
            (
                r#"{"auths": {"r.example": {"auth": "hunter2"#.to_owned(),
                "not valid JSON (line 1",
            ),
            ("[]".to_owned(), "not a JSON object"),
        ] {
            let err = lookup_in(&config, "r.example").err().unwrap_or_default();
            assert!(err.contains(want), "{config}: {err}");
            assert!(
                !err.contains("hunter2") && !err.contains("no-colon"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_file_comes_from_docker_config_else_home() {
        let p =
            |d: Option<&str>, h: Option<&str>| default_path(d.map(Into::into), h.map(Into::into));
        assert_eq!(
            p(Some("/cfg"), Some("/home/a")),
            Some(PathBuf::from("/cfg/config.json"))
        );
        assert_eq!(
            p(None, Some("/home/a")),
            Some(PathBuf::from("/home/a/.docker/config.json"))
        );
        assert_eq!(
            p(Some(""), Some("/home/a")),
            Some(PathBuf::from("/home/a/.docker/config.json"))
        );
        assert_eq!(p(None, None), None);
    }

    #[test]
    fn a_missing_file_is_no_file_and_a_real_one_is_read() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.json");
        assert_eq!(lookup(&path, "r.example")?, Found::NoFile);
        std::fs::write(
            &path,
            format!(
                r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
                b64("u:p")
            ),
        )?;
        assert!(user_password(lookup(&path, "r.example")?).is_some());
        std::fs::write(&path, "{")?;
        let err = lookup(&path, "r.example")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with(&format!("{}: not valid JSON", path.display())),
            "{err}"
        );
        Ok(())
    }

    /// Real helper programs (shell scripts written here) on the child's PATH, spoken to as
    /// docker does.
    #[tokio::test]
    async fn credential_helpers_are_asked_as_docker_asks_them()
    -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let script = |name: &str, body: &str| -> std::io::Result<()> {
            let p = dir.path().join(format!("docker-credential-{name}"));
            std::fs::write(&p, format!("#!/bin/sh\n{body}"))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
        };
        // The server URL arrives on stdin, without a newline; `get` is the only argument.
        script(
            "store",
            r#"[ "$#" = 1 ] && [ "$1" = get ] || { echo "usage: get" >&2; exit 3; }
server=$(cat)
case "$server" in
  r.example:5000) printf '{"ServerURL":"%s","Username":"ann","Secret":"s3cret"}\n' "$server" ;;
  tok.example) printf '{"ServerURL":"%s","Username":"<token>","Secret":"refresh-me"}' "$server" ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hub","Secret":"pw"}' "$server" ;;
  empty.example) printf '{"ServerURL":"%s","Username":"","Secret":""}' "$server" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#,
        )?;
        script(
            "locked",
            "cat >/dev/null\necho 'error getting credentials: the keychain is locked'\nexit 2\n",
        )?;
        script("silent", "exit 5\n")?;
        script(
            "garbage",
            "cat >/dev/null\necho 'Username: ann, Secret: hunter2'\n",
        )?;
        script("slow", "exec sleep 30\n")?;
        let path = std::env::join_paths(std::iter::once(dir.path().to_owned()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))?;
        let ask = |helper: &'static str, server: &'static str, timeout: u64| {
            let path = path.clone();
            async move {
                ask_helper(
                    helper,
                    "credsStore",
                    server,
                    Some(&path),
                    Duration::from_secs(timeout),
                )
                .await
            }
        };

        let c = ask("store", "r.example:5000", 10)
            .await?
            .ok_or("no credentials")?;
        assert_eq!(c.basic, Some(("ann".into(), "s3cret".into())));
        assert_eq!(c.identity_token, None);
        assert_eq!(c.source, Source::Helper("store".into(), "credsStore"));
        // `<token>`: an identity token, no user.
        let c = ask("store", "tok.example", 10).await?.ok_or("no token")?;
        assert_eq!(
            (c.basic, c.identity_token.as_deref()),
            (None, Some("refresh-me"))
        );
        // Docker Hub is asked under the key `docker login` stores it with.
        assert_eq!(helper_server("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(helper_server("r.example:5000"), "r.example:5000");
        let c = ask("store", "https://index.docker.io/v1/", 10).await?;
        assert_eq!(c.and_then(|c| c.basic).map(|b| b.0).as_deref(), Some("hub"));
        // "credentials not found", or an empty secret: none, not an error.
        assert_eq!(ask("store", "other.example", 10).await?, None);
        assert_eq!(ask("store", "empty.example", 10).await?, None);

        // Failures say what happened, with the helper's own message when it gives one.
        let err = ask("locked", "r.example", 10)
            .await
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with(
                "failed (exit status: 2): error getting credentials: the keychain is locked"
            ),
            "{err}"
        );
        let err = ask("silent", "r.example", 10)
            .await
            .err()
            .unwrap_or_default();
        assert_eq!(err, "failed (exit status: 5)");
        let err = ask("garbage", "r.example", 10)
            .await
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("answered something other than the JSON"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let err = ask("absent", "r.example", 10)
            .await
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("is not installed"), "{err}");
        let err = ask("../store", "r.example", 10)
            .await
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("is not a helper name"), "{err}");
        // Bounded: a helper that hangs is killed after the timeout.
        let started = std::time::Instant::now();
        let err = ask("slow", "r.example", 1).await.err().unwrap_or_default();
        assert_eq!(err, "gave no answer within 1 s (killed)");
        assert!(started.elapsed() < Duration::from_secs(10));
        Ok(())
    }

    #[test]
    fn debug_hides_the_secrets() {
        let c = Credentials {
            source: Source::Auths("r.example".into()),
            basic: Some(("ann".into(), "hunter2".into())),
            identity_token: Some("tok-secret".into()),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("ann"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok-secret"),
            "{shown}"
        );
    }
}
