//! The Chronik broker (empty today).
//!
//! It will hold the `chronik` binary: the Kafka wire protocol (codecs from the
//! `kafka-protocol` crate), request handling as a sans-IO layer over proto-core,
//! configuration, metrics, the admin HTTP endpoint and the CLI.
//!
//! Built by the "single-node broker" issue; the "3-node cluster" issue then runs it
//! replicated. There is no binary yet, so nothing can be mistaken for a working broker.
