//! Traffic routers: adapters translating a [`crate::traffic::TrafficPlan`] into a data
//! plane's configuration. They never decide; the engine does.
//!
//! - [`envoy`]: pure translation into Envoy v3 clusters and routes (and the bootstrap);
//! - [`envoy_xds`]: [`envoy_xds::EnvoyRouter`], writing them as file-based xDS (standalone);
//! - [`envoy_admin`]: Envoy's admin API, to confirm Envoy serves what was written.

pub mod envoy;
pub mod envoy_admin;
pub mod envoy_xds;
