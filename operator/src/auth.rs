//! Who may push to the autoscaler: a caller proves its identity with a Kubernetes
//! ServiceAccount token (`Authorization: Bearer`), bound to [`AUDIENCE`], which the API
//! server checks (TokenReview); the identity must be on the allowed list (the gateways'
//! ServiceAccount, set by the chart). Anything else gets 401 (no or invalid token) or 403
//! (a valid token of someone else), and is counted. Without an allowed list, pushes are
//! not authenticated (a process outside a cluster, the tests), said once at start.
//!
//! Reviews are cached per token for a minute (a gateway pushes every second, and a cold
//! start must not wait for the API server), and at most [`MAX_CONCURRENT_REVIEWS`] run at
//! once, so random tokens cannot turn the endpoint into a flood of TokenReviews.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::{Api, Client, api::PostParams};
use tokio::sync::Semaphore;

/// The audience gateway tokens are bound to (a projected ServiceAccount token).
pub const AUDIENCE: &str = "apiroutes-autoscaler";
/// How long a review's verdict is reused.
const VALID_FOR: Duration = Duration::from_secs(60);
/// How long a refusal is reused (a retry with the same bad token costs nothing).
const REFUSED_FOR: Duration = Duration::from_secs(10);
const MAX_CACHED: usize = 1024;
pub const MAX_CONCURRENT_REVIEWS: usize = 4;

/// The outcome for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// 401: no token, or one the API server does not accept for [`AUDIENCE`].
    Unauthenticated(&'static str),
    /// 403: a valid token of an identity not on the list.
    Forbidden(String),
    /// 503: the review could not be made (API server unreachable, too many at once).
    Unavailable(String),
}

impl Verdict {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Unauthenticated(_) => "unauthenticated",
            Verdict::Forbidden(_) => "forbidden",
            Verdict::Unavailable(_) => "unavailable",
        }
    }
}

/// The bearer token of an `Authorization` header value, if it is one.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The verdict for a reviewed identity: authenticated for our audience and allowed.
pub fn judge(
    status_authenticated: bool,
    audiences: &[String],
    username: &str,
    allowed: &[String],
) -> Verdict {
    if !status_authenticated {
        return Verdict::Unauthenticated("the token is not valid");
    }
    if !audiences.iter().any(|a| a == AUDIENCE) {
        return Verdict::Unauthenticated("the token is not for this audience");
    }
    if allowed.iter().any(|a| a == username) {
        Verdict::Allowed
    } else {
        Verdict::Forbidden(format!("{username} may not push to the autoscaler"))
    }
}

/// Checks callers against the allowed identities.
pub struct Authenticator {
    client: Client,
    allowed: Vec<String>,
    cache: Mutex<HashMap<[u8; 32], (Instant, Verdict)>>,
    reviews: Semaphore,
}

impl Authenticator {
    /// `None` when `allowed` is empty: pushes are not authenticated.
    pub fn new(client: Client, allowed: Vec<String>) -> Option<Self> {
        (!allowed.is_empty()).then(|| Authenticator {
            client,
            allowed,
            cache: Mutex::new(HashMap::new()),
            reviews: Semaphore::new(MAX_CONCURRENT_REVIEWS),
        })
    }

    /// The verdict for a request's `Authorization` header.
    pub async fn check(&self, authorization: Option<&str>) -> Verdict {
        let Some(token) = bearer(authorization) else {
            return Verdict::Unauthenticated("no bearer token");
        };
        let mut key = [0u8; 32];
        key.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
        let now = Instant::now();
        if let Some((until, v)) = self.lock().get(&key)
            && *until > now
        {
            return v.clone();
        }
        let Ok(_permit) = self.reviews.try_acquire() else {
            return Verdict::Unavailable("too many token reviews at once".into());
        };
        let verdict = self.review(token).await;
        let ttl = match verdict {
            Verdict::Allowed => Some(VALID_FOR),
            Verdict::Unauthenticated(_) | Verdict::Forbidden(_) => Some(REFUSED_FOR),
            Verdict::Unavailable(_) => None,
        };
        if let Some(ttl) = ttl {
            let mut cache = self.lock();
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, (until, _)| *until > now);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(key, (now + ttl, verdict.clone()));
        }
        verdict
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Instant, Verdict)>> {
        match self.cache.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    async fn review(&self, token: &str) -> Verdict {
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: Some(vec![AUDIENCE.to_owned()]),
            },
            ..TokenReview::default()
        };
        let created = tokio::time::timeout(
            Duration::from_secs(5),
            api.create(&PostParams::default(), &review),
        )
        .await;
        let status = match created {
            Ok(Ok(r)) => r.status.unwrap_or_default(),
            Ok(Err(e)) => return Verdict::Unavailable(format!("TokenReview: {e}")),
            Err(_) => return Verdict::Unavailable("TokenReview timed out".into()),
        };
        let username = status
            .user
            .as_ref()
            .and_then(|u| u.username.clone())
            .unwrap_or_default();
        judge(
            status.authenticated.unwrap_or(false),
            status.audiences.as_deref().unwrap_or_default(),
            &username,
            &self.allowed,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn only_allowed_identities_with_our_audience_pass() {
        let allowed = vec!["system:serviceaccount:apiroutes-system:apiroutes-gateway".to_owned()];
        let aud = vec![AUDIENCE.to_owned()];
        assert_eq!(judge(true, &aud, &allowed[0], &allowed), Verdict::Allowed);
        assert!(matches!(
            judge(false, &aud, &allowed[0], &allowed),
            Verdict::Unauthenticated(_)
        ));
        assert!(matches!(
            judge(
                true,
                &["https://kubernetes.default.svc".to_owned()],
                &allowed[0],
                &allowed
            ),
            Verdict::Unauthenticated(_)
        ));
        assert!(matches!(
            judge(true, &aud, "system:serviceaccount:team:default", &allowed),
            Verdict::Forbidden(_)
        ));
    }
}
