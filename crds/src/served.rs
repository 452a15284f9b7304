//! Whether the API server serves a resource at all: an optional CRD (RouteGrant) may not be
//! installed, and the gateway and the operator then run without it.

use kube::Api;

/// Whether the API server serves `api`'s resource (a missing CRD answers 404). Other errors
/// count as served: the watch that follows retries them.
pub async fn resource_served<K>(api: &Api<K>) -> bool
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    !matches!(
        api.list_metadata(&kube::api::ListParams::default().limit(1)).await,
        Err(kube::Error::Api(s)) if s.code == 404
    )
}
