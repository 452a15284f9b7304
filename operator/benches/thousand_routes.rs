//! How long the operator takes to bring N ApiRoutes (default 1,000) to `Accepted` with their
//! Deployments created, on a real API server, and the operator's memory at that point.
//!
//!     APIROUTES_KUBECONFIG=DIR/kubeconfig cargo bench -p apiroutes-operator --bench thousand_routes
//!
//! Prints figures; skipped (with a message) without APIROUTES_KUBECONFIG. `BENCH_ROUTES=N`
//! changes the count; `BENCH_WRAP` runs the operator under a profiler (see below).

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use apiroutes_crds::ApiRoute;
use futures::{StreamExt, stream};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Namespace},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces): utime and stime are the
    // 12th and 13th, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(kubeconfig) = std::env::var("APIROUTES_KUBECONFIG") else {
        println!("thousand_routes: skipped (APIROUTES_KUBECONFIG is not set)");
        return Ok(());
    };
    let n: usize = std::env::var("BENCH_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let kc = Kubeconfig::read_from(&kubeconfig)?;
    let client = Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?,
    )?;

    for yaml in [
        include_str!("../../crds/apiroutes.dev_apiroutes.yaml"),
        include_str!("../../crds/apiroutes.dev_routegrants.yaml"),
    ] {
        let crd: CustomResourceDefinition = serde_yaml::from_str(yaml)?;
        Api::<CustomResourceDefinition>::all(client.clone())
            .patch(
                &crd.name_any(),
                &PatchParams::apply("apiroutes-bench").force(),
                &Patch::Apply(&crd),
            )
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let ns = format!("op-bench-{}", std::process::id());
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    let free = || std::net::TcpListener::bind("127.0.0.1:0").map(|l| l.local_addr());
    let (admin, autoscaler) = (free()??, free()??);
    // `BENCH_WRAP="heaptrack -o FILE"` runs the operator under a profiler (the figures are
    // then the wrapper's).
    let operator = env!("CARGO_BIN_EXE_apiroutes-operator");
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let mut argv: Vec<&str> = wrap.split_whitespace().collect();
    argv.push(operator);
    let mut cmd = Command::new(argv[0]);
    if !wrap.is_empty() {
        // Its own process group: the wrapper and the operator are stopped together, with
        // SIGTERM so the profiler writes its data.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    let mut child = cmd
        .args(&argv[1..])
        .args(["--kubeconfig", &kubeconfig, "--namespace", &ns])
        .args([
            "--admin-listen",
            &admin.to_string(),
            "--autoscaler-listen",
            &autoscaler.to_string(),
        ])
        .args([
            "--lease-name",
            &format!("bench-{ns}"),
            "--lease-namespace",
            &ns,
        ])
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .spawn()?;
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kib(pid, "VmRSS:").unwrap_or(0);

    let routes: Api<ApiRoute> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let start = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let routes = routes.clone();
            async move {
                let r: ApiRoute = serde_json::from_value(json!({
                    "apiVersion": "apiroutes.dev/v1alpha1", "kind": "ApiRoute",
                    "metadata": {"name": format!("r{i}")},
                    "spec": {"path": format!("/api/bench/r{i}/[id]"), "image": "echo:1"}
                }))
                .expect("fixture");
                if let Err(e) = routes.create(&PostParams::default(), &r).await {
                    eprintln!("create r{i}: {e}");
                }
            }
        })
        .await;
    let created = start.elapsed();

    let deadline = start + Duration::from_secs(1200);
    let (mut accepted, mut with_deployment) = (0, 0);
    while Instant::now() < deadline {
        let list = routes.list(&ListParams::default()).await?;
        accepted = list
            .items
            .iter()
            .filter(|r| {
                r.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Accepted" && c.status == "True")
                })
            })
            .count();
        with_deployment = deployments
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len();
        if accepted >= n && with_deployment >= n {
            break;
        }
        // Listing every route is itself load on the API server: less often for many.
        tokio::time::sleep(Duration::from_millis((n as u64 / 10).max(250))).await;
    }
    let done = start.elapsed();
    let rss = rss_kib(pid, "VmRSS:").unwrap_or(0);
    let cpu = cpu_seconds(pid);
    let hwm = rss_kib(pid, "VmHWM:").unwrap_or(0);
    println!(
        "thousand_routes: {n} ApiRoutes created by the client in {:.1} s; {accepted} Accepted and {with_deployment} Deployments after {:.1} s, {:.1} s after the last create",
        created.as_secs_f64(),
        done.as_secs_f64(),
        done.saturating_sub(created).as_secs_f64()
    );
    println!("thousand_routes: operator CPU {cpu:.1} s (user + system) until then");
    println!(
        "thousand_routes: operator RSS {:.1} MiB idle before, {:.1} MiB at that point (peak {:.1} MiB)",
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    if wrap.is_empty() {
        let _ = child.kill();
    } else {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{pid}")])
            .status();
    }
    let _ = child.wait();
    let _ = Command::new("kubectl")
        .args([
            "--kubeconfig",
            &kubeconfig,
            "delete",
            "namespace",
            &ns,
            "--wait=false",
        ])
        .stdout(Stdio::null())
        .status();
    Ok(())
}
