//! Standalone mode put to work: the demo, its load generator and the rollback benchmark.

pub mod bench;
pub mod demo;
pub mod load;
pub mod progress;
pub mod stack;
