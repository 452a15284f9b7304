//! `apiroutes image push` to a real registry with htpasswd auth (the distribution registry,
//! `APIROUTES_REGISTRY_BIN`), its credentials kept by a Docker credential helper: a real
//! program (a shell script written here) found on the `PATH` the CLI runs with, as
//! `docker login` with `credsStore` leaves things.
#![allow(clippy::unwrap_used)]

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use apiroutes_image::{ImageSpec, Placement, Reference};

/// `ann` / `s3cret-pw`, bcrypt cost 4 (made once with Python's `crypt`).
const HTPASSWD: &str = "ann:$2b$04$Xgae/QiQVZSzdTt6SFGFu.NI8q5zoVnav.QvLUoRaDzC3cTaPAxG6\n";

struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn registry(bin: &str, dir: &Path) -> (Registry, String) {
    let addr = format!("127.0.0.1:{}", apiroutes_testkit::free_port());
    std::fs::write(dir.join("htpasswd"), HTPASSWD).unwrap();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: info, accesslog: {{disabled: true}}}}\n\
             storage: {{filesystem: {{rootdirectory: \"{}\"}}}}\n\
             http: {{addr: \"{addr}\"}}\n\
             auth: {{htpasswd: {{realm: apiroutes-test, path: \"{}\"}}}}\n",
            dir.join("data").display(),
            dir.join("htpasswd").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
        .spawn()
        .unwrap();
    let reg = Registry(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the registry did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (reg, addr)
}

/// `apiroutes image push LAYOUT --registry ADDR` with this PATH and DOCKER_CONFIG:
/// (success, stderr).
fn push(layout: &Path, addr: &str, bin: &Path, config_dir: &Path) -> (bool, String) {
    let path = std::env::join_paths(std::iter::once(bin.to_owned()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_apiroutes"))
        .args(["image", "push"])
        .arg(layout)
        .args(["--registry", addr])
        .env("PATH", path)
        .env("DOCKER_CONFIG", config_dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn script(bin: &Path, name: &str, body: &str) {
    let p = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn push_takes_credentials_from_the_credential_helper_docker_config_names() {
    let Some(registry_bin) =
        apiroutes_testkit::from_env("APIROUTES_REGISTRY_BIN", "credential helper push")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_reg, addr) = registry(&registry_bin, dir.path());

    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("hello.txt"), "hello\n").unwrap();
    let spec = ImageSpec {
        files: vec![Placement::parse(&format!("{}:/srv/app", app.display())).unwrap()],
        entrypoint: vec!["/srv/app/hello.txt".into()],
        ..ImageSpec::default()
    };
    let layout = dir.path().join("layout");
    apiroutes_image::build(
        &spec,
        &Reference::parse("ghcr.io/apiroutes/helper-test:0.1.0").unwrap(),
        &layout,
    )
    .unwrap();

    // The helper logs what it was asked (arguments, then the server URL from stdin).
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let asked = dir.path().join("asked.log");
    script(
        &bin,
        "test",
        &format!(
            "server=$(cat)\nprintf '%s %s\\n' \"$*\" \"$server\" >> '{}'\n\
             if [ \"$server\" = '{addr}' ]; then\n\
               printf '{{\"ServerURL\":\"%s\",\"Username\":\"ann\",\"Secret\":\"s3cret-pw\"}}' \"$server\"\n\
             else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
            asked.display()
        ),
    );
    script(
        &bin,
        "empty",
        "cat >/dev/null\necho 'credentials not found in native keychain'\nexit 1\n",
    );
    let config_dir = |name: &str, config: &str| -> PathBuf {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.json"), config).unwrap();
        d
    };

    // `credsStore`, with the empty `auths` entry `docker login` leaves: pushed.
    let store = config_dir(
        "store",
        &format!(r#"{{"auths": {{"{addr}": {{}}}}, "credsStore": "test"}}"#),
    );
    let (ok, stderr) = push(&layout, &addr, &bin, &store);
    assert!(ok, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&asked).unwrap(),
        format!("get {addr}\n"),
        "asked once, as docker asks"
    );
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");

    // `credHelpers` for this registry wins over `credsStore`; a helper with nothing for
    // it: the 401 names the helper and the file.
    let helpers = config_dir(
        "helpers",
        &format!(r#"{{"credsStore": "test", "credHelpers": {{"{addr}": "empty"}}}}"#),
    );
    let (ok, stderr) = push(&layout, &addr, &bin, &helpers);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "401 Unauthorized: the registry needs credentials, and the credential helper `docker-credential-empty` (`credHelpers` in {}) has none for {addr}",
            helpers.join("config.json").display()
        )),
        "{stderr}"
    );

    // A helper that is not installed: named, with the entry that names it.
    let absent = config_dir("absent", r#"{"credsStore": "nowhere"}"#);
    let (ok, stderr) = push(&layout, &addr, &bin, &absent);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "registry {addr}: credential helper `docker-credential-nowhere` (`credsStore` in {}) is not installed",
            absent.join("config.json").display()
        )),
        "{stderr}"
    );
}
