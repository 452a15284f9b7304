//! The path-pattern language: never panics; a parsed pattern prints (`Display`) as text
//! that parses to the same pattern (same canonical form, same parameter names); matching
//! any path against it never panics.
#![no_main]
use apiroutes_crds::pattern::Pattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (&str, &str)| {
    let (text, path) = data;
    if let Ok(p) = Pattern::parse(text) {
        let printed = p.to_string();
        let again = Pattern::parse(&printed).unwrap_or_else(|e| {
            panic!("{text:?} prints as {printed:?}, which does not parse: {e}")
        });
        assert_eq!(again.canonical(), p.canonical(), "{text:?}");
        assert!(again.params().eq(p.params()), "{text:?}");
        let _ = p.match_path(path);
    }
});
