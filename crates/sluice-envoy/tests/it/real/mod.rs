//! Tests against real processes, started on free ports of 127.0.0.1 and killed on drop.

mod ads;
mod envoy_router;
mod sticky;
