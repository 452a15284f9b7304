//! The Kubernetes client of a process, built one way for every component.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// The client configuration: from the kubeconfig file `kubeconfig` (its current context)
/// when given; else inferred as kube does it: `$KUBECONFIG` or `~/.kube/config`, then the
/// in-cluster ServiceAccount.
pub async fn config(kubeconfig: Option<&Path>) -> Result<kube::Config, kube::Error> {
    match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)?;
            Ok(kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?)
        }
        None => kube::Config::infer()
            .await
            .map_err(kube::Error::InferConfig),
    }
}

/// A client for [`config`].
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, kube::Error> {
    kube::Client::try_from(config(kubeconfig).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kubeconfig_file_is_read_as_given() {
        let dir = std::env::temp_dir().join(format!("apiroutes-kit-kc-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("config");
        let yaml = "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster: { server: \"https://127.0.0.1:6443\" }\ncontexts:\n- name: c\n  context: { cluster: k, user: u, namespace: team-a }\nusers:\n- name: u\n  user: { token: t }\n";
        let written = std::fs::write(&path, yaml);
        assert!(written.is_ok(), "{written:?}");
        let config = config(Some(&path)).await;
        let _ = std::fs::remove_dir_all(&dir);
        let config = config.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(config.default_namespace, "team-a");
        assert!(
            super::config(Some(Path::new("/nonexistent/kubeconfig")))
                .await
                .is_err()
        );
    }
}
