//! ISR tracker trace conformance: every `traces/isr/*.trace` scenario runs
//! against a fresh tracker and its transcript must match the reviewed insta
//! snapshot in `tests/snapshots/`. After an intended behaviour change,
//! regenerate with `INSTA_UPDATE=always cargo test -p conformance --test
//! isr_traces` and read the diff before committing it.

#[test]
fn traces() {
    insta::glob!("../traces/isr", "*.trace", |path| {
        let text = std::fs::read_to_string(path).expect("trace file is readable");
        match conformance::isr_trace::run(&text) {
            Ok(transcript) => insta::assert_snapshot!(transcript),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    });
}
