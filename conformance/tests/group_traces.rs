//! Group-coordinator trace conformance: every `traces/group/*.trace` scenario
//! runs against a fresh coordinator and its transcript must match the
//! reviewed insta snapshot in `tests/snapshots/`. After an intended behaviour
//! change, regenerate with
//! `INSTA_UPDATE=always cargo test -p conformance --test group_traces` and read
//! the diff before committing it.

#[test]
fn traces() {
    insta::glob!("../traces/group", "*.trace", |path| {
        let text = std::fs::read_to_string(path).expect("trace file is readable");
        let transcript = match conformance::group_trace::run(&text) {
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
