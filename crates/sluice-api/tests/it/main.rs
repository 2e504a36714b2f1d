//! Integration tests of `sluice-api` (all in-process).

mod api;
mod limits;
