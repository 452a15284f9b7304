//! Pushing to a real registry: the distribution registry the local node runs
//! (`tests/cluster/build.sh` builds it; `APIROUTES_REGISTRY_BIN` names the binary).
//! Without it the test says so and passes, unless `APIROUTES_REQUIRE_CLUSTER=1` (as
//! `tests/run.sh` sets), where a missing registry fails it.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use apiroutes_image::{ImageSpec, Placement, Reference, build, push};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Registry {
    child: Child,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry(storage: &Path) -> Result<Option<Registry>, Box<dyn std::error::Error>> {
    let Some(bin) = std::env::var_os("APIROUTES_REGISTRY_BIN") else {
        if std::env::var("APIROUTES_REQUIRE_CLUSTER").as_deref() == Ok("1") {
            return Err("APIROUTES_REQUIRE_CLUSTER=1 but APIROUTES_REGISTRY_BIN is unset".into());
        }
        eprintln!("skipped: APIROUTES_REGISTRY_BIN is unset (tests/run.sh sets it)");
        return Ok(None);
    };
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let config = storage.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\n\
             storage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: \"{addr}\"}}\n",
            storage.join("data").display()
        ),
    )?;
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let reg = Registry { child, addr };
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&reg.addr, "/v2/", "").is_err() {
        if Instant::now() > deadline {
            return Err("the registry did not answer within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Some(reg))
}

/// A plain HTTP/1.0 GET; returns the whole response head and body as text.
fn get(addr: &str, path: &str, accept: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[tokio::test]
async fn a_built_image_pushes_and_the_registry_serves_it_by_tag() -> TestResult {
    let dir = tempfile::tempdir()?;
    let Some(reg) = registry(dir.path())? else {
        return Ok(());
    };
    std::fs::create_dir(dir.path().join("app"))?;
    std::fs::write(dir.path().join("app/hello.txt"), "hello\n")?;
    let spec = ImageSpec {
        files: vec![Placement::parse(&format!(
            "{}:/srv/app",
            dir.path().join("app").display()
        ))?],
        entrypoint: vec!["/srv/app/hello.txt".into()],
        ..ImageSpec::default()
    };
    let reference = Reference::parse("ghcr.io/apiroutes/push-test:0.1.0")?;
    let built = build(&spec, &reference, &dir.path().join("layout"))?;

    let first = push(&dir.path().join("layout"), &reg.addr).await?;
    assert_eq!(first.digest, built.digest);
    assert_eq!(
        first.target,
        format!("{}/apiroutes/push-test:0.1.0", reg.addr)
    );
    assert_eq!((first.uploaded, first.skipped), (3, 0), "config, base, app");

    // The registry answers the tag with the same manifest digest a node would pull.
    let answer = get(
        &reg.addr,
        "/v2/apiroutes/push-test/manifests/0.1.0",
        "application/vnd.oci.image.manifest.v1+json",
    )?;
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("docker-content-digest: {}", built.digest)),
        "{answer}"
    );

    // A second push uploads nothing again.
    let again = push(&dir.path().join("layout"), &reg.addr).await?;
    assert_eq!((again.uploaded, again.skipped), (0, 3));
    Ok(())
}

#[tokio::test]
async fn a_registry_that_is_not_there_is_a_clear_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("f"), "x")?;
    let spec = ImageSpec {
        files: vec![Placement::parse(&format!(
            "{}:/f",
            dir.path().join("f").display()
        ))?],
        entrypoint: vec!["/f".into()],
        ..ImageSpec::default()
    };
    build(&spec, &Reference::parse("x:1")?, &dir.path().join("l"))?;
    // A port nothing listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let err = push(&dir.path().join("l"), &format!("127.0.0.1:{port}"))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with(&format!("registry 127.0.0.1:{port}: check a blob")),
        "{err}"
    );
    Ok(())
}
