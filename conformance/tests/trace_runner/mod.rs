//! The one way a trace conformance test (`tests/*traces.rs`) is written:
//! [`trace_snapshots!`] runs every trace file of a folder and compares each
//! transcript with its insta snapshot.

use std::path::Path;

use conformance::datadriven::CommandError;

/// What a test makes of the `!!` lines an environment prints when it sees
/// something impossible.
#[allow(dead_code)] // each test crate names only the variant it uses
pub enum Impossible {
    /// They stay in the transcript, where the snapshot diff shows them.
    InSnapshot,
    /// They fail the test; the text says what a `!!` line means here.
    Fail(&'static str),
}

/// The transcript of the trace at `path`, run by `run`. Panics naming the file
/// if the trace cannot run, or (with [`Impossible::Fail`]) if the transcript
/// has a `!!` line.
pub fn transcript(
    path: &Path,
    run: fn(&str) -> Result<String, CommandError>,
    impossible: Impossible,
) -> String {
    let text = std::fs::read_to_string(path).expect("trace file is readable");
    let transcript = match run(&text) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    if let Impossible::Fail(what) = impossible {
        assert!(
            !transcript.contains("!!"),
            "{}: {what}:\n{transcript}",
            path.display()
        );
    }
    transcript
}

/// Defines the test `traces`: every `*.trace` file in `$dir` (relative to the
/// invoking test file) runs through `$run` (see [`transcript`]), and its
/// transcript must match the reviewed insta snapshot. A macro, so that
/// `insta::glob!` and the snapshot names stay those of the invoking test:
/// `<test>__traces@<file>.trace.snap`.
macro_rules! trace_snapshots {
    ($dir:literal, $run:path, $impossible:expr) => {
        #[test]
        fn traces() {
            insta::glob!($dir, "*.trace", |path| {
                let transcript = $crate::trace_runner::transcript(path, $run, $impossible);
                insta::assert_snapshot!(transcript);
            });
        }
    };
}
pub(crate) use trace_snapshots;
