//! Who a request is from, as the rate limit and filter ownership count it: the connection's
//! peer, or, when the operator named that peer a trusted proxy (`--rpc-trusted-proxies`, such as
//! nginx on the same host terminating TLS), the address the proxy appended to
//! `X-Forwarded-For`. Without it every client behind a proxy would be one client, sharing one
//! rate limit.

use std::{
    net::IpAddr,
    task::{Context, Poll},
};

use ::http::{HeaderMap, Request};
use tower::Service;

use super::{ClientIp, connections::client_of};

/// An HTTP service whose requests carry their [`ClientIp`].
#[derive(Debug, Clone)]
pub struct StampClient<S> {
    inner: S,
    peer: IpAddr,
    /// The peer is a trusted proxy: the client is the one it forwards for.
    proxy: bool,
}

impl<S> StampClient<S> {
    pub fn new(inner: S, peer: IpAddr, proxy: bool) -> Self {
        Self { inner, peer, proxy }
    }
}

impl<S, B> Service<Request<B>> for StampClient<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let client = match self.proxy {
            true => forwarded_for(request.headers()).unwrap_or(self.peer),
            false => self.peer,
        };
        request.extensions_mut().insert(ClientIp(client_of(client)));
        self.inner.call(request)
    }
}

/// The last address of the last `X-Forwarded-For` header: the one the trusted proxy appended
/// (those before it were written by the client and prove nothing).
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    last.to_str().ok()?.rsplit(',').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("x-forwarded-for", v.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_proxy_appended_address_wins_over_what_the_client_wrote() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            forwarded_for(&headers(&["203.0.113.7"])),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            forwarded_for(&headers(&["1.2.3.4, 203.0.113.7"])),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            forwarded_for(&headers(&["1.2.3.4", "2001:db8::1"])),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(forwarded_for(&headers(&[])), None);
        assert_eq!(forwarded_for(&headers(&["1.2.3.4, not-an-ip"])), None);
    }
}
