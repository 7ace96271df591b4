//! A connection whose writes leave in batches once it is a WebSocket. jsonrpsee's WebSocket
//! transport writes and flushes every answer on its own, one `send` syscall each; with many
//! requests in flight on one WebSocket, the answers that are ready together should leave
//! together. After the upgrade ([`BatchOnUpgrade`] sees the request), what the server writes is
//! queued, and a task of the connection's own sends everything queued with one write; a flush
//! returns once the bytes are queued, a shutdown once they are out and the write side is closed.
//! Plain HTTP writes go straight out: hyper already writes each response whole, and the writer's
//! hop cost 5 µs of CPU a request. (An upgrade request that is refused leaves its connection
//! batched, which changes nothing but that hop.) A dropped connection's writer gets
//! [`DRAIN_AFTER_DROP`] to send what is queued.
//!
//! Measured with `aicoin bench rpc` beside anvil 1.7.1 (release, 2 cores, medians of 5 rounds):
//! `eth_getBalance` over one WebSocket with 64 in flight, 0.93× anvil before (10.0 µs of server
//! CPU a request), 1.11-1.21× after in four runs (7.9-8.3 µs).

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use http::Request;
use jsonrpsee::server::ws::is_upgrade_request;
use tower::Service;

use parking_lot::Mutex;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::Notify,
};

/// Bytes queued before a write waits for the writer to catch up; a larger write is taken in
/// parts.
const QUEUE_BYTES: usize = 256 * 1024;

/// How long the writer of a dropped connection may take to send what was queued; a client that
/// stopped reading does not keep the task and the socket beyond it.
const DRAIN_AFTER_DROP: Duration = Duration::from_secs(5);

/// What the connection and its writer share.
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Something was queued, or the connection is closing or gone.
    wake_writer: Notify,
}

#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    /// The writer failed: every later write reports it.
    failed: Option<(io::ErrorKind, String)>,
    /// A shutdown was asked for: the writer closes the write side once the queue is out.
    closing: bool,
    /// The connection was dropped: the writer sends what is queued and ends.
    dropped: bool,
    /// The writer has ended (shut down or failed).
    ended: bool,
    /// A write waiting for room, or a shutdown waiting for the writer to end.
    waiting: Option<Waker>,
}

impl Queue {
    fn failure(&self) -> Option<io::Error> {
        self.failed
            .as_ref()
            .map(|(kind, message)| io::Error::new(*kind, message.clone()))
    }
}

/// A TCP connection whose writes go straight out until [`Batching`] is turned on, and are
/// batched by a task of its own after.
pub struct BatchedWrites {
    read: OwnedReadHalf,
    /// The write side, while writes go straight out.
    direct: Option<OwnedWriteHalf>,
    batching: Batching,
    shared: Arc<Shared>,
}

/// Turns batching on for one connection, from its next write on.
#[derive(Debug, Clone, Default)]
pub struct Batching(Arc<AtomicBool>);

impl Batching {
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl BatchedWrites {
    /// `socket`, and what turns its batching on.
    pub fn new(socket: TcpStream) -> (Self, Batching) {
        let (read, write) = socket.into_split();
        let batching = Batching::default();
        let connection = Self {
            read,
            direct: Some(write),
            batching: batching.clone(),
            shared: Arc::new(Shared::default()),
        };
        (connection, batching)
    }

    /// The write side while writes go straight out; once batching is on, hands it to a writer
    /// task (on the current runtime) and gives `None`.
    fn direct(&mut self) -> Option<&mut OwnedWriteHalf> {
        if self.direct.is_some()
            && self.batching.0.load(Ordering::Acquire)
            && let Some(write) = self.direct.take()
        {
            tokio::spawn(write_out(write, self.shared.clone()));
        }
        self.direct.as_mut()
    }
}

/// Turns on the batching of a connection's writes when its request is a WebSocket upgrade.
#[derive(Debug, Clone)]
pub struct BatchOnUpgrade<S> {
    inner: S,
    batching: Batching,
}

impl<S> BatchOnUpgrade<S> {
    pub fn new(inner: S, batching: Batching) -> Self {
        Self { inner, batching }
    }
}

impl<S, B> Service<Request<B>> for BatchOnUpgrade<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if is_upgrade_request(&request) {
            self.batching.start();
        }
        self.inner.call(request)
    }
}

/// The writer: sends whatever is queued, in one write each time it wakes, until the connection
/// closes, is dropped or fails.
async fn write_out(mut socket: OwnedWriteHalf, shared: Arc<Shared>) {
    let mut batch = Vec::new();
    loop {
        let (closing, dropped) = {
            let mut queue = shared.queue.lock();
            std::mem::swap(&mut batch, &mut queue.bytes);
            // Room again for a write that waits for it. (A shutdown that waits is woken when the
            // writer ends.)
            if !batch.is_empty()
                && let Some(waiting) = queue.waiting.take()
            {
                waiting.wake();
            }
            (queue.closing, queue.dropped)
        };
        if !batch.is_empty() {
            let written = match dropped {
                false => socket.write_all(&batch).await,
                true => tokio::time::timeout(DRAIN_AFTER_DROP, socket.write_all(&batch))
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
            };
            if let Err(e) = written {
                end(&shared, Some(e));
                return;
            }
            batch.clear();
            // A large write's buffer is not kept for the rest of the connection.
            if batch.capacity() > QUEUE_BYTES {
                batch = Vec::new();
            }
            continue;
        }
        if closing {
            end(&shared, socket.shutdown().await.err());
            return;
        }
        if dropped {
            return;
        }
        shared.wake_writer.notified().await;
    }
}

/// The writer has ended, with `error` if it failed: wakes whoever waits on it.
fn end(shared: &Shared, error: Option<io::Error>) {
    let mut queue = shared.queue.lock();
    queue.failed = error.map(|e| (e.kind(), e.to_string()));
    queue.ended = true;
    queue.bytes.clear();
    if let Some(waiting) = queue.waiting.take() {
        waiting.wake();
    }
}

impl Drop for BatchedWrites {
    fn drop(&mut self) {
        self.shared.queue.lock().dropped = true;
        self.shared.wake_writer.notify_one();
    }
}

impl AsyncRead for BatchedWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for BatchedWrites {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(write) = this.direct() {
            return Pin::new(write).poll_write(cx, buf);
        }
        let mut queue = this.shared.queue.lock();
        if let Some(error) = queue.failure() {
            return Poll::Ready(Err(error));
        }
        if queue.ended || queue.closing {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if queue.bytes.len() >= QUEUE_BYTES {
            queue.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let taken = buf.len().min(QUEUE_BYTES - queue.bytes.len());
        queue.bytes.extend_from_slice(&buf[..taken]);
        drop(queue);
        this.shared.wake_writer.notify_one();
        Poll::Ready(Ok(taken))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(write) = this.direct() {
            return Pin::new(write).poll_write_vectored(cx, bufs);
        }
        match bufs.iter().find(|buf| !buf.is_empty()) {
            Some(buf) => Pin::new(this).poll_write(cx, buf),
            None => Poll::Ready(Ok(0)),
        }
    }

    /// hyper asks once, before any upgrade: then writes go straight to the socket.
    fn is_write_vectored(&self) -> bool {
        self.direct
            .as_ref()
            .is_some_and(|write| write.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(write) = this.direct() {
            return Pin::new(write).poll_flush(cx);
        }
        match this.shared.queue.lock().failure() {
            Some(error) => Poll::Ready(Err(error)),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(write) = this.direct() {
            return Pin::new(write).poll_shutdown(cx);
        }
        let mut queue = this.shared.queue.lock();
        if queue.ended {
            return Poll::Ready(queue.failure().map_or(Ok(()), Err));
        }
        queue.closing = true;
        queue.waiting = Some(cx.waker().clone());
        drop(queue);
        this.shared.wake_writer.notify_one();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server side and its client.
    async fn pair() -> (BatchedWrites, Batching, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (server, batching) = BatchedWrites::new(accepted.unwrap().0);
        (server, batching, client.unwrap())
    }

    /// Writes of every size, more than the queue holds, batching from write `from` on: the
    /// client reads them all, in order, and the end of the stream after the shutdown.
    async fn everything_arrives(from: Option<u32>) {
        let (mut server, batching, mut client) = pair().await;
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut sent = Vec::new();
        for i in 0..4_000u32 {
            if Some(i) == from {
                batching.start();
            }
            let chunk = vec![(i % 251) as u8; (i as usize * 7) % 1_500 + 1];
            server.write_all(&chunk).await.unwrap();
            server.flush().await.unwrap();
            sent.extend_from_slice(&chunk);
        }
        server.shutdown().await.unwrap();
        assert_eq!(reading.await.unwrap(), sent, "batching from {from:?}");
        assert!(
            server.write_all(b"late").await.is_err(),
            "written after shutdown"
        );
    }

    #[tokio::test]
    async fn everything_written_arrives_in_order_straight_batched_or_switched_midway() {
        for from in [None, Some(0), Some(1_234)] {
            everything_arrives(from).await;
        }
    }

    /// The writer has sent everything and sleeps when the shutdown comes: it still ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shutdown_after_the_queue_is_out_completes() {
        for batched in [false, true] {
            let (mut server, batching, mut client) = pair().await;
            if batched {
                batching.start();
            }
            server.write_all(b"close frame").await.unwrap();
            server.flush().await.unwrap();
            let mut got = [0u8; 11];
            client.read_exact(&mut got).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            // A shutdown no one wakes would end only when the timeout polls it again.
            let started = std::time::Instant::now();
            let shutdown = tokio::time::timeout(Duration::from_secs(5), server.shutdown());
            assert!(shutdown.await.is_ok_and(|done| done.is_ok()));
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(2),
                "the shutdown hung for {took:?} (batched: {batched})"
            );
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        }
    }

    #[tokio::test]
    async fn one_large_write_is_taken_in_parts() {
        let (mut server, batching, mut client) = pair().await;
        batching.start();
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let large: Vec<u8> = (0..3 * QUEUE_BYTES + 17).map(|i| (i % 253) as u8).collect();
        let taken = server.write(&large).await.unwrap();
        assert_eq!(
            taken, QUEUE_BYTES,
            "one write takes at most the queue's room"
        );
        server.write_all(&large[taken..]).await.unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(reading.await.unwrap(), large);
    }

    #[tokio::test]
    async fn it_reads_what_the_peer_sends_and_a_dropped_connection_still_delivers() {
        let (mut server, batching, mut client) = pair().await;
        batching.start();
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        server.write_all(b"pong").await.unwrap();
        drop(server);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"pong");
    }

    #[tokio::test]
    async fn a_peer_gone_is_an_error_on_a_later_write_not_a_hang() {
        let (mut server, batching, client) = pair().await;
        batching.start();
        drop(client);
        let mut failed = false;
        for _ in 0..1_000 {
            if server.write_all(&[0; 4096]).await.is_err() || server.flush().await.is_err() {
                failed = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(failed, "writes to a closed peer kept succeeding");
    }

    #[test]
    fn only_a_websocket_upgrade_turns_batching_on() {
        let batching = Batching::default();
        let mut service = BatchOnUpgrade::new(
            tower::service_fn(|_: Request<()>| async { Ok::<_, ()>(()) }),
            batching.clone(),
        );
        let post = Request::post("/").body(()).unwrap();
        drop(service.call(post));
        assert!(!batching.0.load(Ordering::Acquire));
        let upgrade = Request::get("/")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        drop(service.call(upgrade));
        assert!(batching.0.load(Ordering::Acquire));
    }
}
