//! TCP relays: the API server into the node's namespace, and hostPorts out of it.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Accepts forever, relaying each connection to `target`.
pub async fn relay(listener: TcpListener, target: SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((mut inbound, peer)) => {
                tokio::spawn(async move {
                    match TcpStream::connect(target).await {
                        Ok(mut outbound) => {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                        Err(e) => {
                            tracing::debug!(%peer, %target, error = %e, "relay connect failed")
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "relay accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn relays_both_ways() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target = upstream.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.expect("accept");
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.expect("read");
            s.write_all(&buf.map(|b| b.to_ascii_uppercase()))
                .await
                .expect("write");
        });
        let front = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let front_addr = front.local_addr().expect("addr");
        let task = tokio::spawn(relay(front, target));
        let mut c = TcpStream::connect(front_addr).await.expect("connect");
        c.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"PING");
        task.abort();
    }
}
