//! A real registry for the push tests: the distribution registry the local node runs
//! (`tests/cluster/build.sh` builds it; `APIROUTES_REGISTRY_BIN` names the binary), started
//! on 127.0.0.1 with a config of the test's (TLS, htpasswd, token auth). Without the binary
//! a test says so and passes, unless `APIROUTES_REQUIRE_CLUSTER=1` (as `tests/run.sh`
//! sets), where a missing registry fails it.
#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use apiroutes_image::{BuiltImage, ImageSpec, Placement, Reference, build};

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the registry's config adds to storage and address.
#[derive(Default)]
pub struct Setup {
    /// `(certificate, key)` PEM files: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The `auth:` section, as flow YAML (`{htpasswd: {...}}`).
    pub auth: Option<String>,
}

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> TestResult<u16> {
    Ok(apiroutes_testkit::free_port())
}

/// Starts a registry in `dir` (its storage, config and log go there); `None` when the
/// binary is not given and not required.
pub fn registry(dir: &Path, setup: &Setup) -> TestResult<Option<Registry>> {
    let Some(bin) = apiroutes_testkit::from_env("APIROUTES_REGISTRY_BIN", "registry tests") else {
        return Ok(None);
    };
    let addr = format!("127.0.0.1:{}", free_port()?);
    let tls = match &setup.tls {
        Some((cert, key)) => format!(
            ", tls: {{certificate: \"{}\", key: \"{}\"}}",
            cert.display(),
            key.display()
        ),
        None => String::new(),
    };
    let auth = match &setup.auth {
        Some(a) => format!("auth: {a}\n"),
        None => String::new(),
    };
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: info, accesslog: {{disabled: true}}}}\n\
             storage: {{filesystem: {{rootdirectory: \"{}\"}}}}\n\
             http: {{addr: \"{addr}\"{tls}}}\n{auth}",
            dir.join("data").display()
        ),
    )?;
    let log = dir.join("registry.log");
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let reg = Registry { child, addr };
    let deadline = Instant::now() + Duration::from_secs(20);
    // Any answer will do (400 to plain HTTP on a TLS port, 401 with auth).
    while get(&reg.addr, "/v2/", &[]).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("the registry did not answer within 20 s; its log:\n{log}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Some(reg))
}

/// A plain HTTP/1.0 GET with extra header lines; the whole response head and body as text.
pub fn get(addr: &str, path: &str, headers: &[&str]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The test image: one file, `ghcr.io/apiroutes/push-test:0.1.0`, its layout in
/// `dir/layout`; three blobs (config, base layer, app layer).
pub fn image(dir: &Path) -> TestResult<(PathBuf, BuiltImage)> {
    let app = dir.join("app");
    std::fs::create_dir_all(&app)?;
    std::fs::write(app.join("hello.txt"), "hello\n")?;
    let spec = ImageSpec {
        files: vec![Placement::parse(&format!("{}:/srv/app", app.display()))?],
        entrypoint: vec!["/srv/app/hello.txt".into()],
        ..ImageSpec::default()
    };
    let reference = Reference::parse("ghcr.io/apiroutes/push-test:0.1.0")?;
    let layout = dir.join("layout");
    let built = build(&spec, &reference, &layout)?;
    Ok((layout, built))
}

/// The error of a push that must fail, as text.
pub fn failure<T: std::fmt::Debug>(r: apiroutes_image::Result<T>) -> String {
    match r {
        Ok(v) => format!("unexpectedly succeeded: {v:?}"),
        Err(e) => e.to_string(),
    }
}
