//! Pushing a layout to a registry over the distribution API (plain HTTP: the local node's
//! registry; a TLS registry is pushed to with a tool that holds its credentials).
//!
//! The image keeps its repository and tag and changes registry: `ghcr.io/apiroutes/echo:1`
//! pushed to `10.244.255.1:5000` is `10.244.255.1:5000/apiroutes/echo:1`, which a node that
//! mirrors every registry to that address pulls as `ghcr.io/apiroutes/echo:1`.

use std::{path::Path, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, header};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use crate::{
    Error, Result,
    layout::{self, MANIFEST_TYPE},
};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

#[derive(Debug, Clone)]
pub struct Pushed {
    /// Where it is now: `REGISTRY/repository:tag`.
    pub target: String,
    pub digest: String,
    /// Blobs the registry already had.
    pub skipped: usize,
    pub uploaded: usize,
}

/// Pushes the layout in `dir` to `registry` (`host:port`).
pub async fn push(dir: &Path, registry: &str) -> Result<Pushed> {
    let layout = layout::read(dir)?;
    let repo = layout.reference.repository.clone();
    let p = Pusher {
        client: Client::builder(TokioExecutor::new()).build_http(),
        registry: registry.to_owned(),
    };
    let (mut skipped, mut uploaded) = (0, 0);
    for (digest, path) in &layout.blobs {
        if p.has_blob(&repo, digest).await? {
            skipped += 1;
            continue;
        }
        let bytes = tokio::fs::read(path).await.map_err(Error::io(path))?;
        p.upload(&repo, digest, bytes.into()).await?;
        uploaded += 1;
    }
    let tag = &layout.reference.tag;
    let url = format!("http://{registry}/v2/{repo}/manifests/{tag}");
    let req = Request::put(&url)
        .header(header::CONTENT_TYPE, MANIFEST_TYPE)
        .body(Full::new(Bytes::from(layout.manifest)));
    p.send("put the manifest", req, &[StatusCode::CREATED])
        .await?;
    Ok(Pushed {
        target: format!("{registry}/{repo}:{tag}"),
        digest: layout.manifest_digest,
        skipped,
        uploaded,
    })
}

struct Pusher {
    client: HttpClient,
    registry: String,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
}

impl Pusher {
    fn err(&self, step: &str, reason: impl Into<String>) -> Error {
        Error::Registry {
            registry: self.registry.clone(),
            step: step.to_owned(),
            reason: reason.into(),
        }
    }

    async fn has_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        let url = format!("http://{}/v2/{repo}/blobs/{digest}", self.registry);
        let req = Request::head(&url).body(Full::default());
        let a = self
            .send(
                "check a blob",
                req,
                &[StatusCode::OK, StatusCode::NOT_FOUND],
            )
            .await?;
        Ok(a.status == StatusCode::OK)
    }

    /// A monolithic upload: POST for a session, PUT the bytes with their digest.
    async fn upload(&self, repo: &str, digest: &str, bytes: Bytes) -> Result<()> {
        let url = format!("http://{}/v2/{repo}/blobs/uploads/", self.registry);
        let req = Request::post(&url).body(Full::default());
        let a = self
            .send("start an upload", req, &[StatusCode::ACCEPTED])
            .await?;
        let location = a
            .location
            .ok_or_else(|| self.err("start an upload", "202 without a Location"))?;
        // Location may be absolute or a path, and may already carry a query.
        let base = if location.starts_with('/') {
            format!("http://{}{location}", self.registry)
        } else {
            location
        };
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}digest={digest}");
        let req = Request::put(&url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(bytes));
        self.send("upload a blob", req, &[StatusCode::CREATED])
            .await?;
        Ok(())
    }

    async fn send(
        &self,
        step: &str,
        req: std::result::Result<Request<Full<Bytes>>, hyper::http::Error>,
        want: &[StatusCode],
    ) -> Result<Answer> {
        let req = req.map_err(|e| self.err(step, e.to_string()))?;
        let call = self.client.request(req);
        let res = tokio::time::timeout(Duration::from_secs(120), call)
            .await
            .map_err(|_| self.err(step, "no answer within 120 s"))?
            .map_err(|e| self.err(step, format!("{e:?}")))?;
        let status = res.status();
        let location = res
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if !want.contains(&status) {
            let body = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
            return Err(self.err(step, format!("{status}: {body}")));
        }
        Ok(Answer { status, location })
    }
}
