//! Host and authority parsing: never panics; a valid authority's host part is a prefix of it.
#![no_main]
use apiroutes_gateway::host::{host_of, valid_authority};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if valid_authority(data) {
        let s = std::str::from_utf8(data).expect("a valid authority is ASCII");
        assert!(s.starts_with(host_of(s)) || s.to_ascii_lowercase().starts_with(host_of(s)));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = host_of(s);
    }
});
