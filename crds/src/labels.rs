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
/// The function (`spec.function`) a shared Deployment, its pods and the Services of its
/// routes belong to. Objects of a single-route function carry [`ROUTE`] instead.
pub const FUNCTION: &str = "apiroutes.dev/function";

/// CEL rule on `spec.function`: a DNS label starting with a letter (it is a label value,
/// the pods' hostname and part of the Deployment's name).
pub const FUNCTION_NAME_RULE: &str = "self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')";
pub const FUNCTION_NAME_MESSAGE: &str =
    "function must be a DNS label starting with a letter (a-z, 0-9 and '-', at most 63 characters)";
/// CEL rule on the ApiRoute: a shared function has no Preview Mode Deployment.
pub const FUNCTION_PREVIEW_RULE: &str = "!has(self.spec.function) || !has(self.spec.preview)";
pub const FUNCTION_PREVIEW_MESSAGE: &str =
    "preview cannot be combined with spec.function: a shared function has no preview Deployment";

/// Name of the Deployment of function `function`: `fn.<function>`. Route names have no
/// '.', so no route's own Deployment (`<route>`, `<route>-preview`) can take it.
pub fn function_object_name(function: &str) -> String {
    format!("fn.{function}")
}
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

/// Longest route name whose objects all fit: the preview variant's Service is
/// `<name>-preview`, a DNS label of at most 63 characters.
pub const MAX_ROUTE_NAME: usize = 63 - "-preview".len();

/// The rules on `metadata.name` that make a route's derived names valid and unique, as
/// `(CEL rule, message)`: the CRD enforces them at admission; [`route_name_problem`] is the
/// same rule for objects stored before it (the operator reports them) and `apiroutes check`.
pub const ROUTE_NAME_RULES: [(&str, &str); 3] = [
    (
        "self.metadata.name.size() <= 55",
        "metadata.name must be at most 55 characters: the route's Deployment, Service and labels are named after it, and '<name>-preview' must fit a 63-character DNS label",
    ),
    (
        "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "metadata.name must be a DNS label starting with a letter (a-z, 0-9 and '-', no '.'): the route's Service is named after it",
    ),
    (
        "!self.metadata.name.endsWith('-preview')",
        "metadata.name must not end in '-preview': '<route>-preview' names the objects of another route's preview variant",
    ),
];

/// The first of [`ROUTE_NAME_RULES`] that `name` breaks, as its message.
pub fn route_name_problem(name: &str) -> Option<&'static str> {
    let dns_label = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    let broken = [
        name.len() > MAX_ROUTE_NAME,
        !dns_label,
        name.ends_with("-preview"),
    ];
    broken
        .iter()
        .zip(ROUTE_NAME_RULES)
        .find_map(|(&bad, (_, message))| bad.then_some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_that_cannot_name_their_objects_are_refused() {
        assert_eq!(route_name_problem("user-by-id"), None);
        assert_eq!(route_name_problem(&"a".repeat(MAX_ROUTE_NAME)), None);
        assert_eq!(MAX_ROUTE_NAME, 55);
        for (name, rule) in [
            ("a".repeat(56), 0),
            ("1abc".to_owned(), 1),
            ("a.b".to_owned(), 1),
            ("abc-".to_owned(), 1),
            ("Abc".to_owned(), 1),
            (String::new(), 1),
            ("foo-preview".to_owned(), 2),
        ] {
            assert_eq!(
                route_name_problem(&name),
                Some(ROUTE_NAME_RULES[rule].1),
                "{name}"
            );
        }
        // Every derived object name of a valid route is a DNS label, and distinct routes
        // never derive the same name.
        for v in [Variant::Main, Variant::Preview] {
            assert!(v.object_name(&"a".repeat(55)).len() <= 63);
        }
    }
}
