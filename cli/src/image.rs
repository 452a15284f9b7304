//! `apiroutes image build|push`: the `apiroutes-image` builder on the command line.

use std::{collections::BTreeMap, path::PathBuf};

use apiroutes_image::{ImageSpec, Placement, PushOptions, Reference};
use clap::{Args, Subcommand};

use crate::error::{Error, Result};

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Build an OCI image layout directory; prints the image's manifest digest. The same
    /// inputs give the same digest. Runs as uid/gid 65532.
    Build(Box<BuildArgs>),
    /// Push an image layout to a registry, keeping its repository and tag.
    ///
    /// HTTPS, with the credentials `docker login` wrote ($DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json); plain HTTP for http://, --insecure, or a loopback registry.
    Push(PushArgs),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Directory to write the OCI image layout into (replaced if it holds one).
    #[arg(long)]
    pub out: PathBuf,
    /// The image's reference, e.g. `ghcr.io/apiroutes/gateway:0.1.0`.
    #[arg(long)]
    pub tag: String,
    /// `HOST:IMAGE_PATH` of an ELF executable; its interpreter and shared libraries are
    /// added. Repeatable.
    #[arg(long = "binary", value_name = "HOST:IMAGE_PATH")]
    pub binaries: Vec<String>,
    /// `HOST:IMAGE_PATH` of a file or directory tree. Repeatable.
    #[arg(long = "file", value_name = "HOST:IMAGE_PATH")]
    pub files: Vec<String>,
    /// The entrypoint: one path, or a JSON array (`["/bin/node","/app/main.js"]`).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// The default arguments: a JSON array.
    #[arg(long)]
    pub cmd: Option<String>,
    /// `NAME=value`. Repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    #[arg(long)]
    pub workdir: Option<String>,
    /// A port the image listens on (`8080` or `8080/tcp`). Repeatable.
    #[arg(long = "port")]
    pub ports: Vec<String>,
    /// `KEY=value` label and manifest annotation. Repeatable.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// `org.opencontainers.image.version` (`--version` is the CLI's own).
    #[arg(long)]
    pub image_version: Option<String>,
    /// `org.opencontainers.image.revision` (a commit).
    #[arg(long)]
    pub revision: Option<String>,
    /// `org.opencontainers.image.source` (a repository URL).
    #[arg(long)]
    pub source: Option<String>,
    /// Modification time of every file (reproducible builds' convention).
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    pub source_date_epoch: u64,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// An OCI image layout directory written by `apiroutes image build`.
    pub layout: PathBuf,
    /// The registry: `HOST[:PORT]` (HTTPS; plain HTTP on loopback), `https://HOST[:PORT]`,
    /// or `http://HOST[:PORT]` (plain HTTP).
    #[arg(long)]
    pub registry: String,
    /// Plain HTTP to a registry given without a scheme (the local node's registry at
    /// `10.244.255.1:5000`), as `http://` does.
    #[arg(long)]
    pub insecure: bool,
    /// A PEM file of CA certificates to trust for HTTPS besides the system's (a private
    /// registry's CA).
    #[arg(long, env = "APIROUTES_REGISTRY_CA", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

impl ImageCommand {
    pub async fn run(self) -> Result<()> {
        match self {
            ImageCommand::Build(args) => {
                let reference = Reference::parse(&args.tag)?;
                let out = args.out.clone();
                let spec = (*args).spec()?;
                let built = apiroutes_image::build(&spec, &reference, &out)?;
                println!("{}", built.digest);
                Ok(())
            }
            ImageCommand::Push(args) => {
                let options = args.options();
                let pushed = apiroutes_image::push(&args.layout, &args.registry, &options).await?;
                println!(
                    "{}@{} ({} blobs uploaded, {} already there{})",
                    pushed.target,
                    pushed.digest,
                    pushed.uploaded,
                    pushed.skipped,
                    if pushed.plain_http {
                        ", plain HTTP"
                    } else {
                        ""
                    }
                );
                Ok(())
            }
        }
    }
}

impl PushArgs {
    /// The flags as push options (credentials: the Docker config file from the environment).
    pub fn options(&self) -> PushOptions {
        PushOptions {
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            docker_config: None,
        }
    }
}

impl BuildArgs {
    /// The flags as an image spec; every malformed value is named.
    pub fn spec(self) -> Result<ImageSpec> {
        let parse_all = |v: &[String]| -> Result<Vec<Placement>> {
            v.iter().map(|s| Ok(Placement::parse(s)?)).collect()
        };
        let mut labels = BTreeMap::new();
        for a in &self.annotations {
            let (k, v) = key_value(a, "--annotation")?;
            labels.insert(k.to_owned(), v.to_owned());
        }
        for (key, value) in [
            ("version", &self.image_version),
            ("revision", &self.revision),
            ("source", &self.source),
        ] {
            if let Some(v) = value {
                labels.insert(format!("org.opencontainers.image.{key}"), v.clone());
            }
        }
        for e in &self.env {
            key_value(e, "--env")?;
        }
        Ok(ImageSpec {
            binaries: parse_all(&self.binaries)?,
            files: parse_all(&self.files)?,
            entrypoint: match &self.entrypoint {
                Some(e) => json_or_word(e, "--entrypoint")?,
                None => Vec::new(),
            },
            cmd: match &self.cmd {
                Some(c) => json_or_word(c, "--cmd")?,
                None => Vec::new(),
            },
            env: self.env,
            workdir: self.workdir,
            ports: self.ports,
            labels,
            epoch: self.source_date_epoch,
            ..ImageSpec::default()
        })
    }
}

fn key_value<'a>(s: &'a str, flag: &str) -> Result<(&'a str, &'a str)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(Error::Usage(format!("{flag} `{s}`: expected KEY=VALUE"))),
    }
}

fn json_or_word(s: &str, flag: &str) -> Result<Vec<String>> {
    if s.trim_start().starts_with('[') {
        serde_json::from_str(s)
            .map_err(|e| Error::Usage(format!("{flag} `{s}`: not a JSON array of strings: {e}")))
    } else {
        Ok(vec![s.to_owned()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        c: ImageCommand,
    }

    fn spec(args: &[&str]) -> Result<ImageSpec> {
        let t = T::try_parse_from(
            ["t", "build", "--out", "/o", "--tag", "x:1"]
                .iter()
                .chain(args),
        )
        .map_err(|e| Error::Usage(e.to_string()))?;
        match t.c {
            ImageCommand::Build(b) => b.spec(),
            ImageCommand::Push(_) => Err(Error::Usage("push".into())),
        }
    }

    #[test]
    fn flags_become_the_spec() -> Result<()> {
        let s = spec(&[
            "--binary",
            "target/gw:/usr/local/bin/gateway",
            "--entrypoint",
            r#"["/usr/local/bin/gateway","--x"]"#,
            "--env",
            "A=b=c",
            "--image-version",
            "0.1.0",
            "--annotation",
            "org.opencontainers.image.title=gw",
        ])?;
        assert_eq!(s.binaries[0].host, PathBuf::from("target/gw"));
        assert_eq!(s.entrypoint, ["/usr/local/bin/gateway", "--x"]);
        assert_eq!(s.env, ["A=b=c"]);
        assert_eq!(s.labels["org.opencontainers.image.version"], "0.1.0");
        assert_eq!(s.labels["org.opencontainers.image.title"], "gw");
        assert_eq!(spec(&["--entrypoint", "/pause"])?.entrypoint, ["/pause"]);
        Ok(())
    }

    fn push_options(args: &[&str]) -> Result<(String, PushOptions)> {
        let t = T::try_parse_from(["t", "push", "/layout"].iter().chain(args))
            .map_err(|e| Error::Usage(e.to_string()))?;
        match t.c {
            ImageCommand::Push(p) => Ok((p.registry.clone(), p.options())),
            ImageCommand::Build(_) => Err(Error::Usage("build".into())),
        }
    }

    #[test]
    fn push_flags_become_the_options() -> Result<()> {
        let (registry, o) = push_options(&["--registry", "10.244.255.1:5000", "--insecure"])?;
        assert_eq!(registry, "10.244.255.1:5000");
        assert!(o.insecure);
        let (_, o) = push_options(&["--registry", "ghcr.io", "--ca-file", "/etc/ca.pem"])?;
        assert!(!o.insecure);
        assert_eq!(o.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(o.docker_config, None, "from DOCKER_CONFIG / ~/.docker");
        Ok(())
    }

    #[test]
    fn the_whole_command_line_is_consistent() {
        use clap::CommandFactory;
        crate::Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_are_named() {
        for (args, want) in [
            (&["--env", "NOVALUE"][..], "--env `NOVALUE`"),
            (&["--entrypoint", "[1]"][..], "--entrypoint `[1]`"),
            (&["--file", "relative:usr/x"][..], "absolute image path"),
        ] {
            let err = spec(args).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }
}
