//! Preview cookies from the client: verification never panics and never accepts a pair it
//! did not sign (the keys are fixed here, the input is arbitrary), and a `Cookie` header
//! of any shape is read without panicking.
#![no_main]
use std::time::{Duration, SystemTime};

use apiroutes_gateway::preview::{PreviewKeys, from_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (&str, &str, &[u8])| {
    let (bypass, value, cookie_header) = data;
    let Ok(keys) = PreviewKeys::new(
        Some(b"fuzz-token-of-enough-bytes".as_slice()),
        b"fuzz-signing-key-of-enough-bytes\n",
    ) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert!(
        keys.verify(bypass, value, now).is_err(),
        "an unsigned pair verified: {bypass:?} {value:?}"
    );
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_bytes(cookie_header) {
        headers.insert(http::header::COOKIE, v);
    }
    let state = from_request(&keys, &headers, now);
    assert!(
        !state.is_active(),
        "arbitrary cookies made a preview request"
    );
});
