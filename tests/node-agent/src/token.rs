//! A pod's ServiceAccount credentials: a bound token (TokenRequest) in a kubeconfig file.

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use crate::error::{Error, Result};

/// The projected service-account token the ServiceAccount admission plugin added to the pod
/// (absent when `automountServiceAccountToken` is false on the pod or its ServiceAccount):
/// `(expirationSeconds, audience)`.
pub fn projected_token(pod: &Pod) -> Option<(i64, Option<String>)> {
    let spec = pod.spec.as_ref()?;
    spec.volumes.iter().flatten().find_map(|v| {
        v.projected
            .as_ref()?
            .sources
            .iter()
            .flatten()
            .find_map(|s| {
                s.service_account_token.as_ref().map(|t| {
                    (
                        t.expiration_seconds.unwrap_or(3607),
                        t.audience.clone().filter(|a| !a.is_empty()),
                    )
                })
            })
    })
}

/// A kubeconfig for the pod: the API server through the namespace's forwarder, the
/// cluster's CA, and the token file (which clients re-read, so refreshes apply).
pub fn pod_kubeconfig(server: &str, ca_data: &str, namespace: &str, token_file: &str) -> String {
    let v = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": "pod", "user": {"tokenFile": token_file}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "pod", "namespace": namespace}}],
        "current-context": "local",
    });
    // JSON is YAML; keep it readable.
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// When to refresh: at 80% of the token's lifetime, as the kubelet does.
pub fn refresh_at(issued: Timestamp, expires: Timestamp) -> Timestamp {
    let lifetime = expires.as_second() - issued.as_second();
    Timestamp::from_second(issued.as_second() + lifetime * 4 / 5).unwrap_or(issued)
}

/// Requests a token bound to the pod (the Node authorizer allows it only for pods on this node).
pub async fn request(
    client: &kube::Client,
    pod: &Pod,
    expiration: i64,
    audience: Option<String>,
) -> Result<(String, Timestamp)> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default");
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: audience.map(|a| vec![a]),
            expiration_seconds: Some(expiration),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        }),
        ..TokenRequest::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let resp = api
        .create_token_request(sa, &PostParams::default(), &req)
        .await?;
    let status = resp
        .status
        .ok_or_else(|| Error::Config(format!("TokenRequest for {ns}/{sa} returned no status")))?;
    match (status.token, status.expiration_timestamp) {
        (Some(token), Some(expires)) => Ok((token, expires.0)),
        _ => Err(Error::Config(format!(
            "TokenRequest for {ns}/{sa} returned no token"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_admission_added_token_volume() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [], "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "kube-api-access-x", "projected": {"sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt"}}
                ]}}
            ]}
        }))
        .expect("pod");
        assert_eq!(projected_token(&pod), Some((3607, None)));
        let none: Pod =
            serde_json::from_value(serde_json::json!({"spec": {"containers": []}})).expect("pod");
        assert_eq!(projected_token(&none), None);
    }

    #[test]
    fn kubeconfig_parses_with_kube() {
        let text = pod_kubeconfig("https://127.0.0.1:6443", "Q0E=", "ns", "/state/token");
        let kc = kube::config::Kubeconfig::from_yaml(&text).expect("kubeconfig");
        let ctx = kc.contexts[0].context.as_ref().expect("context");
        assert_eq!(ctx.namespace.as_deref(), Some("ns"));
        let user = kc.auth_infos[0].auth_info.as_ref().expect("user");
        assert_eq!(user.token_file.as_deref(), Some("/state/token"));
        let cluster = kc.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
    }

    #[test]
    fn refreshes_at_eighty_percent() {
        let issued = Timestamp::from_second(1000).expect("ts");
        let expires = Timestamp::from_second(1000 + 3600).expect("ts");
        assert_eq!(refresh_at(issued, expires).as_second(), 1000 + 2880);
    }
}
