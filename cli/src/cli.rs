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
    check,
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
    /// Build a reproducible OCI image from host files and binaries (no container engine),
    /// or push one to a registry.
    #[command(subcommand)]
    Image(ImageCommand),
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
        let plan = import::plan(&files, &options).map_err(Error::Refused)?;
        for warning in &plan.warnings {
            eprintln!("apiroutes: warning: {warning}");
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

impl RoutesArgs {
    pub async fn run(&self) -> Result<()> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options).await?,
            (None, None) => Config::infer().await?,
        };
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
        let (all, complete) = routes::fetch(client, &scope).await?;
        let rows = routes::table(&all, |r| match &scope {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }
}
