//! The image→command map: which local program stands in for a container image.
//!
//! ```yaml
//! test/http:1:                 # exact image reference
//!   command: [python3, -m, http.server]
//!   args: []                   # the image's default CMD (replaced by the container's args)
//!   env: {PYTHONUNBUFFERED: "1"}
//!   workdir: /tmp
//! ghcr.io/apiroutes/echo:      # repository without tag: matches every tag and digest
//!   command: ["${CARGO_TARGET_DIR}/debug/apiroutes-echo"]
//! ```
//!
//! `${NAME}` in any value is replaced from the agent's environment when the map is loaded;
//! a relative `workdir`, and a relative `command[0]` containing a `/`, are taken relative to
//! the map file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// The image's entrypoint.
    pub command: Vec<String>,
    /// The image's default arguments (Docker's CMD).
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMap {
    entries: BTreeMap<String, ImageEntry>,
}

impl ImageMap {
    /// Parses a map; `lookup` resolves `${NAME}`, `base` anchors relative paths.
    pub fn parse(
        yaml: &str,
        base: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let raw: BTreeMap<String, ImageEntry> =
            serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        let mut entries = BTreeMap::new();
        for (image, mut entry) in raw {
            if entry.command.is_empty() {
                return Err(format!("{image}: `command` must not be empty"));
            }
            let expand = |s: &str| expand_braces(s, lookup).map_err(|e| format!("{image}: {e}"));
            entry.command = entry
                .command
                .iter()
                .map(|s| expand(s))
                .collect::<Result<_, _>>()?;
            entry.args = entry
                .args
                .iter()
                .map(|s| expand(s))
                .collect::<Result<_, _>>()?;
            for value in entry.env.values_mut() {
                *value = expand(value)?;
            }
            if let Some(dir) = &entry.workdir {
                let dir = PathBuf::from(expand(&dir.to_string_lossy())?);
                entry.workdir = Some(if dir.is_relative() {
                    base.join(dir)
                } else {
                    dir
                });
            }
            let program = &entry.command[0];
            if program.contains('/') && Path::new(program).is_relative() {
                entry.command[0] = base.join(program).to_string_lossy().into_owned();
            }
            entries.insert(image, entry);
        }
        Ok(Self { entries })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let err = |message: String| Error::ImageMap {
            path: path.to_owned(),
            message,
        };
        let yaml = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&yaml, base, &|name| std::env::var(name).ok()).map_err(err)
    }

    /// The exact reference first, then the repository without tag or digest.
    pub fn resolve(&self, image: &str) -> Option<&ImageEntry> {
        self.entries
            .get(image)
            .or_else(|| self.entries.get(repository(image)))
    }
}

/// `registry:5000/team/app:1.2@sha256:..` → `registry:5000/team/app`.
pub fn repository(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => &image[..last_slash + colon],
        None => image,
    }
}

/// Replaces `${NAME}` from `lookup`; an unset name is an error (a silent empty path would
/// only fail later, less clearly).
fn expand_braces(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in {s:?}"))?;
        let name = &after[..end];
        let value =
            lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(yaml: &str) -> ImageMap {
        let env = |name: &str| (name == "TARGET").then(|| "/t".to_owned());
        ImageMap::parse(yaml, Path::new("/maps"), &env).expect("valid map")
    }

    #[test]
    fn repository_strips_tag_and_digest_only() {
        assert_eq!(repository("test/http:1"), "test/http");
        assert_eq!(repository("test/http"), "test/http");
        assert_eq!(repository("localhost:5000/app:2"), "localhost:5000/app");
        assert_eq!(repository("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository("app@sha256:abc"), "app");
        assert_eq!(repository("reg/app:1@sha256:abc"), "reg/app");
    }

    #[test]
    fn exact_match_wins_over_repository() {
        let m = map("a/b:1: {command: [one]}\na/b: {command: [any]}\n");
        assert_eq!(
            m.resolve("a/b:1").map(|e| e.command[0].as_str()),
            Some("one")
        );
        assert_eq!(
            m.resolve("a/b:2").map(|e| e.command[0].as_str()),
            Some("any")
        );
        assert_eq!(
            m.resolve("a/b@sha256:x").map(|e| e.command[0].as_str()),
            Some("any")
        );
        assert!(m.resolve("a/c:1").is_none());
    }

    #[test]
    fn tagged_key_does_not_match_other_tags() {
        let m = map("a/b:1: {command: [one]}\n");
        assert!(m.resolve("a/b:2").is_none());
        assert!(m.resolve("a/b").is_none());
    }

    #[test]
    fn expands_environment_and_anchors_relative_paths() {
        let m = map(
            "x: {command: ['${TARGET}/debug/echo', '--flag'], workdir: work, env: {A: '${TARGET}'}}\n\
             y: {command: [./bin/run]}\nz: {command: [python3]}\n",
        );
        let x = m.resolve("x").expect("x");
        assert_eq!(x.command, ["/t/debug/echo", "--flag"]);
        assert_eq!(x.workdir.as_deref(), Some(Path::new("/maps/work")));
        assert_eq!(x.env["A"], "/t");
        assert_eq!(m.resolve("y").expect("y").command[0], "/maps/./bin/run");
        assert_eq!(m.resolve("z").expect("z").command[0], "python3");
    }

    #[test]
    fn rejects_unknown_variables_empty_commands_and_unknown_fields() {
        let env = |_: &str| None;
        let base = Path::new("/");
        assert!(ImageMap::parse("x: {command: ['${NOPE}/a']}", base, &env).is_err());
        assert!(ImageMap::parse("x: {command: []}", base, &env).is_err());
        assert!(ImageMap::parse("x: {command: [a], entrypoint: [b]}", base, &env).is_err());
    }
}
