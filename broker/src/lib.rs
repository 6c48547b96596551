//! The Chronik broker: the Kafka wire protocol, request handling as a sans-IO
//! layer over proto-core, configuration, metrics and the admin endpoint. The
//! `chronik` binary runs it on either driver.

pub mod admin;
pub mod config;
pub mod disk_store;
pub mod log_start;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod serve;
pub mod server;
pub mod store;
pub mod trace;
