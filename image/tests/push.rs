//! Pushing to a real registry over plain HTTP (as to the local node's): the distribution
//! registry, see `common/mod.rs`. Credentials, TLS and tokens: `push_auth.rs`.

mod common;

use apiroutes_image::{ImageSpec, Placement, PushOptions, Reference, build, push};
use common::{Setup, TestResult, failure, free_port, get, image, registry};

#[tokio::test]
async fn a_built_image_pushes_and_the_registry_serves_it_by_tag() -> TestResult {
    let dir = tempfile::tempdir()?;
    let Some(reg) = registry(dir.path(), &Setup::default())? else {
        return Ok(());
    };
    let (layout, built) = image(dir.path())?;

    // On loopback, plain HTTP without being asked (as docker does).
    let first = push(&layout, &reg.addr, &PushOptions::default()).await?;
    assert_eq!(first.digest, built.digest);
    assert_eq!(
        first.target,
        format!("{}/apiroutes/push-test:0.1.0", reg.addr)
    );
    assert_eq!((first.uploaded, first.skipped), (3, 0), "config, base, app");
    assert!(first.plain_http);

    // The registry answers the tag with the same manifest digest a node would pull.
    let answer = get(
        &reg.addr,
        "/v2/apiroutes/push-test/manifests/0.1.0",
        &["Accept: application/vnd.oci.image.manifest.v1+json"],
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

    // A second push uploads nothing again; `http://` (as the node's callers give it) and
    // the insecure option are the same registry, and the target has no scheme.
    let again = push(
        &layout,
        &format!("http://{}/", reg.addr),
        &PushOptions::default(),
    )
    .await?;
    assert_eq!((again.uploaded, again.skipped), (0, 3));
    assert_eq!(again.target, first.target);
    let insecure = PushOptions {
        insecure: true,
        ..PushOptions::default()
    };
    let third = push(&layout, &reg.addr, &insecure).await?;
    assert_eq!(
        (third.uploaded, third.skipped, third.plain_http),
        (0, 3, true)
    );

    // HTTPS asked of a plain-HTTP registry: a TLS error that says what to do.
    let err = failure(
        push(
            &layout,
            &format!("https://{}", reg.addr),
            &PushOptions::default(),
        )
        .await,
    );
    assert!(
        err.starts_with(&format!("registry {}: check a blob: ", reg.addr)),
        "{err}"
    );
    assert!(
        err.contains("does not speak TLS") && err.contains("http://"),
        "{err}"
    );
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
    let port = free_port()?;
    let err = failure(
        push(
            &dir.path().join("l"),
            &format!("127.0.0.1:{port}"),
            &PushOptions::default(),
        )
        .await,
    );
    assert!(
        err.starts_with(&format!("registry 127.0.0.1:{port}: check a blob")),
        "{err}"
    );
    assert!(err.contains("onnection refused"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_bad_registry_or_ca_file_is_refused_before_any_request() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (layout, _) = image(dir.path())?;
    let err = failure(push(&layout, "ghcr.io/apiroutes", &PushOptions::default()).await);
    assert!(err.contains("expected HOST[:PORT]"), "{err}");
    let insecure = PushOptions {
        insecure: true,
        ..PushOptions::default()
    };
    let err = failure(push(&layout, "https://ghcr.io", &insecure).await);
    assert!(err.contains("contradict"), "{err}");
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n")?;
    let bad_ca = PushOptions {
        ca_file: Some(dir.path().join("ca.pem")),
        ..PushOptions::default()
    };
    let err = failure(push(&layout, "127.0.0.1:1", &bad_ca).await);
    assert!(err.contains("ca.pem: no PEM certificate"), "{err}");
    Ok(())
}
