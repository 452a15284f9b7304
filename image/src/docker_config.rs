//! Registry credentials from the Docker config file (`docker login` writes it):
//! `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
//!
//! `auths.<registry>` holds `auth` (base64 of `user:password`), or `username` and
//! `password`, and maybe `identitytoken` (an OAuth2 refresh token for a Bearer token
//! server). Keys are written `host:port`, `https://host:port` or `https://host/v1/`; they
//! are matched by `host[:port]`. Credential helpers (`credsStore`, `credHelpers`) are not
//! run; when one is named for a registry without inline credentials, the lookup says so.

use std::{
    ffi::OsString,
    fmt,
    path::{Path, PathBuf},
};

use base64::Engine;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// What `docker login` left for one registry. Never printed: `Debug` hides the secrets.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// The `auths` key the entry was found under (to name it in errors).
    pub key: String,
    /// `(user, password)`, from `auth` or `username`/`password`.
    pub basic: Option<(String, String)>,
    pub identity_token: Option<String>,
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
            .field("key", &self.key)
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
    Helper(String, &'static str),
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
        key: key.to_owned(),
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

    #[test]
    fn debug_hides_the_secrets() {
        let c = Credentials {
            key: "r.example".into(),
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
