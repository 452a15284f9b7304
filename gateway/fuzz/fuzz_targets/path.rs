//! Path normalization of request paths (origin form, starting with `/`): never panics;
//! redirects end within a few steps, as Next.js's do (repeated slashes, then a trailing
//! slash: two 308s at most), never in a loop; a routed path normalizes to itself.
#![no_main]
use apiroutes_gateway::path::{PathOutcome, add_slash_redirect, normalize, slash_redirect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (&str, Option<&str>)| {
    let (path, query) = data;
    if !path.starts_with('/') {
        return;
    }
    let _ = slash_redirect(path, query);
    // Under `trailingSlash: true` the added slash is served, never redirected again.
    if let Some(location) = add_slash_redirect(path, query) {
        let p = location.split_once('?').map_or(location.as_str(), |(p, _)| p);
        assert!(
            p.ends_with('/') && add_slash_redirect(p, None).is_none(),
            "{path:?}: {location:?}"
        );
    }
    let mut current = path.to_owned();
    let mut q = query.map(str::to_owned);
    for _ in 0..3 {
        match normalize(&current, q.as_deref()) {
            // Without a `trailingSlash` route, a trailing slash is the default redirect.
            PathOutcome::Redirect(location) | PathOutcome::TrailingSlash { location, .. } => {
                let (p, rest) = location
                    .split_once('?')
                    .map_or((location.as_str(), None), |(p, r)| (p, Some(r)));
                current = p.to_owned();
                q = rest.map(str::to_owned);
            }
            PathOutcome::BadRequest => return,
            PathOutcome::Route(normal) => {
                assert!(
                    matches!(normalize(&normal, q.as_deref()), PathOutcome::Route(ref again) if *again == normal),
                    "{path:?} normalizes to {normal:?}, which does not normalize to itself"
                );
                return;
            }
        }
    }
    panic!("{path:?}: still redirecting after 3 steps (at {current:?})");
});
