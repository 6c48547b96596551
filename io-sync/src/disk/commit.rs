//! Group commit: one thread writes every pending job, then fsyncs each
//! written log once, then reports, so many partitions' and connections'
//! writes share their fsyncs.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::log::{LogEntry, LogError, PartitionLog};

/// A partition log shared between the committer and its readers.
pub type SharedLog = Arc<Mutex<PartitionLog>>;

/// Called once with the job's outcome, on the committer thread.
pub type Completion = Box<dyn FnOnce(Result<(), CommitError>) + Send>;

/// Why a write job did not complete.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CommitError {
    /// The append was refused or failed (nothing of it was written, or the
    /// log is now failed).
    #[error("write failed: {0}")]
    Write(Arc<LogError>),
    /// The job's [`BeforeAppend`] work (the Raft metadata write) failed, so
    /// nothing of the job was appended.
    #[error("writing the Raft metadata failed: {0}")]
    Meta(Arc<io::Error>),
    /// The fsync failed: the data may not be durable.
    #[error("fsync failed: {0}")]
    Sync(Arc<io::Error>),
    /// Another thread panicked while holding the log.
    #[error("the partition log's lock is poisoned")]
    Poisoned,
    /// The committer stopped before running the job.
    #[error("the group committer stopped")]
    Stopped,
}

/// Entries to append to one log, and whom to tell. A job dropped without
/// running (the committer stopped) completes with [`CommitError::Stopped`].
pub struct WriteJob {
    log: SharedLog,
    entries: Vec<LogEntry>,
    must_sync: bool,
    before: Option<BeforeAppend>,
    done: Option<Completion>,
}

/// Work the committer does once per round, after every job's append and
/// fsync and before any job completes: syncing what the jobs' `before` work
/// wrote to a shared file (the node's hard-state [`Journal`]). If it fails,
/// every job of the round fails.
///
/// [`Journal`]: super::Journal
pub type RoundBarrier = Box<dyn FnMut() -> io::Result<()> + Send>;

/// Work the committer does for a job before appending its entries: writing
/// the Raft hard state or snapshot marker that must be durable before the
/// entries it precedes, without holding up the thread that submitted it.
pub type BeforeAppend = Box<dyn FnOnce() -> io::Result<()> + Send>;

impl WriteJob {
    /// A job appending `entries` to `log`, completed once written and, if
    /// `must_sync`, fsynced.
    pub fn new(log: SharedLog, entries: Vec<LogEntry>, must_sync: bool, done: Completion) -> Self {
        WriteJob {
            log,
            entries,
            must_sync,
            before: None,
            done: Some(done),
        }
    }

    /// Runs `before` on the committer thread ahead of this job's append; if
    /// it fails, the job fails and appends nothing.
    pub fn before_append(mut self, before: BeforeAppend) -> Self {
        self.before = Some(before);
        self
    }

    fn complete(mut self, r: Result<(), CommitError>) {
        if let Some(done) = self.done.take() {
            done(r);
        }
    }
}

impl Drop for WriteJob {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(Err(CommitError::Stopped));
        }
    }
}

enum Msg {
    Job(WriteJob),
    Stop,
}

/// A cloneable way to hand jobs to the committer from any thread.
#[derive(Clone)]
pub struct CommitHandle {
    tx: Sender<Msg>,
}

impl CommitHandle {
    /// Queues a job. If the committer has stopped, the job completes at once
    /// with [`CommitError::Stopped`].
    pub fn submit(&self, job: WriteJob) {
        // A refused message is dropped here, which completes the job.
        let _ = self.tx.send(Msg::Job(job));
    }
}

/// The committer thread. Dropping it stops the thread after it has run every
/// job queued so far.
pub struct GroupCommitter {
    handle: CommitHandle,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommitter {
    /// Starts the thread; at most `max_jobs_per_round` jobs share one round of
    /// fsyncs, so completions are not held back without bound.
    pub fn start(max_jobs_per_round: usize) -> io::Result<Self> {
        Self::start_with_barrier(max_jobs_per_round, Box::new(|| Ok(())))
    }

    /// Like [`GroupCommitter::start`], running `barrier` once per round
    /// before the round's jobs complete.
    pub fn start_with_barrier(
        max_jobs_per_round: usize,
        mut barrier: RoundBarrier,
    ) -> io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let max = max_jobs_per_round.max(1);
        let thread = std::thread::Builder::new()
            .name("chronik-commit".into())
            .spawn(move || run(&rx, max, &mut barrier))?;
        Ok(GroupCommitter {
            handle: CommitHandle { tx },
            thread: Some(thread),
        })
    }

    /// A handle for submitting jobs.
    pub fn handle(&self) -> CommitHandle {
        self.handle.clone()
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        let _ = self.handle.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rx: &Receiver<Msg>, max: usize, barrier: &mut RoundBarrier) {
    let mut stopping = false;
    while let Ok(first) = rx.recv() {
        let mut jobs = Vec::new();
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                Msg::Job(j) => jobs.push(j),
                Msg::Stop => stopping = true,
            }
            if jobs.len() >= max {
                break;
            }
        }
        round(jobs, barrier);
        if stopping && rx.is_empty() {
            return;
        }
    }
}

/// Writes every job, fsyncs each log that a successful `must_sync` job
/// wrote, then completes the jobs in submission order (so a caller counting
/// completions per log sees them in the order it wrote).
fn round(mut jobs: Vec<WriteJob>, barrier: &mut RoundBarrier) {
    let key = |l: &SharedLog| Arc::as_ptr(l) as usize;
    let mut written: Vec<Result<(), CommitError>> = Vec::with_capacity(jobs.len());
    let mut to_sync: BTreeMap<usize, (SharedLog, Result<(), CommitError>)> = BTreeMap::new();
    let mut failed: BTreeMap<usize, CommitError> = BTreeMap::new();
    let mut failed_logs: BTreeMap<usize, SharedLog> = BTreeMap::new();
    for job in &mut jobs {
        // Completions count cumulatively per log: once a job of this round
        // failed, no later job of its log may succeed and vouch for it, nor
        // do its `before` work (a marker that resets the log).
        let r = match failed.get(&key(&job.log)) {
            Some(earlier) => Err(earlier.clone()),
            None => match job.before.take() {
                Some(f) => f().map_err(|e| CommitError::Meta(Arc::new(e))),
                None => Ok(()),
            }
            .and_then(|()| match job.log.lock() {
                Ok(mut log) => log
                    .append(&job.entries)
                    .map_err(|e| CommitError::Write(Arc::new(e))),
                Err(_) => Err(CommitError::Poisoned),
            }),
        };
        if let Err(e) = &r {
            failed.entry(key(&job.log)).or_insert_with(|| e.clone());
            failed_logs
                .entry(key(&job.log))
                .or_insert_with(|| job.log.clone());
        }
        if r.is_ok() && job.must_sync {
            to_sync
                .entry(key(&job.log))
                .or_insert_with(|| (job.log.clone(), Ok(())));
        }
        written.push(r);
    }
    for (log, result) in to_sync.values_mut() {
        *result = match log.lock() {
            Ok(mut l) => l.sync().map_err(|e| CommitError::Sync(Arc::new(e))),
            Err(_) => Err(CommitError::Poisoned),
        };
    }
    // The jobs before a failure were synced above; from now on the log
    // refuses writes until it is reopened.
    for (k, log) in &failed_logs {
        if let (Ok(mut l), Some(e)) = (log.lock(), failed.get(k)) {
            l.mark_failed(e.to_string());
        }
    }
    tracing::trace!(
        jobs = jobs.len(),
        fsyncs = to_sync.len(),
        "group commit round"
    );
    let shared = barrier().map_err(|e| CommitError::Sync(Arc::new(e)));
    for (job, r) in jobs.into_iter().zip(written) {
        let r = match (r, job.must_sync) {
            (Ok(()), true) => to_sync[&key(&job.log)].1.clone(),
            (r, _) => r,
        };
        job.complete(r.and_then(|()| shared.clone()));
    }
}
