//! The RPC's connections: who may hold one is [`aicoin_http::connections`]' rule (a total cap,
//! a fair share per client, trusted proxies exempt from the share), and a connection that sends
//! nothing, such as an abandoned keep-alive, gives its slot back after an idle timeout. WebSocket
//! clients stay connected however long they wait for notifications: the server pings them and
//! their pongs count as activity.

use std::{pin::Pin, time::Duration};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_io_timeout::TimeoutStream;

pub use aicoin_http::connections::{Connections, Held, client_of};

/// geth's HTTP idle timeout.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How often WebSocket clients are pinged; well under [`IDLE_TIMEOUT`].
pub const WS_PING_INTERVAL: Duration = Duration::from_secs(30);

/// `socket`, closed by an error once it has received nothing for [`IDLE_TIMEOUT`].
pub fn with_idle_timeout<S: AsyncRead + AsyncWrite>(socket: S) -> Pin<Box<TimeoutStream<S>>> {
    let mut stream = TimeoutStream::new(socket);
    stream.set_read_timeout(Some(IDLE_TIMEOUT));
    Box::pin(stream)
}
