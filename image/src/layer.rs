//! One file tree as a gzipped tar layer, byte for byte the same for the same tree.

use std::{fs, io::Write};

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use crate::{
    Error, Result,
    rootfs::{Content, Tree},
};

pub struct Layer {
    /// The gzipped tar, as stored and pushed.
    pub blob: Vec<u8>,
    /// `sha256:` of `blob`.
    pub digest: String,
    /// `sha256:` of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Hashes what passes through, for the diff_id.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub fn write(tree: &Tree, epoch: u64) -> Result<Layer> {
    // No file name and no time in the gzip header; level 6 keeps node's 120 MB quick.
    let gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::new(6));
    let mut tar = tar::Builder::new(Hashing {
        inner: gz,
        hash: Sha256::new(),
    });
    let io = |path: &str| Error::io(path.to_owned());
    for (path, entry) in tree {
        let mut h = tar::Header::new_gnu();
        h.set_mode(entry.mode);
        h.set_uid(entry.owner.into());
        h.set_gid(entry.owner.into());
        h.set_mtime(epoch);
        match &entry.content {
            Content::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, format!("{path}/"), std::io::empty())
                    .map_err(io(path))?;
            }
            Content::Bytes(b) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(b.len() as u64);
                tar.append_data(&mut h, path, b.as_slice())
                    .map_err(io(path))?;
            }
            Content::Host(host) => {
                let file = fs::File::open(host).map_err(Error::io(host))?;
                let len = file.metadata().map_err(Error::io(host))?.len();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(len);
                tar.append_data(&mut h, path, file)
                    .map_err(Error::io(host))?;
            }
            Content::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, path, target).map_err(io(path))?;
            }
        }
    }
    let hashing = tar.into_inner().map_err(io("tar"))?;
    let diff_id = format!("sha256:{:x}", hashing.hash.finalize());
    let blob = hashing.inner.finish().map_err(io("gzip"))?;
    Ok(Layer {
        digest: sha256(&blob),
        blob,
        diff_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::Entry;

    fn tree() -> Tree {
        let mut t = Tree::new();
        t.insert(
            "etc".into(),
            Entry {
                content: Content::Dir,
                mode: 0o755,
                owner: 0,
            },
        );
        t.insert(
            "etc/hello".into(),
            Entry {
                content: Content::Bytes(b"hi\n".to_vec()),
                mode: 0o644,
                owner: 65532,
            },
        );
        t.insert(
            "etc/link".into(),
            Entry {
                content: Content::Symlink("hello".into()),
                mode: 0o777,
                owner: 0,
            },
        );
        t
    }

    #[test]
    fn digests_are_lower_case_hex_sha256() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_same_tree_gives_the_same_digests() -> Result<()> {
        let a = write(&tree(), 0)?;
        let b = write(&tree(), 0)?;
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.diff_id, b.diff_id);
        assert_ne!(
            write(&tree(), 1)?.diff_id,
            a.diff_id,
            "mtime is part of the layer"
        );
        Ok(())
    }

    #[test]
    fn entries_read_back_with_owner_mode_and_time() -> Result<()> {
        let layer = write(&tree(), 1_700_000_000)?;
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(layer.blob.as_slice()));
        let mut seen = Vec::new();
        for e in ar.entries().map_err(Error::io("tar"))? {
            let e = e.map_err(Error::io("tar"))?;
            let h = e.header();
            seen.push((
                e.path().map_err(Error::io("tar"))?.display().to_string(),
                h.mode().map_err(Error::io("tar"))?,
                h.uid().map_err(Error::io("tar"))?,
                h.mtime().map_err(Error::io("tar"))?,
            ));
        }
        assert_eq!(
            seen,
            [
                ("etc/".to_owned(), 0o755, 0, 1_700_000_000),
                ("etc/hello".to_owned(), 0o644, 65532, 1_700_000_000),
                ("etc/link".to_owned(), 0o777, 0, 1_700_000_000),
            ]
        );
        assert_eq!(sha256(&layer.blob), layer.digest);
        Ok(())
    }
}
