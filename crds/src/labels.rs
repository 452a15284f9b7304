//! Names and labels shared by the operator (which sets them) and the gateway (which selects
//! on them). One home, so the two cannot drift apart.

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "apiroutes-operator";
/// On every object the operator owns.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "apiroutes-operator";
/// The ApiRoute (name) a Deployment, Service, Pod or EndpointSlice belongs to.
pub const ROUTE: &str = "apiroutes.dev/route";
/// `main` or `preview`.
pub const VARIANT: &str = "apiroutes.dev/variant";
/// Set to `true` by the operator on its own pod while it holds the leader Lease; the
/// autoscaler Service selects it so gateways reach the leader.
pub const LEADER: &str = "apiroutes.dev/leader";

/// Label selector for the EndpointSlices of operator-owned Services: the EndpointSlice
/// controller copies a Service's labels onto its slices.
pub fn owned_selector() -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE}")
}

/// Which Deployment of a route serves a request.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Main,
    Preview,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Main => "main",
            Variant::Preview => "preview",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "main" => Some(Variant::Main),
            "preview" => Some(Variant::Preview),
            _ => None,
        }
    }

    /// Name of the Deployment and Service of this variant of route `route`.
    pub fn object_name(self, route: &str) -> String {
        match self {
            Variant::Main => route.to_owned(),
            Variant::Preview => format!("{route}-preview"),
        }
    }
}
