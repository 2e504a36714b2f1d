//! sluice's Envoy adapter: what the standalone mode's data plane understands.
//!
//! - [`translate`]: the pure translation of a `TrafficPlan` into Envoy v3 clusters and routes
//!   (and the bootstrap that points Envoy at sluice's xDS directory);
//! - [`xds`]: [`xds::EnvoyRouter`], the `TrafficRouter` that feeds them to Envoy (ADS or files);
//! - [`ads`]: the delta ADS gRPC server and the few Envoy protobuf messages it needs;
//! - [`admin`]: Envoy's admin API, to confirm Envoy serves what was written.
//!
//! Routers translate; they never decide (the engine in `sluice-core` does).

pub mod admin;
pub mod ads;
pub mod translate;
pub mod xds;
