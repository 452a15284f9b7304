//! `apiroutes import DIR`: a Next.js `pages/api` or `app` tree → ApiRoute manifests.
//!
//! [`plan`] is the whole decision as a pure function of the files found (their paths and
//! source text) and the options; [`discover`] is the file-system walk in front of it.

pub mod names;
pub mod paths;
pub mod scan;
pub mod tree;

use std::{
    fs,
    path::{Path, PathBuf},
};

use apiroutes_crds::{ApiRoute, ApiRouteSpec, Pattern, Preview, Scaling, quantity};
use k8s_openapi::api::core::v1::EnvVar;

use crate::error::{Error, Result};
use paths::{AppFile, PagesFile};
use scan::{BodyParser, MaxDuration};

/// The runtime's image (`runtime/node/Dockerfile`); the local node maps it to the runtime.
pub const DEFAULT_IMAGE: &str = "ghcr.io/apiroutes/node-runtime:0.1.0";
/// Env var naming the route file the Node runtime serves (`runtime/node/src/cli.js`).
pub const HANDLER_ENV: &str = "APIROUTES_HANDLER";
/// Variable naming the runtime's handlers of a shared function: a JSON object from route
/// pattern (as the gateway sends it in `x-apiroute-pattern`) to handler file.
pub const HANDLERS_ENV: &str = "APIROUTES_HANDLERS";
/// What the Node runtime answers its readiness check on.
pub const READINESS_PATH: &str = "/healthz";
/// Next.js's default `bodyParser.sizeLimit` (1mb = 1048576 bytes).
pub const NEXT_DEFAULT_BODY_LIMIT: &str = "1Mi";
/// Request deadline when the file sets no `maxDuration` (the CRD's default).
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 30;
/// Bounds of `spec.timeoutSeconds`.
pub const MAX_TIMEOUT_SECONDS: i32 = 3600;

/// How to turn files into manifests.
#[derive(Clone, Debug)]
pub struct Options {
    /// Image reference; `{name}` is the ApiRoute's name, `{route}` the name without prefix.
    pub image_template: String,
    pub namespace: Option<String>,
    /// Already normalized by [`names::prefix`] (`""` or ending in `-`).
    pub name_prefix: String,
    /// Next.js `pageExtensions`.
    pub page_extensions: Vec<String>,
    /// `bodyLimit` of routes whose body Next.js does not cap: `bodyParser: false` pages and
    /// App Router route handlers.
    pub uncapped_body_limit: String,
    /// Name the source file in `APIROUTES_HANDLER` instead of the `.mjs` that the
    /// runtime's image build writes for it.
    pub source_handlers: bool,
    /// Put before the handler path (e.g. the tree's absolute path on the local node).
    pub handler_root: Option<String>,
    /// Give every route a Preview Mode Deployment of this image (same placeholders as
    /// `image_template`).
    pub preview_image_template: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            image_template: DEFAULT_IMAGE.to_owned(),
            namespace: None,
            name_prefix: String::new(),
            page_extensions: paths::DEFAULT_PAGE_EXTENSIONS.map(String::from).to_vec(),
            uncapped_body_limit: "100Mi".to_owned(),
            source_handlers: false,
            handler_root: None,
            preview_image_template: None,
        }
    }
}

/// Which router a file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Router {
    Pages,
    App,
}

/// A file found in the tree: its path relative to the app root (`/`-separated, e.g.
/// `pages/api/users/[id].js` or `src/app/api/x/route.ts`), its path inside the router's
/// folder (`api/users/[id].js`), and its source when it is a route file.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub router: Router,
    pub rel: String,
    pub in_router: String,
    pub text: String,
}

/// One manifest to write, with the file it came from.
#[derive(Clone, Debug)]
pub struct Imported {
    pub file: String,
    pub route: ApiRoute,
}

/// The outcome of an import that is not refused.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub routes: Vec<Imported>,
    pub warnings: Vec<String>,
}

/// A route file with its Next.js path, before names are given.
struct Found<'a> {
    file: &'a SourceFile,
    path: String,
    app: bool,
}

/// Decides the manifests for a tree, or every reason Next.js would refuse it.
pub fn plan(files: &[SourceFile], options: &Options) -> Result<Plan, Vec<String>> {
    let mut warnings = Vec::new();
    let mut refusals = Vec::new();
    let mut found: Vec<Found<'_>> = Vec::new();
    // Every route of the app, UI pages included: Next checks them all together.
    let mut all_routes: Vec<(String, &str)> = Vec::new();
    for file in files {
        match file.router {
            Router::Pages => match paths::pages_file(&file.in_router, &options.page_extensions) {
                PagesFile::Api(path) => {
                    if let Some(why) = runtime_build_skips(&file.in_router) {
                        warnings.push(format!(
                            "{}: skipped: Next.js would route it as {path}, but {why}; rename it if it is meant to be a route",
                            file.rel
                        ));
                        continue;
                    }
                    all_routes.push((path.clone(), &file.rel));
                    found.push(Found {
                        file,
                        path,
                        app: false,
                    });
                }
                PagesFile::Page(path) => all_routes.push((path, &file.rel)),
                PagesFile::Skip => {
                    if let Some(ext) = other_script_extension(&file.in_router, options)
                        && file.in_router.starts_with("api/")
                    {
                        warnings.push(format!(
                            "{}: skipped: .{ext} is not in pageExtensions ({}), so Next.js does not route it either; pass --page-extensions to include it",
                            file.rel,
                            options.page_extensions.join(", ")
                        ));
                    }
                }
            },
            Router::App => match paths::app_file(&file.in_router, &options.page_extensions) {
                AppFile::Route(path) => {
                    all_routes.push((path.clone(), &file.rel));
                    found.push(Found {
                        file,
                        path,
                        app: true,
                    });
                }
                AppFile::Page(path) => all_routes.push((path, &file.rel)),
                AppFile::Skip => {}
            },
        }
    }
    let entries: Vec<tree::Entry<'_>> = all_routes
        .iter()
        .map(|(path, file)| tree::Entry { path, file })
        .collect();
    refusals.extend(tree::check(&entries));
    for f in &found {
        // One reason per file is enough: the trie's message is the more specific.
        let already = refusals.iter().any(|r| r.contains(f.file.rel.as_str()));
        if already {
            continue;
        }
        if f.app
            && let Some(segment) = f.path.split('/').find(|s| s.starts_with("(."))
        {
            refusals.push(format!(
                "{}: \"{segment}\" is an intercepting-route folder; those apply to pages, not to route handlers",
                f.file.rel
            ));
        } else if let Err(e) = Pattern::parse(&f.path) {
            refusals.push(format!(
                "{}: its route {} is not in the apiroutes pattern language: {e}",
                f.file.rel, f.path
            ));
        }
    }
    if found.is_empty() && refusals.is_empty() {
        refusals.push(
            "no API route files found: expected pages/api/**/*.{js,ts,...} or app/**/route.{js,ts,...}"
                .to_owned(),
        );
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }

    let route_paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
    let names = names::names(&options.name_prefix, &route_paths);
    let mut routes = Vec::new();
    for (f, name) in found.iter().zip(names) {
        match manifest(f, &name, options, &mut warnings) {
            Ok(route) => routes.push(Imported {
                file: f.file.rel.clone(),
                route,
            }),
            Err(e) => refusals.push(e),
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    Ok(Plan { routes, warnings })
}

/// Why the runtime's image build (`apiroutes-node build`) leaves a `pages/api` file out.
fn runtime_build_skips(in_router: &str) -> Option<&'static str> {
    let (dirs, leaf) = in_router.rsplit_once('/').unwrap_or(("", in_router));
    if dirs
        .split('/')
        .any(|d| d.starts_with('_') || d.starts_with('.'))
    {
        return Some(
            "the runtime's image build leaves '_' and '.' folders out (they hold helpers)",
        );
    }
    let test_file = [".test.", ".spec."].iter().any(|t| leaf.contains(t));
    test_file.then_some("the runtime's image build leaves test files out")
}

/// A JavaScript-family extension that the configured page extensions leave out.
fn other_script_extension(file: &str, options: &Options) -> Option<String> {
    let (_, ext) = file.rsplit_once('.')?;
    let script = ["js", "jsx", "ts", "tsx", "mjs", "cjs", "mts", "cts"].contains(&ext);
    (script && !file.ends_with(".d.ts") && !options.page_extensions.iter().any(|e| e == ext))
        .then(|| ext.to_owned())
}

fn manifest(
    f: &Found<'_>,
    name: &str,
    options: &Options,
    warnings: &mut Vec<String>,
) -> Result<ApiRoute, String> {
    let file = &f.file.rel;
    let src = scan::blank_comments(&f.file.text);

    let methods = if f.app {
        let exports = scan::exported_methods(&src);
        if exports.star {
            warnings.push(format!(
                "{file}: `export * from` may export more methods than the scan sees; methods left open (all)"
            ));
            None
        } else if exports.methods.is_empty() {
            warnings.push(format!(
                "{file}: no exported GET, POST, ... found by the scan; methods left open (all)"
            ));
            None
        } else {
            // Next answers HEAD with GET when HEAD is not exported, and OPTIONS always.
            let mut set = exports.methods;
            if set.contains("GET") {
                set.insert("HEAD");
            }
            set.insert("OPTIONS");
            Some(
                scan::ROUTE_METHODS
                    .iter()
                    .filter(|m| set.contains(**m))
                    .map(|m| (*m).to_owned())
                    .collect(),
            )
        }
    } else {
        None
    };

    let body_limit = if f.app {
        options.uncapped_body_limit.clone()
    } else {
        match scan::body_parser(&src) {
            BodyParser::Default => NEXT_DEFAULT_BODY_LIMIT.to_owned(),
            BodyParser::Disabled => options.uncapped_body_limit.clone(),
            BodyParser::SizeLimit(text) => match scan::parse_next_bytes(&text) {
                Some(bytes) if bytes > 0 => scan::bytes_to_quantity(bytes),
                _ => {
                    return Err(format!(
                        "{file}: config.api.bodyParser.sizeLimit {text:?} is not a positive size Next.js reads (e.g. '1mb', '500kb', 4096)"
                    ));
                }
            },
            BodyParser::Unreadable(text) => {
                warnings.push(format!(
                    "{file}: config.api.bodyParser.sizeLimit ({text}) is not a literal; bodyLimit left at Next's default {NEXT_DEFAULT_BODY_LIMIT}"
                ));
                NEXT_DEFAULT_BODY_LIMIT.to_owned()
            }
        }
    };

    let timeout_seconds = match scan::max_duration(&src) {
        MaxDuration::Absent => DEFAULT_TIMEOUT_SECONDS,
        MaxDuration::Seconds(s) => {
            let whole = s.ceil();
            if !(1.0..=f64::from(MAX_TIMEOUT_SECONDS)).contains(&whole) {
                return Err(format!(
                    "{file}: maxDuration {s} is outside the 1..{MAX_TIMEOUT_SECONDS} seconds that timeoutSeconds allows"
                ));
            }
            whole as i32
        }
        MaxDuration::Unreadable(text) => {
            warnings.push(format!(
                "{file}: maxDuration ({text}) is not a number literal; timeoutSeconds left at {DEFAULT_TIMEOUT_SECONDS}"
            ));
            DEFAULT_TIMEOUT_SECONDS
        }
    };

    let route_part = name.strip_prefix(&options.name_prefix).unwrap_or(name);
    let image = render_image(&options.image_template, name, route_part)?;
    let preview = match &options.preview_image_template {
        Some(template) => Some(Preview {
            image: render_image(template, name, route_part)?,
            env: vec![],
        }),
        None => None,
    };

    let mut route = ApiRoute::new(
        name,
        ApiRouteSpec {
            path: f.path.clone(),
            methods,
            host: None,
            image,
            port: 8080,
            env: vec![EnvVar {
                name: HANDLER_ENV.to_owned(),
                value: Some(handler_path(&f.file.rel, options)),
                value_from: None,
            }],
            env_from: vec![],
            resources: None,
            readiness_path: Some(READINESS_PATH.to_owned()),
            read_only_root_filesystem: false,
            timeout_seconds,
            body_limit,
            trailing_slash: false,
            scaling: Scaling::default(),
            preview,
            function: None,
        },
    );
    route.metadata.namespace = options.namespace.clone();
    Ok(route)
}

/// The handler path the runtime is given: the file as the runtime's image build writes it
/// (`pages/api/users/[id].ts` → `pages/api/users/[id].mjs`, relative to the image's
/// working directory `/srv/functions`), or the source file with `--source-handlers`.
pub fn handler_path(rel: &str, options: &Options) -> String {
    let file = if options.source_handlers {
        rel.to_owned()
    } else {
        match rel.rsplit_once('.') {
            Some((stem, _)) => format!("{stem}.mjs"),
            None => rel.to_owned(),
        }
    };
    match &options.handler_root {
        Some(root) if !root.is_empty() => format!("{}/{file}", root.trim_end_matches('/')),
        _ => file,
    }
}

/// Fills `{name}` and `{route}` in an image template.
pub fn render_image(template: &str, name: &str, route: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("--image {template:?}: unclosed '{{'"));
        };
        match &after[..close] {
            "name" => out.push_str(name),
            "route" => out.push_str(route),
            other => {
                return Err(format!(
                    "--image {template:?}: unknown placeholder {{{other}}}; use {{name}} or {{route}}"
                ));
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if out.is_empty() || out.chars().any(char::is_whitespace) {
        return Err(format!(
            "--image {template:?} gives {out:?}, which is not an image reference"
        ));
    }
    Ok(out)
}

/// Checks a quantity given on the command line for `bodyLimit`.
pub fn check_body_limit_flag(flag: &str, value: &str) -> Result<()> {
    match quantity::parse_bytes(value) {
        Some(b) if b > 0 => Ok(()),
        _ => Err(Error::Usage(format!(
            "{flag} {value:?}: expected a positive Kubernetes quantity such as 100Mi"
        ))),
    }
}

/// Where the routers of an app live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The app root: handler paths are relative to it.
    pub root: PathBuf,
    /// `pages` or `src/pages` (relative to `root`), when imported.
    pub pages: Option<String>,
    /// `app` or `src/app` (relative to `root`), when imported.
    pub app: Option<String>,
}

/// Finds the routers from the directory given on the command line: an app root (with
/// `pages/` and/or `app/`, or `src/pages`, `src/app` as Next.js allows), or a `pages` or
/// `app` folder itself.
pub fn layout(dir: &Path) -> Result<Layout> {
    let is_dir = |p: PathBuf| p.is_dir();
    if !dir.is_dir() {
        return Err(Error::Usage(format!("{}: not a directory", dir.display())));
    }
    for base in ["", "src/"] {
        let pages = format!("{base}pages");
        let app = format!("{base}app");
        let (has_pages, has_app) = (is_dir(dir.join(&pages)), is_dir(dir.join(&app)));
        if has_pages || has_app {
            return Ok(Layout {
                root: dir.to_owned(),
                pages: has_pages.then_some(pages),
                app: has_app.then_some(app),
            });
        }
    }
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let absolute = fs::canonicalize(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    let parent = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
    let (root, prefix) = match parent.file_name().and_then(|n| n.to_str()) {
        Some("src") => (
            parent.parent().map(Path::to_path_buf).unwrap_or_default(),
            "src/",
        ),
        _ => (parent, ""),
    };
    match name {
        "pages" => Ok(Layout {
            root,
            pages: Some(format!("{prefix}pages")),
            app: None,
        }),
        "app" => Ok(Layout {
            root,
            pages: None,
            app: Some(format!("{prefix}app")),
        }),
        "api" => Err(Error::Usage(format!(
            "{}: give the app root or its pages/ folder, not pages/api (the route paths start at pages/)",
            dir.display()
        ))),
        _ => Err(Error::Usage(format!(
            "{}: no pages/ or app/ folder here (nor in src/); give a Next.js app root or its pages/ or app/ folder",
            dir.display()
        ))),
    }
}

/// Walks the routers of `layout` and reads the route files' sources.
pub fn discover(layout: &Layout) -> Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    for (router, dir) in [(Router::Pages, &layout.pages), (Router::App, &layout.app)] {
        let Some(dir) = dir else { continue };
        let mut rels = Vec::new();
        walk(&layout.root.join(dir), "", 0, &mut rels)?;
        rels.sort();
        for in_router in rels {
            let rel = format!("{dir}/{in_router}");
            let path = layout.root.join(&rel);
            // Only script files are read; anything else is classified by name alone.
            let script = matches!(
                in_router.rsplit_once('.').map(|(_, e)| e),
                Some("js" | "jsx" | "ts" | "tsx" | "mjs" | "cjs" | "mts" | "cts")
            );
            let text = if script {
                fs::read(&path)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .map_err(|source| Error::Io { path, source })?
            } else {
                String::new()
            };
            files.push(SourceFile {
                router,
                rel,
                in_router,
                text,
            });
        }
    }
    Ok(files)
}

fn walk(dir: &Path, rel: &str, depth: usize, out: &mut Vec<String>) -> Result<()> {
    if depth > 64 {
        return Err(Error::Usage(format!(
            "{}: folders nested more than 64 deep (a symlink loop?)",
            dir.display()
        )));
    }
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
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        if path.is_dir() {
            walk(&path, &child, depth + 1, out)?;
        } else {
            out.push(child);
        }
    }
    Ok(())
}

/// The manifests as one YAML stream, each document headed by its source file.
pub fn to_yaml(routes: &[Imported]) -> Result<String> {
    let mut out = String::new();
    for imported in routes {
        out.push_str("---\n");
        out.push_str(&format!("# {}\n", imported.file));
        out.push_str(&serde_yaml::to_string(&imported.route).map_err(Error::Yaml)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

/// Why `function` cannot name a shared function (the CRD's rule on `spec.function`).
pub fn function_name_problem(function: &str) -> Option<&'static str> {
    let ok = function.len() <= 63
        && function.starts_with(|c: char| c.is_ascii_lowercase())
        && function
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !function.ends_with('-');
    (!ok).then_some(apiroutes_crds::labels::FUNCTION_NAME_MESSAGE)
}

/// Puts every route in the shared function `function` (`--group`): one Deployment runs
/// all the route files in one process, so they share module state and cold starts. Each
/// route names the function, and all get the same environment: the pattern → file map
/// ([`HANDLERS_ENV`]) instead of each one's own [`HANDLER_ENV`].
pub fn into_function(routes: &mut [&mut Imported], function: &str) -> Result<(), String> {
    if let Some(problem) = function_name_problem(function) {
        return Err(format!("--group {function:?}: {problem}"));
    }
    let mut handlers = std::collections::BTreeMap::new();
    for r in routes.iter() {
        let spec = &r.route.spec;
        let pattern = Pattern::parse(&spec.path).map_err(|e| format!("{}: {e}", r.file))?;
        let file = spec
            .env
            .iter()
            .find(|e| e.name == HANDLER_ENV)
            .and_then(|e| e.value.clone())
            .unwrap_or_default();
        handlers.insert(pattern.to_string(), file);
    }
    let handlers =
        serde_json::to_string(&handlers).map_err(|e| format!("encoding {HANDLERS_ENV}: {e}"))?;
    for r in routes.iter_mut() {
        let spec = &mut r.route.spec;
        spec.function = Some(function.to_owned());
        for var in spec.env.iter_mut() {
            if var.name == HANDLER_ENV {
                var.name = HANDLERS_ENV.to_owned();
                var.value = Some(handlers.clone());
                var.value_from = None;
            }
        }
    }
    Ok(())
}
