//! Writing an image as an OCI image layout directory, and reading one back.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use crate::{
    Error, ImageSpec, NONROOT, Reference, Result,
    layer::{self, sha256},
    rootfs,
};

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub reference: Reference,
    /// The manifest's digest: what a registry reports for the image.
    pub digest: String,
    /// Compressed bytes of all layers.
    pub size: u64,
}

/// Builds the image `reference` from `spec` into the layout directory `out` (created, or
/// replaced when it already holds a layout).
pub fn build(spec: &ImageSpec, reference: &Reference, out: &Path) -> Result<BuiltImage> {
    if spec.entrypoint.is_empty() && spec.cmd.is_empty() {
        return Err(Error::Spec("an image needs an entrypoint or a cmd".into()));
    }
    let fs = rootfs::assemble(spec)?;
    let mut layers = vec![("base (users, /tmp, binaries, shared libraries)", fs.base)];
    if !fs.app.is_empty() {
        layers.push(("app (files)", fs.app));
    }
    prepare(out)?;

    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    let mut size = 0;
    for (what, tree) in &layers {
        let l = layer::write(tree, spec.epoch)?;
        write_blob(out, &l.digest, &l.blob)?;
        size += l.blob.len() as u64;
        descriptors
            .push(json!({"mediaType": LAYER_TYPE, "digest": l.digest, "size": l.blob.len()}));
        diff_ids.push(l.diff_id);
        history.push(json!({"created_by": format!("apiroutes image build: {what}")}));
    }

    let mut config = serde_json::Map::new();
    config.insert("User".into(), json!(format!("{NONROOT}:{NONROOT}")));
    if !spec.entrypoint.is_empty() {
        config.insert("Entrypoint".into(), json!(spec.entrypoint));
    }
    if !spec.cmd.is_empty() {
        config.insert("Cmd".into(), json!(spec.cmd));
    }
    if !spec.env.is_empty() {
        config.insert("Env".into(), json!(spec.env));
    }
    if let Some(w) = &spec.workdir {
        config.insert("WorkingDir".into(), json!(w));
    }
    if !spec.ports.is_empty() {
        let ports: serde_json::Map<String, Value> = spec
            .ports
            .iter()
            .map(|p| {
                let p = if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                };
                (p, json!({}))
            })
            .collect();
        config.insert("ExposedPorts".into(), Value::Object(ports));
    }
    if !spec.labels.is_empty() {
        config.insert("Labels".into(), json!(spec.labels));
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    let config = to_bytes(&config)?;
    let config_digest = sha256(&config);
    write_blob(out, &config_digest, &config)?;

    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    });
    if !spec.labels.is_empty() {
        manifest["annotations"] = json!(spec.labels);
    }
    let manifest = to_bytes(&manifest)?;
    let digest = sha256(&manifest);
    write_blob(out, &digest, &manifest)?;

    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": MANIFEST_TYPE,
            "digest": digest,
            "size": manifest.len(),
            "annotations": {REF_NAME: reference.to_string()},
        }],
    });
    write_file(&out.join("index.json"), &to_bytes(&index)?)?;
    write_file(
        &out.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(BuiltImage {
        reference: reference.clone(),
        digest,
        size,
    })
}

/// An empty directory, or one that held a layout (a rebuild); anything else is refused.
fn prepare(out: &Path) -> Result<()> {
    if out.exists() {
        let empty = fs::read_dir(out).map_err(Error::io(out))?.next().is_none();
        if !empty && !out.join("oci-layout").is_file() {
            return Err(Error::Layout {
                path: out.to_owned(),
                reason: "exists and is not an image layout; refusing to overwrite it".into(),
            });
        }
        fs::remove_dir_all(out).map_err(Error::io(out))?;
    }
    let blobs = out.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(Error::io(blobs))
}

fn to_bytes(v: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Spec(format!("serializing JSON: {e}")))
}

fn blob_path(out: &Path, digest: &str) -> PathBuf {
    out.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn write_blob(out: &Path, digest: &str, bytes: &[u8]) -> Result<()> {
    write_file(&blob_path(out, digest), bytes)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(Error::io(path))
}

/// A layout read back: the reference it was built for and its blobs, manifest last.
pub struct Layout {
    pub reference: Reference,
    pub manifest_digest: String,
    pub manifest: Vec<u8>,
    /// `(digest, path)` of the config and every layer.
    pub blobs: Vec<(String, PathBuf)>,
}

pub fn read(dir: &Path) -> Result<Layout> {
    let bad = |reason: String| Error::Layout {
        path: dir.to_owned(),
        reason,
    };
    let index: Value = read_json(&dir.join("index.json"))?;
    let desc = index["manifests"]
        .get(0)
        .ok_or_else(|| bad("index.json lists no manifest".into()))?;
    let digest = desc["digest"]
        .as_str()
        .ok_or_else(|| bad("the manifest descriptor has no digest".into()))?
        .to_owned();
    let name = desc["annotations"][REF_NAME]
        .as_str()
        .ok_or_else(|| bad(format!("the manifest descriptor has no {REF_NAME}")))?;
    let reference = Reference::parse(name)?;
    let path = blob_path(dir, &digest);
    let manifest = fs::read(&path).map_err(Error::io(&path))?;
    if sha256(&manifest) != digest {
        return Err(bad(format!("blob {digest} does not match its digest")));
    }
    let m: Value =
        serde_json::from_slice(&manifest).map_err(|e| bad(format!("manifest {digest}: {e}")))?;
    let mut blobs = Vec::new();
    let layers = m["layers"].as_array().cloned().unwrap_or_default();
    for d in std::iter::once(&m["config"]).chain(layers.iter()) {
        let digest = d["digest"]
            .as_str()
            .ok_or_else(|| bad("a descriptor without a digest".into()))?;
        blobs.push((digest.to_owned(), blob_path(dir, digest)));
    }
    Ok(Layout {
        reference,
        manifest_digest: digest,
        manifest,
        blobs,
    })
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = fs::read(path).map_err(Error::io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Layout {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Placement;

    fn spec(dir: &Path) -> ImageSpec {
        ImageSpec {
            files: vec![Placement {
                host: dir.join("app"),
                path: "/srv/app".into(),
            }],
            entrypoint: vec!["/srv/app/run".into()],
            env: vec!["PORT=8080".into()],
            workdir: Some("/srv/app".into()),
            ports: vec!["8080".into()],
            labels: [(
                "org.opencontainers.image.version".to_owned(),
                "1.2.3".to_owned(),
            )]
            .into(),
            ..ImageSpec::default()
        }
    }

    #[test]
    fn same_inputs_same_digest_and_the_layout_reads_back() -> Result<()> {
        let d = tempfile::tempdir().map_err(Error::io("tempdir"))?;
        fs::create_dir(d.path().join("app")).map_err(Error::io("app"))?;
        fs::write(d.path().join("app/run"), "x").map_err(Error::io("run"))?;
        let r = Reference::parse("ghcr.io/apiroutes/t:1")?;
        let a = build(&spec(d.path()), &r, &d.path().join("a"))?;
        let b = build(&spec(d.path()), &r, &d.path().join("b"))?;
        assert_eq!(a.digest, b.digest);
        // A rebuild over an existing layout replaces it.
        let again = build(&spec(d.path()), &r, &d.path().join("a"))?;
        assert_eq!(again.digest, a.digest);

        let l = read(&d.path().join("a"))?;
        assert_eq!(l.reference, r);
        assert_eq!(l.manifest_digest, a.digest);
        assert_eq!(l.blobs.len(), 3, "config, base layer, app layer");
        let config: Value = read_json(&l.blobs[0].1)?;
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(
            config["config"]["Labels"]["org.opencontainers.image.version"],
            "1.2.3"
        );

        // A changed file changes the digest.
        fs::write(d.path().join("app/run"), "y").map_err(Error::io("run"))?;
        assert_ne!(
            build(&spec(d.path()), &r, &d.path().join("c"))?.digest,
            a.digest
        );
        Ok(())
    }

    #[test]
    fn refuses_to_overwrite_a_directory_that_is_not_a_layout() -> Result<()> {
        let d = tempfile::tempdir().map_err(Error::io("tempdir"))?;
        fs::create_dir(d.path().join("app")).map_err(Error::io("app"))?;
        fs::write(d.path().join("keep"), "precious").map_err(Error::io("keep"))?;
        let r = Reference::parse("t:1")?;
        let err = build(&spec(d.path()), &r, d.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("refusing to overwrite"), "{err}");
        assert!(d.path().join("keep").exists());
        Ok(())
    }
}
