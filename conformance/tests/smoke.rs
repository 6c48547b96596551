use bytes::Bytes;
use conformance::node::Node;
use proto_core::raft::{Config, Event, NodeId, Restored, Role};

fn cluster(n: u64) -> Vec<Node> {
    (1..=n)
        .map(|id| {
            Node::new(
                Config::new(NodeId(id)),
                Restored::fresh((1..=n).map(NodeId)),
            )
            .unwrap()
        })
        .collect()
}

fn stabilize(nodes: &mut [Node]) {
    for _ in 0..1000 {
        let mut busy = false;
        for i in 0..nodes.len() {
            if !nodes[i].unpersisted.is_empty() {
                nodes[i].persist_all();
                busy = true;
            }
            let out = std::mem::take(&mut nodes[i].outbox);
            for m in out {
                busy = true;
                let to = (m.to.0 - 1) as usize;
                nodes[to].step(Event::Message(m)).unwrap();
            }
        }
        if !busy {
            return;
        }
    }
    panic!("no fixed point");
}

#[test]
fn three_nodes_elect_and_replicate() {
    let mut nodes = cluster(3);
    nodes[0].step(Event::Campaign).unwrap();
    stabilize(&mut nodes);
    assert_eq!(nodes[0].raft.role(), Role::Leader);
    nodes[0]
        .step(Event::Propose(vec![
            Bytes::from_static(b"a"),
            Bytes::from_static(b"b"),
        ]))
        .unwrap();
    stabilize(&mut nodes);
    for n in &nodes {
        assert_eq!(
            n.applied,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
    }
    // ticks drive heartbeats and keep the leader
    for _ in 0..50 {
        for n in nodes.iter_mut() {
            n.step(Event::Tick).unwrap();
        }
        stabilize(&mut nodes);
    }
    assert_eq!(nodes[0].raft.role(), Role::Leader);
}
