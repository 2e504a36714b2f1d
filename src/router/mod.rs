//! Traffic routers: translations of a [`crate::traffic::TrafficPlan`] into what a data plane
//! understands. They never decide; the engine does.
//!
//! - [`istio`]: Istio VirtualService (Kubernetes);
//! - [`envoy`]: pure translation into Envoy v3 clusters and routes (and the bootstrap);
//! - [`envoy_xds`]: [`envoy_xds::EnvoyRouter`], writing them as file-based xDS (standalone);
//! - [`envoy_admin`]: Envoy's admin API, to confirm Envoy serves what was written.

pub mod envoy;
pub mod envoy_admin;
pub mod envoy_xds;
pub mod istio;
