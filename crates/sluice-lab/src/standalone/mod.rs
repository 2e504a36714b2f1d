//! Standalone mode put to work: the demo, its load generator, the rollback and fleet benchmarks.

pub mod bench;
pub mod demo;
pub mod fleet;
pub mod load;
pub mod progress;
pub mod stack;
