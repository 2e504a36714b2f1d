//! Traffic routers: translations of a [`crate::traffic::TrafficPlan`] into what a data plane
//! understands. They never decide; the engine does.

pub mod istio;
