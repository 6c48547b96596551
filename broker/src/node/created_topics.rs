//! CreateTopics answers once every new partition has a leader.
//!
//! In Kafka the controller writes a new partition's leader in the same
//! records that create it, so Metadata names a leader as soon as
//! CreateTopics succeeds. Here each partition's Raft group elects itself only
//! after its vote is durable, a disk round trip later; answering at once would
//! let a client that produces or lists offsets right after creating see
//! LEADER_NOT_AVAILABLE (librdkafka's watermark query then gives up with
//! "Unknown partition"). So the answer waits for the elections, up to the
//! request's timeout (but at least [`MIN_WAIT_MS`]: librdkafka sends 0 unless
//! the application sets an operation timeout, and an election takes one
//! fsync), and then goes out regardless: the topics do exist.

use kafka_protocol::messages::{CreateTopicsResponse, ResponseKind};

use super::{Node, ReplyId};
use crate::protocol::RequestHeader;

/// The shortest wait for leaders, whatever the request's timeout.
const MIN_WAIT_MS: u64 = 1000;

/// A CreateTopics answer waiting for its partitions' leaders.
#[derive(Debug)]
pub(super) struct ParkedCreate {
    reply: ReplyId,
    header: RequestHeader,
    response: CreateTopicsResponse,
    /// The topics it created.
    topics: Vec<String>,
    deadline_ms: u64,
}

impl Node {
    /// Answers `response` now, or once the topics it created have leaders.
    pub(super) fn answer_create_topics(
        &mut self,
        reply: ReplyId,
        header: &RequestHeader,
        response: CreateTopicsResponse,
        timeout_ms: i32,
    ) {
        let topics: Vec<String> = response
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .map(|t| t.name.0.to_string())
            .collect();
        self.parked_creates.push(ParkedCreate {
            reply,
            header: header.clone(),
            response,
            topics,
            deadline_ms: self.now_ms + (timeout_ms.max(0) as u64).max(MIN_WAIT_MS),
        });
        self.answer_led_creates();
    }

    /// Answers every parked CreateTopics whose partitions all have a leader
    /// (or that ran out of time).
    pub(super) fn answer_led_creates(&mut self) {
        let now = self.now_ms;
        let (ready, waiting): (Vec<ParkedCreate>, Vec<ParkedCreate>) =
            std::mem::take(&mut self.parked_creates)
                .into_iter()
                .partition(|c| c.deadline_ms <= now || c.topics.iter().all(|t| self.led(t)));
        self.parked_creates = waiting;
        for c in ready {
            self.respond(c.reply, &c.header, ResponseKind::CreateTopics(c.response));
        }
    }

    /// Forgets the parked CreateTopics answers of a closed connection.
    pub(super) fn drop_parked_creates(&mut self, conn: u64) {
        self.parked_creates.retain(|c| c.reply.conn != conn);
    }

    /// Whether every partition of `topic` has a leader (a deleted topic counts:
    /// there is nothing left to wait for).
    fn led(&self, topic: &str) -> bool {
        self.table.topics.get(topic).is_none_or(|t| {
            t.groups.iter().enumerate().all(|(p, g)| {
                let tp = crate::store::TopicPartition {
                    topic: topic.to_string(),
                    partition: p as i32,
                };
                self.partition_view(&tp, proto_core::multiraft::GroupId(*g))
                    .leader
                    .is_some()
            })
        })
    }
}
