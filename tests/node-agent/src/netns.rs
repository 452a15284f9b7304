//! The node's network namespace: created with iproute2, joined to the host by a veth pair.
//!
//! Inside: `local <cluster CIDR> dev lo` (every pod address is bindable) and
//! `default dev <pod veth>`. On the host: only `route <cluster CIDR> dev <host veth>`, no
//! address on any host interface, no forwarding, no NAT.

use std::fs::File;
use std::net::SocketAddr;

use tokio::process::Command;

use crate::error::{Error, Result};

const RESOLV_CONF: &str = "# apiroutes-node-agent: no DNS on this node\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    pub name: String,
    pub host_veth: String,
    pub pod_veth: String,
    pub cluster_cidr: String,
}

impl Netns {
    /// The `ip` invocations that create the namespace (in order).
    pub fn setup_commands(&self) -> Vec<Vec<String>> {
        let n = self.name.as_str();
        let cmds: Vec<Vec<&str>> = vec![
            vec!["netns", "add", n],
            vec![
                "link",
                "add",
                &self.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                &self.pod_veth,
                "netns",
                n,
            ],
            vec!["-n", n, "link", "set", "lo", "up"],
            vec!["-n", n, "link", "set", &self.pod_veth, "up"],
            vec![
                "-n",
                n,
                "route",
                "add",
                "local",
                &self.cluster_cidr,
                "dev",
                "lo",
            ],
            vec!["-n", n, "route", "add", "default", "dev", &self.pod_veth],
            vec!["link", "set", &self.host_veth, "up"],
            vec!["route", "add", &self.cluster_cidr, "dev", &self.host_veth],
        ];
        cmds.into_iter()
            .map(|c| c.into_iter().map(str::to_owned).collect())
            .collect()
    }

    /// Files `ip netns exec` mounts over /etc for processes in the namespace.
    pub fn etc_dir(&self) -> std::path::PathBuf {
        std::path::Path::new("/etc/netns").join(&self.name)
    }

    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    async fn exists(&self) -> bool {
        tokio::fs::metadata(self.path()).await.is_ok()
    }

    /// Removes a namespace of this name left by an earlier run (its processes are killed: they
    /// are pods of a crashed agent), then creates a fresh one.
    pub async fn setup(&self) -> Result<()> {
        self.teardown().await;
        // No DNS here: lookups should fail at once on the namespace's own loopback instead of
        // timing out toward the host's resolver (python's http.server, for one, resolves its
        // own name at start). `ip netns exec` mounts this over /etc/resolv.conf.
        let etc = self.etc_dir();
        tokio::fs::create_dir_all(&etc)
            .await
            .map_err(Error::io(format!("creating {}", etc.display())))?;
        tokio::fs::write(etc.join("resolv.conf"), RESOLV_CONF)
            .await
            .map_err(Error::io(format!("writing {}/resolv.conf", etc.display())))?;
        for args in self.setup_commands() {
            if let Err(e) = ip(&args).await {
                self.teardown().await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Best effort, idempotent: kills what still runs inside, deletes the namespace (and with
    /// it the veth pair and the host route).
    pub async fn teardown(&self) {
        if self.exists().await {
            if let Ok(out) = Command::new("ip")
                .args(["netns", "pids", &self.name])
                .output()
                .await
            {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        tracing::warn!(pid, netns = %self.name, "killing a process left in the namespace");
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            if let Err(e) = ip(&["netns".into(), "del".into(), self.name.clone()]).await {
                tracing::warn!(error = %e, "removing the network namespace");
            }
        }
        // A host end left behind without its namespace (should not happen; harmless if absent).
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .output()
            .await;
    }

    /// Binds a TCP listener inside the namespace (from a short-lived thread that joins it;
    /// the socket stays in the namespace, usable from any thread).
    pub fn bind(&self, addr: SocketAddr) -> Result<tokio::net::TcpListener> {
        let path = self.path();
        let listener = std::thread::scope(|s| {
            s.spawn(|| -> Result<std::net::TcpListener> {
                let ns = File::open(&path).map_err(Error::io(format!("opening {path}")))?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::Config(format!("setns {path}: {e}")))?;
                let l = std::net::TcpListener::bind(addr)
                    .map_err(Error::io(format!("binding {addr} in {path}")))?;
                l.set_nonblocking(true)
                    .map_err(Error::io("set_nonblocking"))?;
                Ok(l)
            })
            .join()
            .map_err(|_| Error::Config("namespace thread panicked".to_owned()))?
        })?;
        tokio::net::TcpListener::from_std(listener).map_err(Error::io("registering listener"))
    }
}

async fn ip(args: &[String]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(Error::io("running ip"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("ip {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_never_address_the_host() {
        let ns = Netns {
            name: "n".into(),
            host_veth: "h0".into(),
            pod_veth: "eth0".into(),
            cluster_cidr: "10.244.0.0/16".into(),
        };
        let cmds = ns.setup_commands();
        let joined: Vec<String> = cmds.iter().map(|c| c.join(" ")).collect();
        assert_eq!(joined[0], "netns add n");
        assert!(joined.contains(&"-n n route add local 10.244.0.0/16 dev lo".to_owned()));
        assert!(joined.contains(&"-n n route add default dev eth0".to_owned()));
        assert_eq!(
            joined.last().map(String::as_str),
            Some("route add 10.244.0.0/16 dev h0")
        );
        // No address is ever added, and nothing touches forwarding or NAT.
        assert!(
            joined
                .iter()
                .all(|c| !c.contains("addr") && !c.contains("forward") && !c.contains("nat"))
        );
        // Everything outside the namespace is the host link and its one route.
        for c in &cmds {
            if c[0] != "-n" && c[0] != "netns" {
                assert!(c.contains(&"h0".to_owned()), "{c:?}");
            }
        }
    }
}
