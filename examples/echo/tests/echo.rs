//! Runs the real echo binary on a free loopback port and talks HTTP/1.1 to it.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    time::{Duration, Instant},
};

struct Echo(Child, u16);

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> Echo {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_echo"))
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("ECHO_NAME", "test-echo")
        .spawn()
        .expect("spawn echo");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "echo did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Echo(child, port)
}

fn request(port: u16, raw: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(raw.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn echoes_method_path_query_contract_headers_and_body() {
    let echo = start();
    let resp = request(
        echo.1,
        "POST /api/users/a%2Fb?x=1&y=2 HTTP/1.1\r\nhost: t\r\nx-apiroute-params: {\"id\":\"a/b\"}\r\n\
         x-apiroute-name: default/user\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).expect("json body");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/api/users/a%2Fb");
    assert_eq!(v["query"], "x=1&y=2");
    assert_eq!(v["params"]["id"], "a/b");
    assert_eq!(v["apiroute"]["x-apiroute-name"], "default/user");
    assert_eq!(v["body"], "hello");
    assert_eq!(v["server"], "test-echo");
}

#[test]
fn serves_readiness_and_status_override() {
    let echo = start();
    let ok = request(
        echo.1,
        "GET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    );
    assert!(ok.starts_with("HTTP/1.1 200") && ok.ends_with("ok"), "{ok}");
    let teapot = request(
        echo.1,
        "GET /x?status=418 HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    );
    assert!(teapot.starts_with("HTTP/1.1 418"), "{teapot}");
}
