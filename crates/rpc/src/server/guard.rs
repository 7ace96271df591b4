//! RPC middleware that every call passes, singly, in a batch or over WebSocket: the per-client
//! request-rate limit (keyed by the client's IP address, which the accept loop stamps on each
//! request) and the call metrics.

use std::{collections::HashSet, net::IpAddr, num::NonZeroU32, sync::Arc, time::Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonrpsee::{
    MethodResponse,
    core::middleware::{Batch, BatchEntry, Notification, RpcServiceT},
    server::BatchResponseBuilder,
    types::{ErrorObjectOwned, Request},
};
use tower::Layer;

use super::metrics::{Outcome, RpcMetrics};
use crate::error::LIMIT_EXCEEDED_CODE;

/// The client a request came from (a request extension): its IPv4 address, or the /64 of its
/// IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

#[derive(Debug)]
struct Shared {
    limiter: Option<(DefaultKeyedRateLimiter<IpAddr>, NonZeroU32)>,
    metrics: Option<RpcMetrics>,
    /// Method names the server serves, for the metrics' label.
    known: HashSet<&'static str>,
    max_response_bytes: usize,
}

/// Builds [`Guard`]s around the RPC service.
#[derive(Debug, Clone)]
pub struct GuardLayer(Arc<Shared>);

impl GuardLayer {
    pub fn new(
        rate_limit: Option<NonZeroU32>,
        metrics: Option<RpcMetrics>,
        known: impl IntoIterator<Item = &'static str>,
        max_response_bytes: u32,
    ) -> Self {
        let limiter = rate_limit.map(|n| (RateLimiter::keyed(Quota::per_second(n)), n));
        Self(Arc::new(Shared {
            limiter,
            metrics,
            known: known.into_iter().collect(),
            max_response_bytes: max_response_bytes as usize,
        }))
    }

    /// Forgets clients that have been idle long enough to have a full allowance again, so the
    /// limiter's memory follows the active clients, not every client ever seen.
    pub fn forget_idle_clients(&self) {
        if let Some((limiter, _)) = &self.0.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            shared: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl Shared {
    fn admit(&self, request: &Request<'_>) -> Result<(), ErrorObjectOwned> {
        let Some((limiter, per_second)) = &self.limiter else {
            return Ok(());
        };
        let Some(ClientIp(ip)) = request.extensions().get::<ClientIp>() else {
            return Ok(());
        };
        limiter.check_key(ip).map_err(|_| {
            ErrorObjectOwned::owned(
                LIMIT_EXCEEDED_CODE,
                format!("rate limit exceeded: {per_second} requests per second per client"),
                None::<()>,
            )
        })
    }

    fn method_label(&self, method: &str) -> &'static str {
        self.known.get(method).copied().unwrap_or("unknown")
    }
}

impl<S> RpcServiceT for Guard<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = MethodResponse;
    type BatchResponse = MethodResponse;
    type NotificationResponse = MethodResponse;

    fn call<'a>(
        &self,
        request: Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        let (inner, shared) = (self.inner.clone(), self.shared.clone());
        async move {
            let method = shared.method_label(request.method_name());
            if let Err(error) = shared.admit(&request) {
                if let Some(m) = &shared.metrics {
                    m.record(method, Outcome::RateLimited, None);
                }
                return MethodResponse::error(request.id, error);
            }
            let started = Instant::now();
            let response = inner.call(request).await;
            if let Some(m) = &shared.metrics {
                let outcome = match response.is_success() {
                    true => Outcome::Ok,
                    false => Outcome::Error,
                };
                m.record(method, outcome, Some(started.elapsed().as_secs_f64()));
            }
            response
        }
    }

    /// Each call of a batch passes the guard on its own (a batch of 100 counts as 100
    /// requests), then the responses are assembled within the response size limit.
    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let this = self.clone();
        async move {
            let mut responses =
                BatchResponseBuilder::new_with_limit(this.shared.max_response_bytes);
            let mut got_notification = false;
            for entry in batch {
                let response = match entry {
                    Ok(BatchEntry::Call(request)) => this.call(request).await,
                    Ok(BatchEntry::Notification(n)) => {
                        got_notification = true;
                        this.inner.notification(n).await;
                        continue;
                    }
                    Err(error) => {
                        let (error, id) = error.into_parts();
                        MethodResponse::error(id, error)
                    }
                };
                if let Err(too_large) = responses.append(response) {
                    return too_large;
                }
            }
            if responses.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(responses.finish())
            }
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}
