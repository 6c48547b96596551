//! Partition-assignment trace conformance: every `traces/assign/*.trace`
//! scenario runs against a fresh environment and its transcript must match
//! the reviewed insta snapshot in `tests/snapshots/`. After an intended
//! behaviour change, regenerate with
//! `INSTA_UPDATE=always cargo test -p conformance --test assign_traces` and
//! read the diff before committing it.

#[test]
fn traces() {
    insta::glob!("../traces/assign", "*.trace", |path| {
        let text = std::fs::read_to_string(path).expect("trace file is readable");
        let transcript = match conformance::assign_trace::run(&text) {
            Ok(t) => t,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        assert!(
            !transcript.contains("!!"),
            "{}: a rule broke:\n{transcript}",
            path.display()
        );
        insta::assert_snapshot!(transcript);
    });
}
