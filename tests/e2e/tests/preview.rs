//! Preview Mode keys on the real platform (issue 13): the chart's enable token opens the
//! enable endpoint and signs nothing; a pair enabled for one namespace reaches that
//! namespace's functions only (another namespace's function gets neither the data nor the
//! cookies); a tampered pair is flagged, not trusted.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use apiroutes_e2e::{Cluster, Http, echo_route, eventually};

const READY: Duration = Duration::from_secs(90);

#[tokio::test]
async fn preview_pairs_are_bound_to_their_namespace_and_tampering_is_flagged() {
    let Some(cluster) = Cluster::platform_from_env("preview_namespaces").await else {
        return;
    };
    let a = cluster.namespace("e2e-prev-a");
    let b = cluster.namespace("e2e-prev-b");
    let keep = "  scaling: {minReplicas: 1, maxReplicas: 1}";
    let path_a = format!("/e2e/{}/p", a.name);
    let path_b = format!("/e2e/{}/p", b.name);
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(
            &[
                echo_route("p", &a.name, &path_a, keep),
                echo_route("p", &b.name, &path_b, keep),
            ]
            .join("---\n"),
        ),
    );
    let gw = cluster.gateway_url().to_owned();
    let http = Http::default();
    for p in [&path_a, &path_b] {
        eventually(&format!("200 from {p}"), READY, || async {
            matches!(http.get(&format!("{gw}{p}")).await, Ok(r) if r.status == 200).then_some(())
        })
        .await;
    }
    // The token the chart generated (only the enable endpoint's; the keys are elsewhere).
    let token = cluster.kubectl_ok(
        &[
            "get",
            "secret",
            "apiroutes-preview",
            "-n",
            "apiroutes-system",
            "-o",
            "go-template={{index .data \"token\" | base64decode}}",
        ],
        None,
    );
    let enable = format!("{gw}/__apiroutes/preview/enable");
    let wrong = http
        .get(&format!(
            "{enable}?secret=not-the-token&namespace={}",
            a.name
        ))
        .await
        .unwrap();
    assert_eq!(wrong.status, 401, "a wrong token");
    // data={"who":"e2e"}
    let ok = http
        .get(&format!(
            "{enable}?secret={}&namespace={}&data=%7B%22who%22%3A%22e2e%22%7D&redirect=/",
            token.trim(),
            a.name
        ))
        .await
        .unwrap();
    assert_eq!(ok.status, 307, "{}", String::from_utf8_lossy(&ok.body));
    let pairs: Vec<String> = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(pairs.len(), 2, "{pairs:?}");
    let cookie = pairs.join("; ");
    let get = |path: String, cookie: String| {
        let (http, gw) = (&http, &gw);
        async move {
            let r = http
                .request("GET", &format!("{gw}{path}"), &[("cookie", &cookie)], "")
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            r.json()
        }
    };
    // Its own namespace: a preview request with the data.
    let seen = get(path_a.clone(), cookie.clone()).await;
    // The data as the gateway hands it to functions: base64url of the JSON given.
    assert_eq!(
        seen["apiroute"]["x-apiroute-preview"], "eyJ3aG8iOiJlMmUifQ",
        "namespace A sees the preview data {{\"who\":\"e2e\"}}: {seen}"
    );
    // Another namespace: a normal request, without the data and without the cookies.
    let other = get(path_b.clone(), cookie.clone()).await;
    assert!(
        other["apiroute"].get("x-apiroute-preview").is_none(),
        "{other}"
    );
    assert!(
        other["apiroute"]
            .get("x-apiroute-preview-invalid")
            .is_none(),
        "{other}"
    );
    let cookies_b = other["headers"]["cookie"].as_str().unwrap_or_default();
    assert!(
        !cookies_b.contains("__prerender_bypass") && !cookies_b.contains("__next_preview_data"),
        "namespace B got the preview cookies: {other}"
    );
    // A changed byte in the data cookie: not trusted, flagged for the runtime to clear.
    let tampered: Vec<String> = pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some(("__next_preview_data", v)) if !v.is_empty() => {
                let mut v = v.to_owned();
                let last = v.pop().unwrap_or('A');
                v.push(if last == 'A' { 'B' } else { 'A' });
                format!("__next_preview_data={v}")
            }
            _ => p.clone(),
        })
        .collect();
    let forged = get(path_a, tampered.join("; ")).await;
    assert!(
        forged["apiroute"].get("x-apiroute-preview").is_none(),
        "{forged}"
    );
    assert_eq!(
        forged["apiroute"]["x-apiroute-preview-invalid"], "1",
        "{forged}"
    );
}
