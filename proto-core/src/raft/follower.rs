//! The follower's side of replication: appends, heartbeats and snapshot chunks.

use bytes::{Bytes, BytesMut};

use super::{
    Action, AppendOutcome, Entry, LogId, LogIndex, MessageBody, NodeId, Raft, Snapshot,
    SnapshotMeta,
};

/// A snapshot being received in chunks. Kept across leader retries so a transfer
/// resumes where it stopped.
#[derive(Clone, Debug)]
pub(super) struct IncomingSnapshot {
    meta: SnapshotMeta,
    data: BytesMut,
}

impl Raft {
    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        prev: LogId,
        entries: Vec<Entry>,
        commit: LogIndex,
    ) {
        if prev.index < self.log.commit() {
            // Everything up to our commit is known to match; answer with it and let
            // the leader move on (the entries may be a stale retransmission).
            let last = self.log.commit();
            self.send_after_persist(
                from,
                MessageBody::AppendResponse {
                    outcome: AppendOutcome::Accepted { last },
                },
            );
            return;
        }
        if !self.log.matches(prev) {
            let hint = self.log.find_conflict_by_term(prev.index, prev.term);
            self.send(
                from,
                MessageBody::AppendResponse {
                    outcome: AppendOutcome::Rejected {
                        index: prev.index,
                        hint,
                    },
                },
            );
            return;
        }
        let last_new = LogIndex(prev.index.0 + entries.len() as u64);
        if let Some(pos) = self.log.find_conflict(&entries) {
            let first = entries[pos].index;
            if first <= self.log.commit() {
                tracing::error!(
                    node = self.id.0,
                    index = first.0,
                    "leader sent a conflicting committed entry; ignoring"
                );
                return;
            }
            if first <= self.log.last_index() {
                self.log.truncate_from(first);
            }
            for e in entries.into_iter().skip(pos) {
                self.log.append(e);
            }
            self.mark_unwritten(first);
        }
        self.log.commit_to(commit.min(last_new));
        self.send_after_persist(
            from,
            MessageBody::AppendResponse {
                outcome: AppendOutcome::Accepted { last: last_new },
            },
        );
    }

    pub(super) fn handle_heartbeat(
        &mut self,
        from: NodeId,
        commit: LogIndex,
        round: u64,
        quiesce: bool,
    ) {
        self.log.commit_to(commit);
        self.send(from, MessageBody::HeartbeatResponse { round });
        if quiesce && self.log.last_index() == commit && self.log.persisted() == commit {
            self.quiesced = true;
        }
    }

    pub(super) fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        total: u64,
        chunk: Bytes,
    ) {
        let last = meta.last;
        if last.index <= self.log.commit() {
            self.send_after_persist(
                from,
                MessageBody::SnapshotResponse {
                    last,
                    next_offset: total,
                    done: true,
                },
            );
            return;
        }
        let same = self
            .incoming_snapshot
            .as_ref()
            .is_some_and(|s| s.meta == meta);
        if offset == 0 && !same {
            self.incoming_snapshot = Some(IncomingSnapshot {
                meta: meta.clone(),
                data: BytesMut::with_capacity(total.min(1 << 26) as usize),
            });
        }
        let Some(incoming) = self.incoming_snapshot.as_mut().filter(|s| s.meta == meta) else {
            self.send(
                from,
                MessageBody::SnapshotResponse {
                    last,
                    next_offset: 0,
                    done: false,
                },
            );
            return;
        };
        if offset != incoming.data.len() as u64 {
            let next_offset = incoming.data.len() as u64;
            self.send(
                from,
                MessageBody::SnapshotResponse {
                    last,
                    next_offset,
                    done: false,
                },
            );
            return;
        }
        incoming.data.extend_from_slice(&chunk);
        let received = incoming.data.len() as u64;
        if received < total {
            self.send(
                from,
                MessageBody::SnapshotResponse {
                    last,
                    next_offset: received,
                    done: false,
                },
            );
            return;
        }
        let Some(incoming) = self.incoming_snapshot.take() else {
            return;
        };
        if self.log.matches(last) {
            // We hold the snapshot's last entry: the log already has everything.
            self.log.commit_to(last.index);
        } else {
            self.install_snapshot(Snapshot {
                meta: incoming.meta,
                data: incoming.data.freeze(),
            });
        }
        self.send_after_persist(
            from,
            MessageBody::SnapshotResponse {
                last,
                next_offset: received,
                done: true,
            },
        );
    }

    /// Replaces the log and state machine with a snapshot from the leader.
    fn install_snapshot(&mut self, snapshot: Snapshot) {
        let last = snapshot.meta.last;
        tracing::info!(
            node = self.id.0,
            index = last.index.0,
            term = last.term.0,
            "installing snapshot"
        );
        self.log.compact_to(last);
        self.membership = snapshot.meta.membership.clone();
        self.membership_index = last.index;
        self.membership_history = vec![(last.index, self.membership.clone())];
        self.pending_write.snapshot = Some(snapshot.clone());
        self.pending_write.entries_from = None;
        self.snapshot = Some(snapshot.clone());
        self.actions.push(Action::ApplySnapshot(snapshot));
    }
}
