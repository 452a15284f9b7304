//! A container's environment, resolved as the kubelet does, plus `HOST`/`PORT`/`POD_IP`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

use crate::command::expand;

/// Everything a container's env may refer to, fetched beforehand.
pub struct EnvSources<'a> {
    pub pod: &'a Pod,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    pub node_name: &'a str,
    pub secrets: &'a BTreeMap<String, Secret>,
    pub config_maps: &'a BTreeMap<String, ConfigMap>,
}

/// The Secrets and ConfigMaps (names) that the pod's containers refer to.
pub fn referenced_objects(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut secrets = BTreeSet::new();
    let mut config_maps = BTreeSet::new();
    let Some(spec) = &pod.spec else {
        return (secrets, config_maps);
    };
    for c in &spec.containers {
        for e in c.env.iter().flatten() {
            if let Some(from) = &e.value_from {
                if let Some(r) = &from.secret_key_ref {
                    secrets.insert(r.name.clone());
                }
                if let Some(r) = &from.config_map_key_ref {
                    config_maps.insert(r.name.clone());
                }
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.secret_ref {
                secrets.insert(r.name.clone());
            }
            if let Some(r) = &e.config_map_ref {
                config_maps.insert(r.name.clone());
            }
        }
    }
    (secrets, config_maps)
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Some(String::from_utf8_lossy(&v.0).into_owned());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
}

fn config_map_value(cm: &ConfigMap, key: &str) -> Option<String> {
    cm.data.as_ref().and_then(|d| d.get(key)).cloned()
}

/// `metadata.labels['app']` → `app`.
fn bracket_key(path: &str, prefix: &str) -> Option<String> {
    let inner = path
        .strip_prefix(prefix)?
        .strip_prefix('[')?
        .strip_suffix(']')?;
    Some(inner.trim_matches(|c| c == '\'' || c == '"').to_owned())
}

fn field_ref(path: &str, src: &EnvSources) -> Result<String, String> {
    let meta = &src.pod.metadata;
    let spec = src.pod.spec.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => src.node_name.to_owned(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".to_owned()),
        "status.podIP" | "status.podIPs" => src.pod_ip.to_owned(),
        "status.hostIP" | "status.hostIPs" => src.host_ip.to_owned(),
        _ => {
            if let Some(key) = bracket_key(path, "metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&key))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(key) = bracket_key(path, "metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(&key))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldRef {path:?}"));
            }
        }
    };
    Ok(value)
}

/// The container's environment: the image's env, then `envFrom`, then `env` (later wins,
/// `$(VAR)` expanded against what came before), then `HOST`, `PORT` (the first
/// containerPort) and `POD_IP` unless already set. An error is the kubelet's
/// `CreateContainerConfigError` message.
pub fn container_env(
    container: &Container,
    image_env: &BTreeMap<String, String>,
    src: &EnvSources,
) -> Result<BTreeMap<String, String>, String> {
    let ns = src.pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env = image_env.clone();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        if let Some(r) = &from.config_map_ref {
            match src.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        env.insert(format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match src.secrets.get(&r.name) {
                Some(secret) => {
                    for (k, v) in secret.data.iter().flatten() {
                        env.insert(format!("{prefix}{k}"), String::from_utf8_lossy(&v.0).into());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                Some(field_ref(&f.field_path, src)?)
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional == Some(true);
                match src.secrets.get(&r.name) {
                    Some(s) => match secret_value(s, &r.key) {
                        Some(v) => Some(v),
                        None if optional => None,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            ));
                        }
                    },
                    None if optional => None,
                    None => return Err(format!("secret \"{}\" not found", r.name)),
                }
            } else if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional == Some(true);
                match src.config_maps.get(&r.name) {
                    Some(cm) => match config_map_value(cm, &r.key) {
                        Some(v) => Some(v),
                        None if optional => None,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            ));
                        }
                    },
                    None if optional => None,
                    None => return Err(format!("configmap \"{}\" not found", r.name)),
                }
            } else {
                return Err(format!(
                    "env {}: only fieldRef, secretKeyRef and configMapKeyRef are supported here",
                    var.name
                ));
            }
        } else {
            let defined = env.clone();
            Some(expand(var.value.as_deref().unwrap_or(""), &|n| {
                defined.get(n).cloned()
            }))
        };
        if let Some(value) = value {
            env.insert(var.name.clone(), value);
        }
    }
    env.entry("HOST".to_owned())
        .or_insert_with(|| src.pod_ip.to_owned());
    if let Some(port) = container.ports.iter().flatten().next() {
        env.entry("PORT".to_owned())
            .or_insert_with(|| port.container_port.to_string());
    }
    env.entry("POD_IP".to_owned())
        .or_insert_with(|| src.pod_ip.to_owned());
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"serviceAccountName": "sa", "containers": [{
                "name": "c", "image": "i",
                "ports": [{"containerPort": 8080}, {"containerPort": 9090}],
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                "env": [
                    {"name": "A", "value": "a"},
                    {"name": "B", "value": "$(A)-b-$(NOPE)"},
                    {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
                    {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "s", "key": "x", "optional": true}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "mode"}}}
                ]
            }]}
        }))
        .expect("pod")
    }

    fn objects() -> (BTreeMap<String, Secret>, BTreeMap<String, ConfigMap>) {
        let secret = Secret {
            data: Some([("password".to_owned(), ByteString(b"hunter2".to_vec()))].into()),
            ..Secret::default()
        };
        let cm = ConfigMap {
            data: Some([("mode".to_owned(), "fast".to_owned())].into()),
            ..ConfigMap::default()
        };
        (
            [("s".to_owned(), secret)].into(),
            [("cm".to_owned(), cm)].into(),
        )
    }

    fn resolve(
        pod: &Pod,
        secrets: &BTreeMap<String, Secret>,
        cms: &BTreeMap<String, ConfigMap>,
    ) -> Result<BTreeMap<String, String>, String> {
        let src = EnvSources {
            pod,
            pod_ip: "10.244.0.7",
            host_ip: "10.244.0.1",
            node_name: "local-node",
            secrets,
            config_maps: cms,
        };
        let image_env = [
            ("A".to_owned(), "image".to_owned()),
            ("X".to_owned(), "x".to_owned()),
        ]
        .into();
        let spec = pod.spec.as_ref().expect("spec");
        container_env(&spec.containers[0], &image_env, &src)
    }

    #[test]
    fn resolves_every_source() {
        let pod = pod();
        let (secrets, cms) = objects();
        let env = resolve(&pod, &secrets, &cms).expect("env");
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("A"), Some("a"));
        assert_eq!(get("X"), Some("x"));
        assert_eq!(get("B"), Some("a-b-$(NOPE)"));
        assert_eq!(get("NAME"), Some("p"));
        assert_eq!(get("NS"), Some("ns"));
        assert_eq!(get("IP"), Some("10.244.0.7"));
        assert_eq!(get("NODE"), Some("local-node"));
        assert_eq!(get("SA"), Some("sa"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("PASS"), Some("hunter2"));
        assert_eq!(get("OPT"), None);
        assert_eq!(get("MODE"), Some("fast"));
        assert_eq!(get("CM_mode"), Some("fast"));
        assert_eq!(get("HOST"), Some("10.244.0.7"));
        assert_eq!(get("PORT"), Some("8080"));
        assert_eq!(get("POD_IP"), Some("10.244.0.7"));
    }

    #[test]
    fn spec_env_wins_over_host_and_port_defaults() {
        let mut pod = pod();
        let c = &mut pod.spec.as_mut().expect("spec").containers[0];
        c.env = Some(
            serde_json::from_value(serde_json::json!([
                {"name": "HOST", "value": "0.0.0.0"}, {"name": "PORT", "value": "1"}
            ]))
            .expect("env"),
        );
        c.env_from = None;
        let env = resolve(&pod, &BTreeMap::new(), &BTreeMap::new()).expect("env");
        assert_eq!(env["HOST"], "0.0.0.0");
        assert_eq!(env["PORT"], "1");
        assert_eq!(env["POD_IP"], "10.244.0.7");
    }

    #[test]
    fn missing_references_are_config_errors() {
        let pod = pod();
        let (secrets, _) = objects();
        let err = resolve(&pod, &secrets, &BTreeMap::new()).expect_err("no configmap");
        assert_eq!(err, "configmap \"cm\" not found");
        let (_, cms) = objects();
        let secret = Secret {
            data: Some(BTreeMap::new()),
            ..Secret::default()
        };
        let secrets = [("s".to_owned(), secret)].into();
        let err = resolve(&pod, &secrets, &cms).expect_err("no key");
        assert_eq!(err, "couldn't find key password in Secret ns/s");
    }

    #[test]
    fn lists_referenced_objects() {
        let (secrets, cms) = referenced_objects(&pod());
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), ["s"]);
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), ["cm"]);
    }
}
