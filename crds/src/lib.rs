//! The `ApiRoute` custom resource and the Next.js path-pattern language, shared by the
//! operator, the gateway and the CLI. Pure: no I/O, no async runtime.
//!
//! - [`pattern`]: the pattern grammar, canonical form, precedence and reference matcher.
//! - [`conflict`]: which ApiRoutes are routed when several claim the same requests;
//!   [`grant`]: which namespaces may claim which hosts and paths (`RouteGrant`).
//! - [`types`]: the `ApiRoute` resource itself; [`crd`] renders its CRD YAML.
//! - [`labels`], [`autoscale`]: contracts between the operator and the gateway.

pub mod autoscale;
pub mod conflict;
pub mod crd;
pub mod grant;
pub mod labels;
pub mod pattern;
pub mod quantity;
pub mod served;
pub mod testing;
pub mod types;

pub use grant::{RouteGrant, RouteGrantSpec};
pub use pattern::{Pattern, PatternError};
pub use types::{ApiRoute, ApiRouteSpec, ApiRouteStatus, Preview, Scaling};
