//! What both drivers share above the sockets: the host contract and the node
//! loop.
//!
//! A [`Host`] is the sans-IO application (the broker) plus the blocking work it
//! owns (its disk layer). The node loop is one thread that owns the host and
//! feeds it, one event at a time, the frames the driver's connections read,
//! the connections that closed, ticks, and wake-ups from other threads (disk
//! completions). What the host answers goes back to the driver through
//! [`Connections`]. The two drivers differ only in how they move bytes between
//! sockets and this loop, so a cluster can mix them.

use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

/// A connection number and a request's place in that connection's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// The connection, numbered by the driver.
    pub conn: u64,
    /// The request's sequence number on the connection, from 0.
    pub seq: u64,
}

/// What the host wants done with one connection.
#[derive(Debug)]
pub enum HostOutput {
    /// The answer for `slot`: a whole frame, or `None` for a request that gets
    /// no answer (Kafka's acks=0), which still frees its place in the order.
    Respond {
        /// The request answered.
        slot: Slot,
        /// The frame to write, size prefix included.
        frame: Option<Bytes>,
    },
    /// Close the connection (after writing what is already answered).
    Close {
        /// The connection.
        conn: u64,
    },
}

/// The application a driver runs.
pub trait Host: Send + 'static {
    /// A connection opened from `peer`.
    fn on_opened(&mut self, now: Instant, conn: u64, peer: std::net::SocketAddr);
    /// One whole frame (without its size prefix) arrived on a connection.
    fn on_frame(&mut self, now: Instant, slot: Slot, frame: Bytes);
    /// A connection closed.
    fn on_closed(&mut self, now: Instant, conn: u64);
    /// The tick interval passed.
    fn on_tick(&mut self, now: Instant);
    /// The peer transport reported something (a frame from another broker,
    /// a link that came up or went down).
    fn on_peer(&mut self, now: Instant, event: crate::peer::PeerEvent);
    /// Another thread called the [`Waker`]: collect what it finished.
    fn on_wake(&mut self, now: Instant);
    /// What the host wants done, in order.
    fn take_outputs(&mut self) -> Vec<HostOutput>;
    /// How often [`Host::on_tick`] must run.
    fn tick_interval(&self) -> Duration;
    /// The largest frame a connection may send; larger ones close it.
    fn max_frame_bytes(&self) -> usize;
    /// Called once when the loop stops: flush and sync what must survive.
    fn on_shutdown(&mut self);
}

/// The driver's side of the loop: where answers go.
pub trait Connections: Send + 'static {
    /// Delivers one output to its connection.
    fn deliver(&mut self, output: HostOutput);
}

/// Events the loop receives.
#[derive(Debug)]
pub enum LoopEvent {
    /// A client connected from `peer` (DescribeGroups reports it as the
    /// member's host).
    Opened {
        /// The connection.
        conn: u64,
        /// The client's address.
        peer: std::net::SocketAddr,
    },
    /// A frame arrived.
    Frame {
        /// Where its answer goes.
        slot: Slot,
        /// The frame, without its size prefix.
        frame: Bytes,
    },
    /// A connection closed.
    Closed {
        /// The connection.
        conn: u64,
    },
    /// The peer transport reported something.
    Peer(crate::peer::PeerEvent),
    /// Some other thread has finished work for the host.
    Wake,
    /// Stop the loop.
    Shutdown,
}

/// A cheap handle other threads use to send the loop events.
#[derive(Clone, Debug)]
pub struct LoopHandle {
    tx: Sender<LoopEvent>,
}

impl LoopHandle {
    /// Sends `event`; false if the loop has stopped.
    pub fn send(&self, event: LoopEvent) -> bool {
        self.tx.send(event).is_ok()
    }

    /// A waker for threads that finish host work (the disk layer).
    pub fn waker(&self) -> Waker {
        Waker {
            tx: self.tx.clone(),
        }
    }
}

/// Wakes the loop so it calls [`Host::on_wake`].
#[derive(Clone, Debug)]
pub struct Waker {
    tx: Sender<LoopEvent>,
}

impl Waker {
    /// Asks the loop to collect finished work.
    pub fn wake(&self) {
        let _ = self.tx.send(LoopEvent::Wake);
    }
}

/// The node loop's end of its channel.
pub type EventReceiver = Receiver<LoopEvent>;

/// Creates the loop's channel; the host can be built with the handle's waker
/// before [`run_loop`] starts.
pub fn channel() -> (LoopHandle, Receiver<LoopEvent>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (LoopHandle { tx }, rx)
}

/// Runs the node loop until [`LoopEvent::Shutdown`] or every handle is gone.
pub fn run_loop<H: Host, C: Connections>(mut host: H, events: Receiver<LoopEvent>, mut conns: C) {
    let interval = host.tick_interval();
    let mut next_tick = Instant::now() + interval;
    loop {
        let now = Instant::now();
        if now >= next_tick {
            host.on_tick(now);
            next_tick += interval;
            if next_tick < now {
                // We fell behind (a long pause): skip the missed ticks rather
                // than firing a burst of them.
                next_tick = now + interval;
            }
        } else {
            match events.recv_timeout(next_tick - now) {
                Ok(LoopEvent::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(event) => {
                    handle(&mut host, event);
                    // Take whatever else is queued before answering: one batch
                    // of work, one round of outputs.
                    let mut stop = false;
                    for _ in 0..1024 {
                        match events.try_recv() {
                            Ok(LoopEvent::Shutdown) => {
                                stop = true;
                                break;
                            }
                            Ok(e) => handle(&mut host, e),
                            Err(_) => break,
                        }
                    }
                    if stop {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        for out in host.take_outputs() {
            conns.deliver(out);
        }
    }
    host.on_shutdown();
    for out in host.take_outputs() {
        conns.deliver(out);
    }
}

fn handle<H: Host>(host: &mut H, event: LoopEvent) {
    let now = Instant::now();
    match event {
        LoopEvent::Opened { conn, peer } => host.on_opened(now, conn, peer),
        LoopEvent::Frame { slot, frame } => host.on_frame(now, slot, frame),
        LoopEvent::Closed { conn } => host.on_closed(now, conn),
        LoopEvent::Wake => host.on_wake(now),
        LoopEvent::Peer(event) => host.on_peer(now, event),
        LoopEvent::Shutdown => {}
    }
}

/// Puts answers back in request order for one connection: the node answers a
/// later request first when an earlier one waits (a produce with acks=all
/// behind a metadata request), but Kafka clients match answers by order.
#[derive(Debug, Default)]
pub struct ReplyOrder {
    next: u64,
    ready: std::collections::BTreeMap<u64, Option<Bytes>>,
}

impl ReplyOrder {
    /// Records the answer for `seq`.
    pub fn answered(&mut self, seq: u64, frame: Option<Bytes>) {
        self.ready.insert(seq, frame);
    }

    /// The answers that can be written now, in order.
    pub fn writable(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(frame) = self.ready.remove(&self.next) {
            self.next += 1;
            out.extend(frame);
        }
        out
    }

    /// How many requests have had their answer written (or skipped), in order:
    /// a reader may run ahead of this by a bounded number.
    pub fn released(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_leave_in_request_order() {
        let mut order = ReplyOrder::default();
        order.answered(1, Some(Bytes::from_static(b"b")));
        assert!(order.writable().is_empty());
        order.answered(0, None);
        order.answered(2, Some(Bytes::from_static(b"c")));
        assert_eq!(
            order.writable(),
            vec![Bytes::from_static(b"b"), Bytes::from_static(b"c")]
        );
        assert_eq!(order.released(), 3);
    }
}
