//! Condition types, condition reasons and Event reasons: the words a user sees in
//! `kubectl describe apiroute`, in one place.

/// Condition type: the route is routed by the gateways.
pub const ACCEPTED: &str = "Accepted";
/// Condition type: requests to the route will be served.
pub const READY: &str = "Ready";

/// `Accepted=True`.
pub const REASON_ACCEPTED: &str = "Accepted";
/// `Accepted=False`: an older ApiRoute claims the same pattern, host and methods.
pub const REASON_CONFLICT: &str = "Conflict";
/// `Accepted=False`: `spec.path` does not parse.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// `Accepted=False`: `metadata.name` cannot name the route's objects (a route stored before
/// the CRD refused such names).
pub const REASON_INVALID_NAME: &str = "InvalidName";

/// `Accepted=False`: the route names a shared function (`spec.function`) but its pod
/// fields differ from those of the function's oldest route.
pub const REASON_FUNCTION_MISMATCH: &str = "FunctionMismatch";

/// `Ready=True`: at least one replica is ready.
pub const REASON_AVAILABLE: &str = "Available";
/// `Ready=True`: no replicas, and the next request wakes the route.
pub const REASON_SCALED_TO_ZERO: &str = "ScaledToZero";
/// `Ready=False`: replicas are starting.
pub const REASON_PROGRESSING: &str = "Progressing";
/// `Ready=False`: the image cannot be pulled.
pub const REASON_IMAGE_PULL_FAILING: &str = "ImagePullFailing";
/// `Ready=False`: the container keeps crashing.
pub const REASON_CRASH_LOOPING: &str = "CrashLooping";
/// `Ready=False`: the route is not accepted, so nothing runs for it.
pub const REASON_NOT_ACCEPTED: &str = "NotAccepted";

/// Event: a Deployment or Service was created.
pub const EVENT_CREATED: &str = "Created";
/// Event: a Deployment or Service was changed (drift repaired or spec changed).
pub const EVENT_UPDATED: &str = "Updated";
/// Event: a Deployment or Service was deleted (preview removed, route lost a conflict).
pub const EVENT_DELETED: &str = "Deleted";
/// Event (Warning): the route lost a conflict or its spec is invalid.
pub const EVENT_CONFLICT: &str = "Conflict";
pub const EVENT_INVALID_SPEC: &str = "InvalidSpec";
/// Event: the route became Accepted again (e.g. the winner of a conflict went away).
pub const EVENT_ACCEPTED: &str = "Accepted";
