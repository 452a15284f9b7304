//! The apiroutes operator: reconciles each `ApiRoute` into a Deployment and a headless
//! Service (plus a preview pair), scales them with an autoscaler that reaches zero, and
//! reports status.
//!
//! - Pure core: [`resources`] (desired children), [`status`] (conditions, with the words
//!   in [`reasons`]), [`autoscale`] (the replica decision), [`leader::step`] (the Lease rule).
//! - Edges: [`controller`] (kube-runtime Controller, server-side apply; its caches are
//!   filled by `apiroutes_kit::reflect`), [`scaler`] (the gateways'
//!   push endpoint and the scale-subresource writes), [`leader`] (Lease election),
//!   [`metrics`], [`http`], and [`run`] (flags and the process).

pub mod auth;
pub mod autoscale;
pub mod cache;
pub mod controller;
pub mod error;
pub mod events;
pub mod function;
pub mod groups;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reasons;
pub mod resources;
pub mod run;
pub mod scaler;
pub mod status;
