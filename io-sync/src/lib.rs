//! The blocking driver, and what both drivers share.
//!
//! - [`frame`]: cutting a Kafka byte stream into request frames, with the
//!   size prefix checked before anything is buffered for it.
//! - [`host`]: the contract between a driver and the application it runs (the
//!   broker), and the node loop thread that feeds it events one at a time.
//! - [`net`]: the blocking network driver: one `mio` poll thread for every
//!   socket, handing frames to the node loop over `crossbeam` channels.
//! - [`disk`]: the blocking disk layer both drivers use: segment files,
//!   indexes, fsync and group commit.
//! - [`peer`]: the inter-broker (Raft) transport on blocking threads, and the
//!   configuration, events and errors both drivers' transports share.
//!
//! It decides nothing: the host (and below it proto-core) does.

pub mod disk;
pub mod frame;
pub mod host;
pub mod net;
pub mod peer;
