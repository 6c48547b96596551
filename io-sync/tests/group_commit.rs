//! The group committer: jobs complete only once written and, if asked,
//! fsynced; errors reach the job's completion.

mod common;

use std::sync::{Arc, Mutex};

use common::data_batch;
use crossbeam_channel::unbounded;
use io_sync::disk::{
    CommitError, EntryPayload, GroupCommitter, LogConfig, LogEntry, PartitionLog, SharedLog,
    WriteJob,
};

fn open(dir: &std::path::Path) -> SharedLog {
    Arc::new(Mutex::new(
        PartitionLog::open(dir, LogConfig::default()).unwrap().0,
    ))
}

fn entry(raft_index: u64, offset: i64) -> Vec<LogEntry> {
    vec![LogEntry {
        raft_index,
        term: 1,
        payload: EntryPayload::Data(data_batch(offset, 1, 1, 0)),
    }]
}

#[test]
fn jobs_across_logs_complete_in_order_with_their_outcome() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(d1.path()), open(d2.path()));
    let committer = GroupCommitter::start(64).unwrap();
    let handle = committer.handle();
    let (tx, rx) = unbounded();
    for i in 0..50u64 {
        for (name, log) in [("a", &a), ("b", &b)] {
            let tx = tx.clone();
            let done =
                Box::new(move |r: Result<(), CommitError>| tx.send((name, i, r.is_ok())).unwrap());
            handle.submit(WriteJob::new(
                log.clone(),
                entry(i + 1, i as i64),
                i % 3 == 0,
                done,
            ));
        }
    }
    // Index 99 does not follow index 50: this job alone fails.
    let tx2 = tx.clone();
    handle.submit(WriteJob::new(
        a.clone(),
        entry(99, 50),
        true,
        Box::new(move |r| {
            tx2.send(("bad", 0, matches!(r, Err(CommitError::Write(_)))))
                .unwrap()
        }),
    ));
    drop(tx);
    let got: Vec<_> = rx.iter().take(101).collect();
    assert!(got.iter().all(|&(_, _, ok)| ok), "{got:?}");
    let a_order: Vec<u64> = got.iter().filter(|g| g.0 == "a").map(|g| g.1).collect();
    assert_eq!(a_order, (0..50).collect::<Vec<_>>());
    assert_eq!(got.last().unwrap().0, "bad");
    assert_eq!(a.lock().unwrap().next_offset(), 50);
    assert_eq!(b.lock().unwrap().last_raft_index(), 50);
    drop(committer);
    // Everything was written to the files: a reopen sees it.
    drop(a);
    assert_eq!(
        PartitionLog::open(d1.path(), LogConfig::default())
            .unwrap()
            .0
            .next_offset(),
        50
    );
}

#[test]
fn a_job_submitted_after_stop_completes_as_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let committer = GroupCommitter::start(8).unwrap();
    let handle = committer.handle();
    drop(committer);
    let (tx, rx) = unbounded();
    handle.submit(WriteJob::new(
        log.clone(),
        entry(1, 0),
        true,
        Box::new(move |r| tx.send(matches!(r, Err(CommitError::Stopped))).unwrap()),
    ));
    assert!(rx.recv().unwrap(), "completed as Stopped");
    assert_eq!(log.lock().unwrap().last_raft_index(), 0);
}

#[test]
fn before_append_work_runs_first_and_its_failure_fails_every_later_job() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let committer = GroupCommitter::start(8).unwrap();
    let handle = committer.handle();
    let (tx, rx) = unbounded();
    // The first job's work sees the log still empty: it runs before the append.
    let seen = log.clone();
    let saw = Arc::new(Mutex::new(None));
    let saw_in = saw.clone();
    let tx1 = tx.clone();
    handle.submit(
        WriteJob::new(
            log.clone(),
            entry(1, 0),
            true,
            Box::new(move |r| tx1.send(r.is_ok()).unwrap()),
        )
        .before_append(Box::new(move || {
            *saw_in.lock().unwrap() = Some(seen.lock().unwrap().last_raft_index());
            Ok(())
        })),
    );
    // The second job's work fails: the job fails and appends nothing.
    let tx2 = tx.clone();
    handle.submit(
        WriteJob::new(
            log.clone(),
            entry(2, 1),
            true,
            Box::new(move |r| tx2.send(matches!(r, Err(CommitError::Meta(_)))).unwrap()),
        )
        .before_append(Box::new(|| Err(std::io::Error::other("disk full")))),
    );
    // A later job of the same log fails too: its completion would otherwise
    // vouch for the failed one (completions are cumulative per log).
    let tx3 = tx.clone();
    handle.submit(WriteJob::new(
        log.clone(),
        Vec::new(),
        true,
        Box::new(move |r| tx3.send(r.is_err()).unwrap()),
    ));
    drop(tx);
    let got: Vec<bool> = rx.iter().take(3).collect();
    assert_eq!(got, [true, true, true]);
    assert_eq!(*saw.lock().unwrap(), Some(0));
    assert_eq!(log.lock().unwrap().last_raft_index(), 1);
}
