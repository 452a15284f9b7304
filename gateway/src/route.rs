//! What the gateway keeps of an ApiRoute. A decoded ApiRoute is over 800 bytes before any
//! of its strings (k8s-openapi's `ObjectMeta` alone is 360), most of it fields the gateway
//! never reads; at 10,000 routes the watch's store of them was the largest part of the
//! process after the table. A [`RouteRecord`] keeps only what routing, the conflict and
//! grant rules ([`Claimant`]), the owner-chain check and the readiness probe read.

use std::sync::Arc;

use apiroutes_crds::{ApiRoute, conflict::Claimant};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

#[derive(Clone, Debug, PartialEq)]
pub struct RouteRecord {
    /// `namespace/name`.
    key: Arc<str>,
    /// Where the name starts in `key`.
    name_at: u32,
    pub uid: Option<Box<str>>,
    pub created: Option<Time>,
    /// `spec.path`.
    pub path: Box<str>,
    /// `spec.host`, as written.
    pub host: Option<Box<str>>,
    /// `spec.methods`.
    pub methods: Option<Box<[String]>>,
    /// `spec.timeoutSeconds`.
    pub timeout_seconds: i32,
    /// `spec.bodyLimit` in bytes; `None` when it does not parse.
    pub body_limit: Option<u64>,
    /// `spec.trailingSlash`.
    pub trailing_slash: bool,
    /// `spec.readinessPath`: the gateway probes starting endpoints with it.
    pub readiness_path: Option<Box<str>>,
    /// `spec.preview` is set: the route has a preview variant.
    pub preview: bool,
}

impl RouteRecord {
    /// `namespace/name`, shared with the table's entry.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// A new shared record of `route`.
    pub fn shared(route: &ApiRoute) -> Arc<Self> {
        Arc::new(Self::from(route))
    }
}

impl From<&ApiRoute> for RouteRecord {
    fn from(route: &ApiRoute) -> Self {
        let key = route.key();
        let name_at = u32::try_from(Claimant::namespace(route).len() + 1).unwrap_or(u32::MAX);
        let spec = &route.spec;
        RouteRecord {
            key: key.into(),
            name_at,
            uid: route.metadata.uid.as_deref().map(Into::into),
            created: route.metadata.creation_timestamp.clone(),
            path: spec.path.as_str().into(),
            host: spec.host.as_deref().map(Into::into),
            methods: spec.methods.clone().map(Vec::into_boxed_slice),
            timeout_seconds: spec.timeout_seconds,
            body_limit: spec.body_limit_bytes(),
            trailing_slash: spec.trailing_slash,
            readiness_path: spec.readiness_path.as_deref().map(Into::into),
            preview: spec.preview.is_some(),
        }
    }
}

impl Claimant for RouteRecord {
    fn namespace(&self) -> &str {
        let end = (self.name_at as usize).saturating_sub(1);
        self.key.get(..end).unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.key.get(self.name_at as usize..).unwrap_or_default()
    }
    fn created(&self) -> Option<&Time> {
        self.created.as_ref()
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    fn methods(&self) -> Option<&[String]> {
        self.methods.as_deref()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use apiroutes_crds::{
        ApiRoute,
        conflict::{Claimant, admit},
        testing::route,
    };

    use super::*;

    fn full() -> ApiRoute {
        let mut r = route("users", "/api/users/[id]")
            .namespace("shop")
            .created(7)
            .methods(&["GET", "POST"]);
        r.metadata.uid = Some("u-1".into());
        r.spec.host = Some("Shop.Example".into());
        r.spec.timeout_seconds = 12;
        r.spec.body_limit = "2Ki".into();
        r.spec.trailing_slash = true;
        r.spec.readiness_path = Some("/api/health".into());
        r
    }

    #[test]
    fn keeps_what_the_gateway_reads() {
        let r = full();
        let rec = RouteRecord::from(&r);
        assert_eq!(&**rec.key(), "shop/users");
        assert_eq!((rec.namespace(), rec.name()), ("shop", "users"));
        assert_eq!(rec.uid.as_deref(), Some("u-1"));
        assert_eq!(rec.created(), Claimant::created(&r));
        assert_eq!(rec.path(), "/api/users/[id]");
        assert_eq!(rec.host(), Some("Shop.Example"));
        assert_eq!(rec.methods(), Claimant::methods(&r));
        assert_eq!(rec.timeout_seconds, 12);
        assert_eq!(rec.body_limit, Some(2048));
        assert!(rec.trailing_slash && !rec.preview);
        assert_eq!(rec.readiness_path.as_deref(), Some("/api/health"));
    }

    #[test]
    fn a_record_is_admitted_as_its_route_is() {
        let a = full();
        let mut b = full().created(9);
        b.metadata.name = Some("later".into());
        let mut c = route("other", "/api/users/[slug]")
            .namespace("shop")
            .created(3);
        c.spec.host = Some("shop.example".into());
        let routes = [a, b, c];
        let records: Vec<RouteRecord> = routes.iter().map(RouteRecord::from).collect();
        assert_eq!(admit(&records), admit(&routes));
    }
}
