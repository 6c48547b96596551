//! Cluster-metadata trace conformance: every `traces/metadata/*.trace`
//! scenario runs against a fresh controller and its transcript must match
//! the reviewed insta snapshot in `tests/snapshots/`. After an intended
//! behaviour change, regenerate with
//! `INSTA_UPDATE=always cargo test -p conformance --test metadata_traces` and
//! read the diff before committing it.

#[test]
fn traces() {
    insta::glob!("../traces/metadata", "*.trace", |path| {
        let text = std::fs::read_to_string(path).expect("trace file is readable");
        let transcript = match conformance::metadata_trace::run(&text) {
            Ok(t) => t,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        assert!(
            !transcript.contains("!!"),
            "{}: the environment saw something impossible:\n{transcript}",
            path.display()
        );
        insta::assert_snapshot!(transcript);
    });
}
