//! What the RPC port serves besides JSON-RPC: the "Add AICoin to MetaMask" page at `GET /` and
//! `GET /aicoin.html`, and `GET /health` (503 once the chain database can no longer be
//! written). Everything else (POSTs, WebSocket upgrades) goes on
//! to jsonrpsee.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use aicoin_storage::Store;
use http::{HeaderValue, Method, StatusCode, header};
use jsonrpsee::server::{HttpBody, HttpResponse, ws::is_upgrade_request};
use serde_json::json;
use tower::{Layer, Service};

const PAGE: &str = include_str!("page.html");

/// What the MetaMask page adds: the spec's network parameters.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    pub chain_id: u64,
    /// The RPC URL the page hands to the wallet; the page's own origin when `None`.
    pub public_rpc_url: Option<String>,
}

/// The page with its configuration filled in.
pub fn render_page(info: &NetworkInfo) -> String {
    let config = json!({
        "chainId": format!("0x{:X}", info.chain_id),
        "chainName": "AICoinChain",
        "nativeCurrency": { "name": "AIC", "symbol": "AIC", "decimals": 18 },
        "rpcUrl": info.public_rpc_url,
    });
    // Inside <script>, a "</" in a string would end the element.
    let config = config.to_string().replace("</", "<\\/");
    PAGE.replace("__AICOIN_CONFIG__", &config)
}

/// Serves the page and health check in front of `S`.
#[derive(Debug, Clone)]
pub struct PageLayer {
    page: Arc<str>,
    store: Store,
}

impl PageLayer {
    pub fn new(info: &NetworkInfo, store: Store) -> Self {
        Self {
            page: render_page(info).into(),
            store,
        }
    }
}

impl<S> Layer<S> for PageLayer {
    type Service = PageService<S>;

    fn layer(&self, inner: S) -> PageService<S> {
        PageService {
            inner,
            page: self.page.clone(),
            store: self.store.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PageService<S> {
    inner: S,
    page: Arc<str>,
    store: Store,
}

/// `{"status":"ok"}`, or 503 with why the chain database can no longer be written.
fn health(store: &Store) -> HttpResponse {
    match store.failure() {
        None => response("application/json", json!({"status": "ok"}).to_string()),
        Some(error) => {
            let body = json!({"status": "error", "error": error}).to_string();
            let mut response = response("application/json", body);
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        }
    }
}

fn response(content_type: &'static str, body: String) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    *response.status_mut() = StatusCode::OK;
    response
}

impl<S, B> Service<http::Request<B>> for PageService<S>
where
    S: Service<http::Request<B>, Response = HttpResponse>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.method() == Method::GET && !is_upgrade_request(&request) {
            let served = match request.uri().path() {
                "/" | "/aicoin.html" => {
                    Some(response("text/html; charset=utf-8", self.page.to_string()))
                }
                "/health" => Some(health(&self.store)),
                _ => None,
            };
            if let Some(served) = served {
                return Box::pin(async move { Ok(served) });
            }
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_carries_the_spec_parameters_and_cannot_be_broken_out_of() {
        let page = render_page(&NetworkInfo {
            chain_id: 2108,
            public_rpc_url: Some("https://x.example/</script><script>alert(1)".into()),
        });
        assert!(page.contains(r#""chainId":"0x83C""#));
        assert!(page.contains(r#""chainName":"AICoinChain""#));
        assert!(page.contains(r#""decimals":18"#));
        assert!(!page.contains("</script><script>alert"));
        assert!(!page.contains("__AICOIN_CONFIG__"));
    }
}
