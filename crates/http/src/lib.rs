//! Serving the node's axum apps (metrics, the inference API, the gateway, the cluster's admin
//! API and its node-to-node and sync port) one way: until a shutdown signal, with each client's
//! address available to handlers (`ConnectInfo<SocketAddr>`), Nagle's algorithm off (a streamed
//! answer's small chunks go out at once, not after the peer's delayed ACK: measured, it added
//! about 50 ms to each answer through the gateway), and a failure logged under the server's
//! name. [`operator_only`] keeps browsers away from an operator's localhost API. A server facing
//! strangers is served under [`Limits`]: timeouts on a silent or stalled peer and a fair share
//! of the connections per client ([`connections`]).

pub mod connections;

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::Request,
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    serve::ListenerExt,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};
use tokio_io_timeout::TimeoutStream;

use connections::{Connections, Held};

/// Serves `app` on the bound `listener` until `shutdown` resolves, in a task of its own.
pub fn serve(
    name: &'static str,
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    serve_connections(name, TimeoutListener::new(listener, None), app, shutdown)
}

/// The one serving loop: `listener`'s connections, each client's address handed to handlers.
fn serve_connections(
    name: &'static str,
    listener: TimeoutListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let addr = listener.inner.local_addr().ok();
        // `tap_io` for the client address (`ConnectInfo`), which axum derives from it.
        let listener = listener.tap_io(|_| {});
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, ?addr, "the {name} server failed");
        }
    })
}

/// How long a connection may wait on its peer: to send (a request, or the rest of one) and to
/// take what is sent. A silent or stalled peer loses its connection, and any answer buffered
/// for it, instead of holding both for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub read: Duration,
    pub write: Duration,
}

/// What a server facing strangers allows each connection: [`Timeouts`], and connection caps, in
/// all and per client (an IPv4 address or an IPv6 /64), shared fairly as
/// [`connections::Connections`] does, so that a slowloris holding its connections open with a
/// byte now and then runs into its own share, not everyone's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeouts: Timeouts,
    pub max_connections: u32,
    pub max_per_client: u32,
}

/// Accepted connections, with Nagle's algorithm off, and [`Limits`] where given.
struct TimeoutListener {
    inner: TcpListener,
    timeouts: Option<Timeouts>,
    connections: Arc<Connections>,
}

impl TimeoutListener {
    fn new(inner: TcpListener, limits: Option<Limits>) -> Self {
        let connections = match limits {
            Some(l) => Connections::new(l.max_connections, l.max_per_client, &[]),
            None => Connections::new(u32::MAX, u32::MAX, &[]),
        };
        Self {
            inner,
            timeouts: limits.map(|l| l.timeouts),
            connections,
        }
    }
}

impl axum::serve::Listener for TimeoutListener {
    type Io = Held<Pin<Box<TimeoutStream<TcpStream>>>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // axum's own accept, which logs and retries its errors.
            let (tcp, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            let Some(slot) = self.connections.admit(addr.ip()) else {
                tracing::debug!(%addr, "refused a connection: its client holds its share");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let mut io = TimeoutStream::new(tcp);
            io.set_read_timeout(self.timeouts.map(|t| t.read));
            io.set_write_timeout(self.timeouts.map(|t| t.write));
            return (Held::new(Box::pin(io), slot), addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// [`listen`], with every connection under `limits`.
pub async fn listen_with_limits(
    name: &'static str,
    addr: SocketAddr,
    app: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    serve_connections(
        name,
        TimeoutListener::new(listener, Some(limits)),
        app,
        stop,
    );
    Ok(bound)
}

/// Binds `addr` and serves `app` there until `shutdown` turns true; returns the bound address
/// (`addr` with port 0 picks a free one).
pub async fn listen(
    name: &'static str,
    addr: SocketAddr,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    serve(name, listener, app, async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    Ok(bound)
}

/// `app` answering only its operator's tools on this machine, never a web page: a request must
/// name a loopback host (`localhost`, `*.localhost`, `127.0.0.1`, `[::1]`, any port), so a page
/// whose domain was rebound to 127.0.0.1 is refused, and must carry no `Origin`, which browsers
/// send with every cross-origin request and every POST (command-line clients send none).
pub fn operator_only(app: Router) -> Router {
    app.layer(middleware::from_fn(refuse_browsers))
}

async fn refuse_browsers(request: Request, next: Next) -> Response {
    match browser_refusal(request.headers()) {
        Some(reason) => (StatusCode::FORBIDDEN, reason).into_response(),
        None => next.run(request).await,
    }
}

/// Why a request with `headers` is refused by [`operator_only`], if it is.
fn browser_refusal(headers: &HeaderMap) -> Option<String> {
    if headers.contains_key(header::ORIGIN) {
        return Some(
            "this API serves command-line tools, not web pages (the request has an Origin)".into(),
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    (!is_loopback_host(host))
        .then(|| format!("this API answers only to localhost, not to the host {host:?}"))
}

/// Whether `host` (a Host header: a name or address, and maybe a port) names this machine.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:port`
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use axum::{http::HeaderValue, routing::get};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_silent_peer_loses_its_connection() {
        let app = Router::new().route("/", get(|| async { "hi" }));
        let timeouts = Timeouts {
            read: Duration::from_millis(300),
            write: Duration::from_millis(300),
        };
        let limits = Limits {
            timeouts,
            max_connections: 16,
            max_per_client: 16,
        };
        let (_stop, stop) = watch::channel(false);
        let addr = listen_with_limits("test", "127.0.0.1:0".parse().unwrap(), app, limits, stop)
            .await
            .unwrap();
        // Half a request, then nothing: the server hangs up rather than wait for the rest.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the connection was still open after 30 s");
        // A whole request is answered.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hi"),
            "{answer}"
        );
    }

    /// A keep-alive connection from `from` (a loopback address of its own) that asked for `/`:
    /// its answer, or `None` when the server closed it unanswered.
    async fn ask(addr: SocketAddr, from: &str) -> (TcpStream, Option<String>) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let mut tcp = socket.connect(addr).await.unwrap();
        let answered = async {
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .ok()?;
            let mut buf = [0u8; 256];
            let n = tcp.read(&mut buf).await.ok().filter(|n| *n > 0)?;
            Some(String::from_utf8_lossy(&buf[..n]).into_owned())
        }
        .await;
        (tcp, answered)
    }

    /// Whether the server has closed `tcp`.
    async fn closed(tcp: &mut TcpStream) -> bool {
        let _ = tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut buf = [0u8; 256];
        matches!(tcp.read(&mut buf).await, Ok(0) | Err(_))
    }

    #[tokio::test]
    async fn one_client_holding_connections_open_cannot_take_everyones() {
        let app = Router::new().route("/", get(|| async { "hi" }));
        let limits = Limits {
            timeouts: Timeouts {
                read: Duration::from_secs(600),
                write: Duration::from_secs(600),
            },
            max_connections: 6,
            max_per_client: 4,
        };
        let (_stop, stop) = watch::channel(false);
        let addr = listen_with_limits("test", "127.0.0.1:0".parse().unwrap(), app, limits, stop)
            .await
            .unwrap();
        // A slowloris from 127.0.0.2 keeps its connections open: it gets its share, no more.
        let mut held = Vec::new();
        for _ in 0..4 {
            let (tcp, answer) = ask(addr, "127.0.0.2").await;
            assert!(answer.is_some_and(|a| a.starts_with("HTTP/1.1 200")));
            held.push(tcp);
        }
        assert_eq!(ask(addr, "127.0.0.2").await.1, None, "a fifth was let in");
        // Others fill the rest; once every slot is taken, a newcomer still gets in, closing the
        // oldest connection of the client holding the most.
        let (_b1, b) = ask(addr, "127.0.0.3").await;
        let (_b2, c) = ask(addr, "127.0.0.3").await;
        assert!(b.is_some() && c.is_some());
        let (_d, newcomer) = ask(addr, "127.0.0.4").await;
        assert!(newcomer.is_some_and(|a| a.starts_with("HTTP/1.1 200")));
        assert!(
            closed(&mut held[0]).await,
            "the hog's oldest connection is still open"
        );
        assert!(!closed(&mut held[1]).await);
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), HeaderValue::from_str(value).unwrap()))
            .collect()
    }

    #[test]
    fn only_local_command_line_requests_pass() {
        for host in [
            "127.0.0.1:9651",
            "localhost:9651",
            "[::1]:9651",
            "node.localhost",
            "127.0.0.2",
        ] {
            assert_eq!(
                browser_refusal(&headers(&[(header::HOST, host)])),
                None,
                "{host}"
            );
        }
        // DNS rebinding: the attacker's name, now resolving to 127.0.0.1.
        for host in [
            "evil.example:9651",
            "localhost.evil.example",
            "10.0.0.1:9651",
            "",
        ] {
            assert!(
                browser_refusal(&headers(&[(header::HOST, host)])).is_some(),
                "{host}"
            );
        }
        let page = headers(&[
            (header::HOST, "127.0.0.1:9651"),
            (header::ORIGIN, "https://evil.example"),
        ]);
        assert!(browser_refusal(&page).unwrap().contains("Origin"));
    }
}
