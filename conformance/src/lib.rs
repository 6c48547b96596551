//! The conformance suite's building blocks: an in-memory node with a model disk,
//! the trace interpreters (one datadriven format, one interpreter per engine),
//! the deterministic simulator, and what real-process tests need to start a
//! broker.

pub mod assign_trace;
pub mod datadriven;
pub mod group_trace;
pub mod interaction;
pub mod isr_trace;
pub mod launch;
pub mod metadata_trace;
pub mod mini_client;
pub mod node;
pub mod node_sim;
pub mod sim;
