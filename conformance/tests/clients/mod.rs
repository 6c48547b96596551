//! Shared code of the real-client compatibility tests (`tests/clients_*.rs`).

pub mod broker;
