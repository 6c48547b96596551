//! Trace conformance: every `traces/*.trace` scenario runs against a fresh
//! in-memory cluster and its transcript must match the reviewed insta snapshot
//! in `tests/snapshots/`. After an intended behaviour change, regenerate with
//! `INSTA_UPDATE=always cargo test -p conformance --test traces` (or
//! `cargo insta review`) and read the diff before committing it.

#[test]
fn traces() {
    insta::glob!("../traces", "*.trace", |path| {
        let text = std::fs::read_to_string(path).expect("trace file is readable");
        let transcript = match conformance::interaction::run(&text) {
            Ok(t) => t,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        insta::assert_snapshot!(transcript);
    });
}
