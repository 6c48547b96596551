//! Writing a trace from the node loop without making it wait for the disk.
//!
//! Records are encoded into an in-memory buffer on the node loop thread; a
//! full buffer (or one older than [`FLUSH_EVERY`], checked at each tick) is
//! handed to a writer thread, which appends it to the file. At shutdown the
//! rest is handed over, the writer finishes and the file is fsynced. The hand-
//! off channel is bounded: if the disk falls [`QUEUED_BUFFERS`] buffers behind,
//! the node loop waits rather than drop records, since a trace with a hole
//! cannot be replayed.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::{OutputSummary, Record, TraceInput, TraceStart, TraceWriter};

/// A buffer this large goes to the writer thread at once.
const FLUSH_BYTES: usize = 256 * 1024;

/// A buffer is handed over at the first tick after it is this old, so a
/// killed process loses about this much of its trace.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Buffers the writer thread may fall behind by before the loop waits.
const QUEUED_BUFFERS: usize = 64;

/// Records a node's inputs into a trace file.
pub struct Recorder {
    path: PathBuf,
    /// Encodes into the current buffer.
    writer: TraceWriter<Vec<u8>>,
    start: Option<TraceStart>,
    steps: u64,
    last_flush: Instant,
    tx: Option<Sender<Vec<u8>>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// Set once a write failed: recording stops, serving goes on.
    failed: bool,
}

impl Recorder {
    /// Creates (or truncates) `path` and starts the writer thread. The start
    /// record is written once the host knows what `Node::new` did
    /// ([`Recorder::started`]).
    pub fn create(path: &Path, start: TraceStart) -> io::Result<Recorder> {
        let file = File::create(path)?;
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(QUEUED_BUFFERS);
        let thread = std::thread::Builder::new()
            .name("chronik-trace".into())
            .spawn(move || {
                let mut out = BufWriter::new(file);
                for buf in rx {
                    out.write_all(&buf)?;
                }
                let file = out.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()
            })?;
        Ok(Recorder {
            path: path.to_path_buf(),
            writer: TraceWriter::new(Vec::with_capacity(FLUSH_BYTES * 2))?,
            start: Some(start),
            steps: 0,
            last_flush: Instant::now(),
            tx: Some(tx),
            thread: Some(thread),
            failed: false,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the start record with what the node did while being built.
    pub fn started(&mut self, outputs: OutputSummary) {
        if let Some(start) = self.start.take() {
            self.write(&Record::Start { start, outputs });
        }
    }

    /// Records one input and what it produced.
    pub fn step(&mut self, now_ms: u64, input: &TraceInput, outputs: OutputSummary) {
        // Records are small next to the buffer; cloning a frame's `Bytes` is a
        // reference count, not a copy.
        let record = Record::Step {
            now_ms,
            input: input.clone(),
            outputs,
        };
        self.write(&record);
        self.steps += 1;
        if self.writer.get_mut().len() >= FLUSH_BYTES {
            self.hand_over();
        }
    }

    /// Hands the buffer to the writer thread if it has waited long enough.
    pub fn tick(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_flush) >= FLUSH_EVERY {
            self.hand_over();
        }
    }

    /// Writes the end record, waits for the writer and fsyncs the file.
    pub fn finish(&mut self) -> io::Result<()> {
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        if !self.failed {
            self.write(&Record::End { steps: self.steps });
            let buf = std::mem::take(self.writer.get_mut());
            if !buf.is_empty() {
                let _ = tx.send(buf);
            }
        }
        drop(tx);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the trace writer thread panicked")),
            None => Ok(()),
        }
    }

    fn write(&mut self, record: &Record) {
        if self.failed {
            return;
        }
        // Writing into a Vec cannot fail.
        let _ = self.writer.write(record);
    }

    fn hand_over(&mut self) {
        self.last_flush = Instant::now();
        if self.failed || self.writer.get_mut().is_empty() {
            return;
        }
        let buf = std::mem::replace(self.writer.get_mut(), Vec::with_capacity(FLUSH_BYTES * 2));
        let Some(tx) = &self.tx else { return };
        if tx.send(buf).is_err() {
            // The writer thread stopped: it failed to write.
            self.failed = true;
            let error = match self.thread.take().map(JoinHandle::join) {
                Some(Ok(Err(e))) => e.to_string(),
                _ => "the writer thread stopped".to_string(),
            };
            tracing::error!(path = %self.path.display(), %error,
                "writing the trace failed; recording stopped (the node keeps serving)");
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::error!(path = %self.path.display(), error = %e, "finishing the trace failed");
        }
    }
}
