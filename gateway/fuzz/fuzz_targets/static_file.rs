//! The static routes file: any text is parsed or refused with an error, never a panic.
#![no_main]
use apiroutes_gateway::static_file::StaticRoutes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = StaticRoutes::parse(text, "fuzz");
});
