//! The small protocol between the gateways and the operator's autoscaler, in one place.
//!
//! - `POST /v1/demand` with a [`Demand`]: sent the moment a request is held for a route
//!   variant with no ready endpoint. The autoscaler scales that variant up from zero at
//!   once (no polling interval on the cold path).
//! - `POST /v1/load` with a [`LoadReport`]: sent by every gateway every second with the
//!   concurrency it saw per route variant during that second.
//!
//! Both are JSON; the autoscaler answers `202 Accepted` with an empty body. Gateways are
//! told apart by `gateway` so the autoscaler can sum them and forget a silent one.

use serde::{Deserialize, Serialize};

use crate::labels::Variant;

pub const DEMAND_PATH: &str = "/v1/demand";
pub const LOAD_PATH: &str = "/v1/load";

/// A route variant, as the autoscaler keys it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRef {
    pub namespace: String,
    pub name: String,
    pub variant: Variant,
}

/// "Requests are waiting for this route variant and it has no ready endpoint."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Demand {
    pub gateway: String,
    pub route: RouteRef,
    /// Requests held right now for this variant at this gateway.
    pub held: u32,
}

/// One gateway's view of the last interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    pub gateway: String,
    /// Length of the interval the figures cover, in seconds (about 1).
    pub interval_seconds: f64,
    pub routes: Vec<RouteLoad>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteLoad {
    pub route: RouteRef,
    /// Time-averaged number of requests in flight (proxied or held) during the interval.
    pub average_concurrency: f64,
    /// Most requests in flight at once during the interval.
    pub max_concurrency: u32,
    /// Requests that started during the interval.
    pub requests: u64,
    /// Requests held for activation at the end of the interval.
    pub held: u32,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wire_format_is_stable_camel_case_json() {
        let d = Demand {
            gateway: "gw-1".into(),
            route: RouteRef {
                namespace: "shop".into(),
                name: "user".into(),
                variant: Variant::Preview,
            },
            held: 3,
        };
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(
            json,
            r#"{"gateway":"gw-1","route":{"namespace":"shop","name":"user","variant":"preview"},"held":3}"#
        );
        assert_eq!(serde_json::from_str::<Demand>(&json).unwrap(), d);
    }
}
