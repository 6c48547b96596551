//! InitProducerId: hands idempotent producers their ids.
//!
//! Ids must never repeat, not even across restarts: a reused id would make a
//! new producer's first batches look like retries of an old one's. The node
//! reserves ids a block at a time by moving the topic table's
//! `next_producer_id` forward and saving the table before it answers with any
//! id of the block (Kafka's `ProducerIdManager` does the same with blocks in
//! ZooKeeper or KRaft). A restart skips what was left of the block. In a
//! cluster the blocks come from the controller (KRaft's AllocateProducerIds):
//! while a node waits for one, InitProducerId is refused with a retriable
//! error.

use std::ops::Range;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use kafka_protocol::ResponseError;

use super::Node;

/// Producer ids reserved per table save.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// The ids of the reserved block not handed out yet.
#[derive(Debug, Default)]
pub(super) struct ProducerIds(Range<i64>);

impl ProducerIds {
    /// The block `first .. first + len` the controller gave this node.
    pub(super) fn block(first: i64, len: i64) -> ProducerIds {
        ProducerIds(first..first.saturating_add(len))
    }
}

impl Node {
    pub(super) fn init_producer_id(
        &mut self,
        req: InitProducerIdRequest,
    ) -> InitProducerIdResponse {
        let refuse = |error: ResponseError| {
            InitProducerIdResponse::default()
                .with_error_code(error.code())
                .with_producer_id((-1).into())
                .with_producer_epoch(-1)
        };
        if req.transactional_id.as_ref().is_some_and(|t| t.is_empty()) {
            return refuse(ResponseError::InvalidRequest);
        }
        if req.transactional_id.is_some() {
            // Transactions are a later issue; a fatal error tells the client
            // so instead of letting it retry forever.
            return refuse(ResponseError::TransactionalIdAuthorizationFailed);
        }
        // An idempotent producer always gets a fresh id at epoch 0, even when
        // it names its old one (Kafka does the same without a transactional id).
        match self.next_producer_id() {
            Ok(id) => InitProducerIdResponse::default()
                .with_producer_id(id.into())
                .with_producer_epoch(0),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                refuse(ResponseError::CoordinatorLoadInProgress)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reserve producer ids");
                refuse(ResponseError::CoordinatorNotAvailable)
            }
        }
    }

    fn next_producer_id(&mut self) -> std::io::Result<i64> {
        if self.producer_ids.0.is_empty() && self.cluster.is_some() {
            self.request_producer_ids();
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "waiting for a block of producer ids from the controller",
            ));
        }
        if self.producer_ids.0.is_empty() {
            let start = self.table.next_producer_id.max(0);
            let end = start + PRODUCER_ID_BLOCK;
            self.table.next_producer_id = end;
            if let Err(e) = self.store.save_topics(&self.table.encode()) {
                self.table.next_producer_id = start;
                return Err(e);
            }
            self.producer_ids = ProducerIds(start..end);
        }
        let id = self.producer_ids.0.start;
        self.producer_ids.0.start += 1;
        Ok(id)
    }
}
