//! Image references: `[registry/]repository[:tag]`.

use std::fmt;

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `ghcr.io`, `127.0.0.1:5000`; `None` for a short name (`apiroutes/gateway`).
    pub registry: Option<String>,
    pub repository: String,
    pub tag: String,
}

impl Reference {
    /// Parses a tagged reference; a digest reference is refused (an image is pushed by tag).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Spec(format!("image reference `{s}`: {why}"));
        if s.contains('@') {
            return Err(bad("digest references cannot be pushed; give a tag"));
        }
        let (registry, rest) = match s.split_once('/') {
            // As Docker decides: a first component with a dot or a port, or `localhost`.
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_owned()), rest)
            }
            _ => (None, s),
        };
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (rest, "latest"),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad("the repository must be lower-case path components"));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !tag_ok {
            return Err(bad("the tag must be 1-128 of [A-Za-z0-9._-]"));
        }
        Ok(Reference {
            registry,
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = &self.registry {
            write!(f, "{r}/")?;
        }
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_repositories_and_tags() -> Result<()> {
        let r = Reference::parse("ghcr.io/apiroutes/gateway:0.1.0")?;
        assert_eq!(r.registry.as_deref(), Some("ghcr.io"));
        assert_eq!(
            (r.repository.as_str(), r.tag.as_str()),
            ("apiroutes/gateway", "0.1.0")
        );
        assert_eq!(r.to_string(), "ghcr.io/apiroutes/gateway:0.1.0");

        let r = Reference::parse("127.0.0.1:5000/echo")?;
        assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!((r.repository.as_str(), r.tag.as_str()), ("echo", "latest"));

        let r = Reference::parse("apiroutes/pause:1.0")?;
        assert_eq!(r.registry, None);
        assert_eq!(r.repository, "apiroutes/pause");
        Ok(())
    }

    #[test]
    fn bad_references_say_why() {
        for (s, why) in [
            ("ghcr.io/Apiroutes/x:1", "lower-case"),
            ("x:", "tag"),
            ("x@sha256:00", "digest"),
            ("ghcr.io//x:1", "lower-case"),
        ] {
            let err = Reference::parse(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(why), "{s}: {err}");
        }
    }
}
