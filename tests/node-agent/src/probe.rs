//! Startup, readiness and liveness probes: the spec as plain data, and one attempt.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Http {
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        host: String,
        port: u16,
    },
    Exec {
        command: Vec<String>,
    },
    /// A probe this node cannot run (gRPC, HTTPS, an unknown named port): it fails with this.
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn port(p: &IntOrString, container: &Container) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("unknown named port {name:?}")),
    }
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(v.unwrap_or(default)).unwrap_or(0))
}

fn count(v: Option<i32>, default: u32) -> u32 {
    v.and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// The probe as data, with the API's defaults and named ports resolved.
pub fn probe_spec(probe: &Probe, container: &Container, pod_ip: &str) -> ProbeSpec {
    let action = if let Some(h) = &probe.http_get {
        match (port(&h.port, container), h.scheme.as_deref()) {
            (Err(e), _) => Action::Unsupported(e),
            (Ok(_), Some(s)) if s != "HTTP" => {
                Action::Unsupported(format!("scheme {s} is not supported"))
            }
            (Ok(port), _) => Action::Http {
                host: h.host.clone().unwrap_or_else(|| pod_ip.to_owned()),
                port,
                path: h
                    .path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".to_owned()),
                headers: h
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            },
        }
    } else if let Some(t) = &probe.tcp_socket {
        match port(&t.port, container) {
            Ok(port) => Action::Tcp {
                host: t.host.clone().unwrap_or_else(|| pod_ip.to_owned()),
                port,
            },
            Err(e) => Action::Unsupported(e),
        }
    } else if let Some(e) = &probe.exec {
        Action::Exec {
            command: e.command.clone().unwrap_or_default(),
        }
    } else {
        Action::Unsupported("only httpGet, tcpSocket and exec probes are supported".to_owned())
    };
    ProbeSpec {
        action,
        initial_delay: secs(probe.initial_delay_seconds, 0),
        period: secs(probe.period_seconds, 10),
        timeout: secs(probe.timeout_seconds, 1),
        success_threshold: count(probe.success_threshold, 1),
        failure_threshold: count(probe.failure_threshold, 3),
    }
}

/// The request an httpGet probe sends (as the kubelet: `kube-probe/<version>`).
pub fn http_request(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> String {
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {host}:{port}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        req.push_str("User-Agent: kube-probe/1.36\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Accept: */*\r\nConnection: close\r\n\r\n");
    req
}

/// `HTTP/1.1 204 No Content` → Ok(204).
pub fn status_code(response_head: &str) -> Result<u16, String> {
    let line = response_head.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(code))) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(format!("malformed HTTP response {line:?}")),
    }
}

/// One attempt; `Err` carries the failure message. Exec probes run inside `netns`.
pub async fn run_once(spec: &ProbeSpec, netns: &str) -> Result<(), String> {
    let attempt = async {
        match &spec.action {
            Action::Http {
                host,
                port,
                path,
                headers,
            } => {
                let mut stream = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| e.to_string())?;
                stream
                    .write_all(http_request(host, *port, path, headers).as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut buf = vec![0u8; 1024];
                let mut len = 0;
                while len < buf.len() && !buf[..len].windows(2).any(|w| w == b"\r\n") {
                    let n = stream
                        .read(&mut buf[len..])
                        .await
                        .map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    len += n;
                }
                let code = status_code(&String::from_utf8_lossy(&buf[..len]))?;
                if (200..400).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("HTTP probe failed with statuscode: {code}"))
                }
            }
            Action::Tcp { host, port } => TcpStream::connect((host.as_str(), *port))
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Action::Exec { command } => {
                let status = tokio::process::Command::new("ip")
                    .args(["netns", "exec", netns])
                    .args(command)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .status()
                    .await
                    .map_err(|e| e.to_string())?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("command exited with {status}"))
                }
            }
            Action::Unsupported(why) => Err(why.clone()),
        }
    };
    match tokio::time::timeout(spec.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {:?}", spec.timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> Container {
        serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "http", "containerPort": 8080}]
        }))
        .expect("container")
    }

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).expect("probe")
    }

    #[test]
    fn http_probe_with_named_port_and_defaults() {
        let p = probe(serde_json::json!({"httpGet": {"path": "/healthz", "port": "http"}}));
        let s = probe_spec(&p, &container(), "10.244.0.3");
        assert_eq!(
            s.action,
            Action::Http {
                host: "10.244.0.3".into(),
                port: 8080,
                path: "/healthz".into(),
                headers: vec![]
            }
        );
        assert_eq!(
            (s.period, s.timeout),
            (Duration::from_secs(10), Duration::from_secs(1))
        );
        assert_eq!((s.success_threshold, s.failure_threshold), (1, 3));
    }

    #[test]
    fn tcp_probe_with_explicit_timing() {
        let p = probe(
            serde_json::json!({"tcpSocket": {"port": 9000}, "periodSeconds": 2,
            "initialDelaySeconds": 1, "failureThreshold": 5, "timeoutSeconds": 3}),
        );
        let s = probe_spec(&p, &container(), "10.244.0.3");
        assert_eq!(
            s.action,
            Action::Tcp {
                host: "10.244.0.3".into(),
                port: 9000
            }
        );
        assert_eq!(s.period, Duration::from_secs(2));
        assert_eq!(s.initial_delay, Duration::from_secs(1));
        assert_eq!(s.failure_threshold, 5);
        assert_eq!(s.timeout, Duration::from_secs(3));
    }

    #[test]
    fn unknown_port_and_grpc_are_unsupported() {
        let p = probe(serde_json::json!({"httpGet": {"port": "nope"}}));
        assert!(matches!(
            probe_spec(&p, &container(), "ip").action,
            Action::Unsupported(_)
        ));
        let p = probe(serde_json::json!({"grpc": {"port": 1}}));
        assert!(matches!(
            probe_spec(&p, &container(), "ip").action,
            Action::Unsupported(_)
        ));
    }

    #[test]
    fn request_and_response_parsing() {
        let req = http_request("10.0.0.1", 80, "/r", &[("X-A".into(), "1".into())]);
        assert!(req.starts_with(
            "GET /r HTTP/1.1\r\nHost: 10.0.0.1:80\r\nUser-Agent: kube-probe/1.36\r\nX-A: 1\r\n"
        ));
        assert!(req.ends_with("\r\n\r\n"));
        assert_eq!(status_code("HTTP/1.0 200 OK\r\n"), Ok(200));
        assert_eq!(
            status_code("HTTP/1.1 503 Service Unavailable\r\nx: y"),
            Ok(503)
        );
        assert!(status_code("garbage").is_err());
    }

    #[tokio::test]
    async fn http_probe_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            for code in ["200 OK", "500 Internal Server Error"] {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let spec = ProbeSpec {
            action: Action::Http {
                host: "127.0.0.1".into(),
                port,
                path: "/".into(),
                headers: vec![],
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            success_threshold: 1,
            failure_threshold: 1,
        };
        assert_eq!(run_once(&spec, "unused").await, Ok(()));
        assert_eq!(
            run_once(&spec, "unused").await,
            Err("HTTP probe failed with statuscode: 500".into())
        );
    }
}
