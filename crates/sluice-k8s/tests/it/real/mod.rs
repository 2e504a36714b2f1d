//! Tests that run real programs: `helm` and `kubectl` (offline, no API server).

mod k8s_rendered;
