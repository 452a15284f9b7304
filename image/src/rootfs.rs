//! The image's file trees, decided before anything is written: which host file goes where,
//! with which mode and owner. Sorted maps, so the layers come out in one order.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fs,
    path::{Path, PathBuf},
};

use crate::{Error, ImageSpec, NONROOT, Placement, Result, elf};

/// Where shared libraries are looked up by default: Debian's multiarch directories first,
/// as its dynamic loader does without an `ld.so.cache`.
pub const DEFAULT_LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Dir,
    /// Read from this host path when the layer is written.
    Host(PathBuf),
    Bytes(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub content: Content,
    pub mode: u32,
    pub owner: u32,
}

impl Entry {
    fn dir(mode: u32) -> Self {
        Entry {
            content: Content::Dir,
            mode,
            owner: 0,
        }
    }
    fn file(content: Content, mode: u32) -> Self {
        Entry {
            content,
            mode,
            owner: 0,
        }
    }
}

/// Paths relative to `/`, without a leading slash, sorted.
pub type Tree = BTreeMap<String, Entry>;

#[derive(Debug, Default)]
pub struct Rootfs {
    /// Users, `/tmp`, binaries and what they load.
    pub base: Tree,
    /// The other files; empty when the spec has none.
    pub app: Tree,
}

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
                      nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnonroot:x:65532:\n";

pub fn assemble(spec: &ImageSpec) -> Result<Rootfs> {
    let mut base = Tree::new();
    base.insert(
        "etc/passwd".into(),
        Entry::file(Content::Bytes(PASSWD.into()), 0o644),
    );
    base.insert(
        "etc/group".into(),
        Entry::file(Content::Bytes(GROUP.into()), 0o644),
    );
    base.insert("tmp".into(), Entry::dir(0o1777));
    base.insert(
        "home/nonroot".into(),
        Entry {
            content: Content::Dir,
            mode: 0o700,
            owner: NONROOT,
        },
    );
    if let Some(dir) = &spec.workdir {
        base.insert(image_path(dir)?, Entry::dir(0o755));
    }
    add_binaries(&mut base, &spec.binaries, &spec.library_dirs)?;
    add_parents(&mut base);

    let mut app = Tree::new();
    for p in &spec.files {
        add_tree(&mut app, &p.host, &image_path(&p.path)?)?;
    }
    add_parents(&mut app);
    Ok(Rootfs { base, app })
}

/// `/usr/local/bin/x` → `usr/local/bin/x`; refuses relative paths and `..`.
pub fn image_path(path: &str) -> Result<String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Error::Spec(format!("image path `{path}` is not absolute")));
    };
    let parts: Vec<&str> = rest
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(Error::Spec(format!("image path `{path}` contains `..`")));
    }
    if parts.is_empty() {
        return Err(Error::Spec(format!("image path `{path}` names the root")));
    }
    Ok(parts.join("/"))
}

/// Each binary at its place, then its interpreter and libraries (transitively) at the
/// directory they were found in on the host, which the loader searches too.
fn add_binaries(tree: &mut Tree, binaries: &[Placement], dirs: &[PathBuf]) -> Result<()> {
    let mut queue: VecDeque<PathBuf> = VecDeque::new();
    for b in binaries {
        tree.insert(
            image_path(&b.path)?,
            Entry::file(Content::Host(b.host.clone()), 0o755),
        );
        queue.push_back(b.host.clone());
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    while let Some(host) = queue.pop_front() {
        let bytes = fs::read(&host).map_err(Error::io(&host))?;
        let needs = elf::needs(&host, &bytes)?;
        if let Some(interp) = needs.interpreter {
            let path = image_path(&interp)?;
            tree.entry(path)
                .or_insert_with(|| Entry::file(Content::Host(PathBuf::from(&interp)), 0o755));
        }
        for lib in needs.libraries {
            if !seen.insert(lib.clone()) {
                continue;
            }
            let found = dirs.iter().map(|d| d.join(&lib)).find(|p| p.is_file());
            let Some(found) = found else {
                return Err(Error::MissingLibrary {
                    binary: host,
                    library: lib,
                    searched: dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            let path = image_path(&found.to_string_lossy())?;
            tree.entry(path)
                .or_insert_with(|| Entry::file(Content::Host(found.clone()), 0o755));
            queue.push_back(found);
        }
    }
    Ok(())
}

/// A host file (symlinks followed) or a directory tree (symlinks inside kept as links).
fn add_tree(tree: &mut Tree, host: &Path, at: &str) -> Result<()> {
    let meta = fs::metadata(host).map_err(Error::io(host))?;
    if meta.is_file() {
        tree.insert(
            at.to_owned(),
            Entry::file(Content::Host(host.to_owned()), file_mode(&meta)),
        );
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(Error::Spec(format!(
            "{}: neither a file nor a directory",
            host.display()
        )));
    }
    tree.insert(at.to_owned(), Entry::dir(0o755));
    let mut children: Vec<_> = fs::read_dir(host)
        .map_err(Error::io(host))?
        .collect::<Result<_, _>>()
        .map_err(Error::io(host))?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let path = child.path();
        let name = child.file_name().to_string_lossy().into_owned();
        let dest = format!("{at}/{name}");
        let lmeta = fs::symlink_metadata(&path).map_err(Error::io(&path))?;
        if lmeta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(Error::io(&path))?;
            tree.insert(
                dest,
                Entry::file(
                    Content::Symlink(target.to_string_lossy().into_owned()),
                    0o777,
                ),
            );
        } else {
            add_tree(tree, &path, &dest)?;
        }
    }
    Ok(())
}

fn file_mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

/// Every ancestor of an entry is a directory entry of the same layer (0755, root).
fn add_parents(tree: &mut Tree) {
    let parents: Vec<String> = tree
        .keys()
        .flat_map(|p| {
            p.match_indices('/')
                .map(|(i, _)| p[..i].to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    for p in parents {
        tree.entry(p).or_insert_with(|| Entry::dir(0o755));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_are_normalized_and_confined() {
        assert_eq!(
            image_path("/usr//local/./bin/x").ok(),
            Some("usr/local/bin/x".into())
        );
        assert!(image_path("usr/bin").is_err());
        assert!(image_path("/a/../etc/shadow").is_err());
        assert!(image_path("/").is_err());
    }

    #[test]
    fn parents_are_added_once_as_root_directories() {
        let mut t = Tree::new();
        t.insert("a/b/c".into(), Entry::file(Content::Bytes(vec![]), 0o644));
        t.insert("a/x".into(), Entry::file(Content::Bytes(vec![]), 0o644));
        add_parents(&mut t);
        let keys: Vec<_> = t.keys().cloned().collect();
        assert_eq!(keys, ["a", "a/b", "a/b/c", "a/x"]);
        assert_eq!(t["a/b"], Entry::dir(0o755));
    }

    #[test]
    fn a_binary_brings_its_loader_and_libraries() -> Result<()> {
        let exe = std::env::current_exe().map_err(Error::io("current_exe"))?;
        let spec = ImageSpec {
            binaries: vec![Placement {
                host: exe,
                path: "/usr/local/bin/t".into(),
            }],
            workdir: Some("/srv".into()),
            ..ImageSpec::default()
        };
        let fs = assemble(&spec)?;
        assert!(fs.base.contains_key("usr/local/bin/t"));
        assert!(
            fs.base.contains_key("lib64/ld-linux-x86-64.so.2"),
            "{:?}",
            fs.base.keys()
        );
        assert!(fs.base.keys().any(|k| k.ends_with("/libc.so.6")));
        assert_eq!(fs.base["tmp"].mode, 0o1777);
        assert_eq!(fs.base["home/nonroot"].owner, NONROOT);
        assert!(fs.base.contains_key("srv"));
        assert!(fs.app.is_empty());
        Ok(())
    }

    #[test]
    fn a_missing_library_names_the_binary_and_the_library() -> Result<()> {
        let exe = std::env::current_exe().map_err(Error::io("current_exe"))?;
        let spec = ImageSpec {
            binaries: vec![Placement {
                host: exe.clone(),
                path: "/t".into(),
            }],
            library_dirs: vec![PathBuf::from("/nonexistent")],
            ..ImageSpec::default()
        };
        let err = assemble(&spec)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("needs shared library lib"), "{err}");
        assert!(err.contains("/nonexistent"), "{err}");
        Ok(())
    }

    #[test]
    fn trees_keep_executable_bits_and_symlinks() -> Result<()> {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let d = tempfile::tempdir().map_err(Error::io("tempdir"))?;
        let root = d.path();
        fs::create_dir(root.join("bin")).map_err(Error::io(root))?;
        fs::write(root.join("bin/run"), "x").map_err(Error::io(root))?;
        fs::set_permissions(root.join("bin/run"), fs::Permissions::from_mode(0o700))
            .map_err(Error::io(root))?;
        fs::write(root.join("data.json"), "{}").map_err(Error::io(root))?;
        symlink("data.json", root.join("link.json")).map_err(Error::io(root))?;
        let spec = ImageSpec {
            files: vec![Placement {
                host: root.to_owned(),
                path: "/opt/app".into(),
            }],
            ..ImageSpec::default()
        };
        let fs = assemble(&spec)?;
        assert_eq!(fs.app["opt/app/bin/run"].mode, 0o755);
        assert_eq!(fs.app["opt/app/data.json"].mode, 0o644);
        assert_eq!(
            fs.app["opt/app/link.json"].content,
            Content::Symlink("data.json".into())
        );
        assert_eq!(fs.app["opt"], Entry::dir(0o755));
        Ok(())
    }
}
