//! The conformance suite's building blocks: an in-memory node with a model disk,
//! the trace interpreter and the deterministic simulator.

pub mod interaction;
pub mod node;
pub mod sim;
