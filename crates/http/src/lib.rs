//! Serving the node's axum apps (metrics, the inference API, the gateway, the cluster's admin
//! API and its node-to-node and sync port) one way: until a shutdown signal, with each client's
//! address available to handlers (`ConnectInfo<SocketAddr>`), Nagle's algorithm off (a streamed
//! answer's small chunks go out at once, not after the peer's delayed ACK: measured, it added
//! about 50 ms to each answer through the gateway), and a failure logged under the server's
//! name.

use std::{future::Future, net::SocketAddr};

use axum::{Router, serve::ListenerExt};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

/// Serves `app` on the bound `listener` until `shutdown` resolves, in a task of its own.
pub fn serve(
    name: &'static str,
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let addr = listener.local_addr().ok();
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, ?addr, "the {name} server failed");
        }
    })
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
