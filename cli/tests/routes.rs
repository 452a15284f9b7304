//! `apiroutes routes` against a stand-in API server on 127.0.0.1 that answers the list
//! calls with canned ApiRoutes (the table's order and statuses are unit-tested as data in
//! `src/routes.rs`; this checks the edges: kubeconfig, the list calls, the 403 fallback).

#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    process::Command,
    thread,
};

/// Serves each request by `answer(path) -> (status, body)`, one connection at a time.
fn api_server(answer: fn(&str) -> (u16, String)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap_or_default();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let target = request_line.split(' ').nth(1).unwrap_or("/");
            let path = target.split('?').next().unwrap_or(target);
            let (status, body) = answer(path);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    address
}

fn kubeconfig(dir: &tempfile::TempDir, server: &str) -> String {
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster: {{server: \"{server}\"}}\ncontexts:\n- name: local\n  context: {{cluster: local, user: me, namespace: shop}}\ncurrent-context: local\nusers:\n- name: me\n  user: {{token: test}}\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn item(ns: &str, name: &str, path: &str, created: &str, status: &str) -> String {
    format!(
        r#"{{"apiVersion":"apiroutes.dev/v1alpha1","kind":"ApiRoute","metadata":{{"name":"{name}","namespace":"{ns}","creationTimestamp":"{created}"}},"spec":{{"path":"{path}","image":"e"}}{status}}}"#
    )
}

fn list(items: &[String]) -> String {
    format!(
        r#"{{"apiVersion":"apiroutes.dev/v1alpha1","kind":"ApiRouteList","metadata":{{"resourceVersion":"7"}},"items":[{}]}}"#,
        items.join(",")
    )
}

fn cluster(path: &str) -> (u16, String) {
    match path {
        "/apis/apiroutes.dev/v1alpha1/apiroutes" => (
            200,
            list(&[
                item("shop", "user", "/api/users/[id]", "2026-01-01T00:00:00Z", r#","status":{"replicas":2,"readyReplicas":1}"#),
                item("other", "user-slug", "/api/users/[slug]", "2026-01-02T00:00:00Z", ""),
                item("shop", "hello", "/api/hello", "2026-01-03T00:00:00Z", ""),
            ]),
        ),
        _ => (404, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#.to_owned()),
    }
}

fn namespace_only(path: &str) -> (u16, String) {
    match path {
        "/apis/apiroutes.dev/v1alpha1/namespaces/shop/apiroutes" => (
            200,
            list(&[item("shop", "hello", "/api/hello", "2026-01-03T00:00:00Z", "")]),
        ),
        _ => (
            403,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden","reason":"Forbidden","code":403}"#.to_owned(),
        ),
    }
}

fn routes(config: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_apiroutes"))
        .arg("routes")
        .args(["--kubeconfig", config])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn prints_the_live_table_in_gateway_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&dir, &api_server(cluster));
    let (code, out, err) = routes(&config, &["-A"]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["PATTERN", "METHODS", "HOST", "ROUTE", "STATUS", "READY"],
            vec!["/api/hello", "*", "*", "shop/hello", "Accepted", "-"],
            vec!["/api/users/[id]", "*", "*", "shop/user", "Accepted", "1/2"],
            vec![
                "/api/users/[slug]",
                "*",
                "*",
                "other/user-slug",
                "Conflict→shop/user",
                "-"
            ],
        ]
    );
    // Columns line up: every READY cell starts where the header's does.
    let at = out.lines().next().unwrap().find("READY").unwrap();
    for line in out.lines() {
        let chars: Vec<char> = line.chars().collect();
        let header_chars = out.lines().next().unwrap()[..at].chars().count();
        assert_ne!(chars[header_chars], ' ', "{out}");
        assert_eq!(chars[header_chars - 1], ' ', "{out}");
    }
    // The context's namespace by default: the other namespace's loser is not shown.
    let (code, out, _) = routes(&config, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(!out.contains("other/"));
}

#[test]
fn falls_back_to_one_namespace_when_forbidden_cluster_wide() {
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&dir, &api_server(namespace_only));
    let (code, out, err) = routes(&config, &["-n", "shop"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("shop/hello"), "{out}");
    assert!(
        err.contains("cannot list ApiRoutes in all namespaces"),
        "{err}"
    );
    let (code, _, err) = routes(&config, &["-A"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("forbidden"), "{err}");
}
