//! The apiroutes operator: reconciles each `ApiRoute` into a Deployment and a headless
//! Service (plus a preview pair), scales them with an autoscaler that reaches zero, and
//! reports status.
//!
//! Pure core: [`resources`] (desired children), [`status`] (conditions).

pub mod autoscale;
pub mod controller;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reasons;
pub mod reflect;
pub mod resources;
pub mod run;
pub mod scaler;
pub mod status;
