//! The Node object: registration, status heartbeats and the Lease in kube-node-lease.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;

use crate::error::Result;

pub const LEASE_SECONDS: i32 = 40;

#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub pod_cidr: String,
    pub internal_ip: String,
    pub cpus: usize,
    pub memory_kib: u64,
    pub max_pods: u32,
}

pub fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(4 * 1024 * 1024)
}

pub fn desired_node(info: &NodeInfo) -> Node {
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", info.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", std::env::consts::ARCH),
        ("node.apiroutes.dev/local", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(info.name.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(info.pod_cidr.clone()),
            pod_cidrs: Some(vec![info.pod_cidr.clone()]),
            ..NodeSpec::default()
        }),
        status: None,
    }
}

/// The status a heartbeat sends; `since` is when the agent became Ready.
pub fn node_status(info: &NodeInfo, since: Timestamp, now: Timestamp) -> NodeStatus {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", info.cpus.to_string()),
        ("memory", format!("{}Ki", info.memory_kib)),
        ("pods", info.max_pods.to_string()),
        ("ephemeral-storage", "100Gi".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v)))
    .collect();
    let cond = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(since)),
    };
    NodeStatus {
        conditions: Some(vec![
            cond(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "local node agent",
            ),
            cond(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "local node agent",
            ),
            cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "local node agent",
            ),
            cond(
                "Ready",
                "True",
                "KubeletReady",
                "apiroutes-node-agent is posting ready status",
            ),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_owned(),
                address: info.internal_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".to_owned(),
                address: info.name.clone(),
            },
        ]),
        allocatable: Some(resources.clone()),
        capacity: Some(resources),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH.to_owned(),
            operating_system: "linux".to_owned(),
            os_image: "apiroutes local node".to_owned(),
            kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            kubelet_version: "v1.36.3".to_owned(),
            container_runtime_version: "process://apiroutes-node-agent".to_owned(),
            machine_id: "apiroutes-local".to_owned(),
            system_uuid: "apiroutes-local".to_owned(),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// Creates the Node unless it exists (a restart keeps it, as the kubelet does).
pub async fn register(client: &kube::Client, info: &NodeInfo) -> Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    match api
        .create(&PostParams::default(), &desired_node(info))
        .await
    {
        Ok(node) => Ok(node),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(api.get(&info.name).await?),
        Err(e) => Err(e.into()),
    }
}

pub async fn heartbeat(
    client: &kube::Client,
    info: &NodeInfo,
    node_uid: &str,
    since: Timestamp,
) -> Result<()> {
    let now = Timestamp::now();
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({ "status": node_status(info, since, now) });
    nodes
        .patch_status(
            &info.name,
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(info.name.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Node".to_owned(),
                name: info.name.clone(),
                uid: node_uid.to_owned(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(info.name.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    };
    let pp = PatchParams::apply("apiroutes-node-agent").force();
    leases.patch(&info.name, &pp, &Patch::Apply(lease)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_ready_with_resources_and_address() {
        let info = NodeInfo {
            name: "local-node".into(),
            pod_cidr: "10.244.0.0/24".into(),
            internal_ip: "10.244.0.1".into(),
            cpus: 2,
            memory_kib: 1024,
            max_pods: 110,
        };
        let t = Timestamp::from_second(1_800_000_000).expect("ts");
        let s = node_status(&info, t, t);
        let ready = s
            .conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .expect("ready");
        assert_eq!(ready.status, "True");
        assert_eq!(s.capacity.as_ref().map(|c| c["cpu"].0.as_str()), Some("2"));
        assert_eq!(
            s.allocatable.as_ref().map(|c| c["memory"].0.as_str()),
            Some("1024Ki")
        );
        let addrs = s.addresses.as_ref().expect("addresses");
        assert_eq!(addrs[0].address, "10.244.0.1");
        let node = desired_node(&info);
        assert_eq!(
            node.spec.and_then(|s| s.pod_cidr).as_deref(),
            Some("10.244.0.0/24")
        );
    }
}
