//! Integration tests of `sluice-k8s`: in-process, except `real::` (real `helm` and `kubectl`).

mod crd;
mod gateway_schema;
mod istio_schema;
mod k8s_controller;
mod k8s_gateway;
mod k8s_golden;
mod k8s_manifests;
mod k8s_objects;
mod k8s_owned_route;
mod k8s_wiring;
mod real;
