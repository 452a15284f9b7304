//! The preview key files (`--preview-token-file`, `--preview-keys-file`) and their reload.
//!
//! A mounted Kubernetes Secret is updated in place (the kubelet swaps a symlink, within its
//! sync period of about a minute), so the gateway polls the two files and swaps in the new
//! keys when their contents change. A change that does not parse (a key too short, no key,
//! the token listed as a key, an unreadable file) is logged and ignored: the keys loaded
//! before stay in use. Only a digest of the contents is kept to notice changes.

use std::{path::PathBuf, time::Duration};

use ring::digest;

use super::PreviewKeys;

/// Where the token (optional) and the signing keys are read from.
#[derive(Clone, Debug)]
pub struct KeyFiles {
    pub token: Option<PathBuf>,
    pub signing_keys: PathBuf,
}

/// SHA-256 of what was last read, to notice a change without keeping the secrets twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen([u8; 32]);

/// Why the key files could not be used. Messages never hold key material.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Keys {
        path: String,
        source: super::PreviewError,
    },
}

struct Contents {
    token: Option<Vec<u8>>,
    signing_keys: Vec<u8>,
}

impl Contents {
    fn seen(&self) -> Seen {
        let mut ctx = digest::Context::new(&digest::SHA256);
        match &self.token {
            Some(t) => {
                ctx.update(b"1");
                ctx.update(&(t.len() as u64).to_be_bytes());
                ctx.update(t);
            }
            None => ctx.update(b"0"),
        }
        ctx.update(&self.signing_keys);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Seen(out)
    }
}

impl KeyFiles {
    fn read(&self) -> Result<Contents, FilesError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| FilesError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        Ok(Contents {
            token: self.token.as_ref().map(read).transpose()?,
            signing_keys: read(&self.signing_keys)?,
        })
    }

    fn described(&self) -> String {
        match &self.token {
            Some(t) => format!("{} and {}", t.display(), self.signing_keys.display()),
            None => self.signing_keys.display().to_string(),
        }
    }

    /// Reads both files into keys; also returns what [`KeyFiles::spawn_reload`] compares
    /// later contents with.
    pub fn load(&self) -> Result<(PreviewKeys, Seen), FilesError> {
        let contents = self.read()?;
        let keys = PreviewKeys::new(contents.token.as_deref(), &contents.signing_keys).map_err(
            |source| FilesError::Keys {
                path: self.described(),
                source,
            },
        )?;
        Ok((keys, contents.seen()))
    }

    /// Checks the files once: swaps new keys into `keys` when the contents differ from
    /// `seen` and parse. A changed outcome carries what was read (the new `seen`), also for
    /// contents that did not parse, so one bad version is logged once.
    pub fn reload_once(&self, keys: &super::WeakPreviewKeys, seen: &Seen) -> ReloadOutcome {
        let contents = match self.read() {
            Ok(c) => c,
            Err(e) => return ReloadOutcome::Unreadable(e),
        };
        let now_seen = contents.seen();
        if &now_seen == seen {
            return ReloadOutcome::Unchanged;
        }
        match keys.replace(contents.token.as_deref(), &contents.signing_keys) {
            None => ReloadOutcome::Gone,
            Some(Ok(())) => ReloadOutcome::Reloaded(now_seen),
            Some(Err(source)) => ReloadOutcome::Refused(
                now_seen,
                FilesError::Keys {
                    path: self.described(),
                    source,
                },
            ),
        }
    }

    /// Polls the files every `every` on the current Tokio runtime until `keys` (and every
    /// clone of it) is dropped. `seen` is what [`KeyFiles::load`] returned.
    pub fn spawn_reload(
        self,
        keys: &PreviewKeys,
        mut seen: Seen,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak = keys.downgrade();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut unreadable = false;
            loop {
                tick.tick().await;
                match self.reload_once(&weak, &seen) {
                    ReloadOutcome::Gone => return,
                    ReloadOutcome::Unchanged => unreadable = false,
                    ReloadOutcome::Unreadable(e) => {
                        if !unreadable {
                            tracing::warn!(error = %e, "preview key files unreadable; keeping the keys loaded before");
                        }
                        unreadable = true;
                    }
                    ReloadOutcome::Reloaded(new) => {
                        unreadable = false;
                        seen = new;
                        let Some((signing_keys, token)) = weak.summary() else {
                            return;
                        };
                        tracing::info!(signing_keys, token, "preview keys reloaded");
                    }
                    ReloadOutcome::Refused(new, e) => {
                        unreadable = false;
                        seen = new;
                        tracing::warn!(error = %e, "preview key files changed but are not usable; keeping the keys loaded before");
                    }
                }
            }
        })
    }
}

/// What one check of the files found.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The keys are no longer in use: stop.
    Gone,
    Unchanged,
    Unreadable(FilesError),
    /// New keys are in use; compare with this from now on.
    Reloaded(Seen),
    /// The new contents were refused; the old keys stay. Compare with this from now on.
    Refused(Seen, FilesError),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reload_swaps_valid_changes_and_keeps_keys_on_bad_ones() {
        let dir = std::env::temp_dir().join(format!(
            "apiroutes-preview-files-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        let signing = dir.join("signing-keys");
        std::fs::write(&token, "a-token-of-enough-bytes\n").unwrap();
        std::fs::write(&signing, "first-signing-key-0001\n").unwrap();
        let files = KeyFiles {
            token: Some(token.clone()),
            signing_keys: signing.clone(),
        };
        let (keys, seen) = files.load().unwrap();
        let weak = keys.downgrade();
        assert!(matches!(
            files.reload_once(&weak, &seen),
            ReloadOutcome::Unchanged
        ));

        std::fs::write(&signing, "second-signing-key-002\nfirst-signing-key-0001\n").unwrap();
        let ReloadOutcome::Reloaded(seen) = files.reload_once(&weak, &seen) else {
            panic!("not reloaded")
        };
        assert_eq!(keys.signing_keys(), 2);

        // The token as a key, then a short key: refused, the two keys stay.
        std::fs::write(&signing, "a-token-of-enough-bytes\n").unwrap();
        let ReloadOutcome::Refused(seen, e) = files.reload_once(&weak, &seen) else {
            panic!("not refused")
        };
        assert!(!e.to_string().contains("a-token"), "{e}");
        assert_eq!(keys.signing_keys(), 2);
        std::fs::write(&signing, "short\n").unwrap();
        assert!(matches!(
            files.reload_once(&weak, &seen),
            ReloadOutcome::Refused(..)
        ));
        assert_eq!(keys.signing_keys(), 2);

        std::fs::remove_file(&token).unwrap();
        assert!(matches!(
            files.reload_once(&weak, &seen),
            ReloadOutcome::Unreadable(_)
        ));
        assert!(keys.has_token());

        drop(keys);
        std::fs::write(&token, "another-token-of-enough-bytes").unwrap();
        std::fs::write(&signing, "third-signing-key-0003").unwrap();
        assert!(matches!(
            files.reload_once(&weak, &seen),
            ReloadOutcome::Gone
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn load_errors_name_the_file_not_the_key() {
        let dir = std::env::temp_dir().join(format!(
            "apiroutes-preview-load-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let signing = dir.join("keys");
        std::fs::write(&signing, "# only a comment\n\n").unwrap();
        let files = KeyFiles {
            token: None,
            signing_keys: signing.clone(),
        };
        let e = files.load().unwrap_err().to_string();
        assert!(
            e.contains("keys") && e.contains("no preview signing key"),
            "{e}"
        );
        let missing = KeyFiles {
            token: Some(dir.join("nope")),
            signing_keys: signing,
        };
        assert!(missing.load().unwrap_err().to_string().contains("nope"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
