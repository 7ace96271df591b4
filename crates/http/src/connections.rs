//! Who may hold a connection to one of the node's servers: a total cap and a cap per client (an
//! IPv4 address, or an IPv6 /64, which one host usually has whole).
//!
//! When every slot is taken, a newcomer is still let in if some client holds more than its
//! share: that client's oldest connection is closed to make room. So a few hosts holding idle
//! WebSockets in every slot cannot lock everyone else out, as they could while the accept loop
//! simply stopped at the cap. A trusted proxy is one peer for many clients: it has no cap of
//! its own (the proxy limits each of its clients), only the total.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    io,
    net::{IpAddr, Ipv6Addr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use parking_lot::Mutex;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::oneshot,
};

/// The client an address belongs to, as the caps and the rate limit count it: an IPv4 address
/// (IPv4-mapped IPv6 included), or the /64 of an IPv6 address.
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// The open connections, by client.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    max_per_client: usize,
    /// Trusted proxies, whose share is every slot.
    proxies: HashSet<IpAddr>,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    /// Each client's connections, oldest first: an id and the way to close it.
    open: HashMap<IpAddr, Vec<(u64, oneshot::Sender<()>)>>,
    total: usize,
    next_id: u64,
}

/// One connection's slot; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<Connections>,
    client: IpAddr,
    id: u64,
}

impl Connections {
    pub fn new(max: u32, max_per_client: u32, proxies: &[IpAddr]) -> Arc<Self> {
        Arc::new(Self {
            max: max as usize,
            max_per_client: max_per_client as usize,
            proxies: proxies.iter().map(IpAddr::to_canonical).collect(),
            table: Mutex::default(),
        })
    }

    /// A slot for a connection from `ip`, and what fires when it must close to make room for
    /// another client; `None` when its client holds the most allowed, or every slot is taken
    /// by clients holding no more than their share.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<(Slot, oneshot::Receiver<()>)> {
        let client = client_of(ip);
        let mut table = self.table.lock();
        let held = table.open.get(&client).map_or(0, Vec::len);
        if held >= self.max_per_client && !self.proxies.contains(&ip.to_canonical()) {
            return None;
        }
        if table.total >= self.max {
            let (&busiest, oldest) = table
                .open
                .iter_mut()
                .max_by_key(|(_, connections)| connections.len())?;
            // Only a client holding more than the newcomer would after it: shares even out.
            if oldest.len() <= held + 1 {
                return None;
            }
            let (_, close) = oldest.remove(0);
            let _ = close.send(());
            tracing::debug!(client = %busiest, "closed a connection to make room for another client");
            if oldest.is_empty() {
                table.open.remove(&busiest);
            }
            table.total -= 1;
        }
        let id = table.next_id;
        table.next_id += 1;
        let (close, closed) = oneshot::channel();
        table.open.entry(client).or_default().push((id, close));
        table.total += 1;
        Some((
            Slot {
                owner: self.clone(),
                client,
                id,
            },
            closed,
        ))
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        self.table
            .lock()
            .open
            .get(&client_of(ip))
            .map_or(0, Vec::len)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.owner.table.lock();
        let Some(connections) = table.open.get_mut(&self.client) else {
            return;
        };
        // Not there if it was closed to make room (and already uncounted).
        let Some(at) = connections.iter().position(|(id, _)| *id == self.id) else {
            return;
        };
        connections.remove(at);
        if connections.is_empty() {
            table.open.remove(&self.client);
        }
        table.total -= 1;
    }
}

/// A connection's socket with its slot, for as long as the connection lives: hyper hands the
/// socket of a WebSocket upgrade on to the WebSocket's own task, and the slot goes with it.
/// Every read and write fails once the slot is taken back to make room for another client.
#[derive(Debug)]
pub struct Held<S> {
    inner: S,
    _slot: Slot,
    closed: oneshot::Receiver<()>,
    evicted: bool,
}

impl<S> Held<S> {
    pub fn new(inner: S, (slot, closed): (Slot, oneshot::Receiver<()>)) -> Self {
        Self {
            inner,
            _slot: slot,
            closed,
            evicted: false,
        }
    }

    /// Whether the slot was taken back (registering for the moment it is).
    fn evicted(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.evicted && Pin::new(&mut self.closed).poll(cx).is_ready() {
            self.evicted = true;
        }
        match self.evicted {
            true => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for another client",
            )),
            false => Ok(()),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.evicted(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.evicted(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_client_gets_its_share_and_slots_come_back() {
        let connections = Connections::new(100, 2, &[]);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let first = connections.admit(a).unwrap();
        let _second = connections.admit(a).unwrap();
        assert!(connections.admit(a).is_none());
        let _other = connections.admit(b).unwrap();
        drop(first);
        assert_eq!(connections.held(a), 1);
        assert!(connections.admit(a).is_some());
    }

    #[test]
    fn a_newcomer_gets_in_when_others_hold_more_than_their_share() {
        let connections = Connections::new(8, 8, &[]);
        let (hog, newcomer) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut held: Vec<_> = (0..8).map(|_| connections.admit(hog).unwrap()).collect();
        let (_slot, _) = connections.admit(newcomer).unwrap();
        // The hog's oldest connection was told to close, and no longer counts.
        assert_eq!(held[0].1.try_recv(), Ok(()));
        assert!(held[1].1.try_recv().is_err());
        assert_eq!((connections.held(hog), connections.held(newcomer)), (7, 1));
        // Its slot, dropped when that connection ends, changes nothing more.
        held.remove(0);
        assert_eq!((connections.held(hog), connections.held(newcomer)), (7, 1));
        // Shares even out down to one apart, then the table is full for everyone.
        let mut mine = Vec::new();
        while let Some(slot) = connections.admit(newcomer) {
            mine.push(slot);
        }
        assert_eq!((connections.held(hog), connections.held(newcomer)), (4, 4));
        // Six more clients: each newcomer closes one of the busiest's, until all eight hold one
        // and a ninth finds no one over their share.
        let others: Vec<_> = (1..=6).map(|i| ip(&format!("10.0.1.{i}"))).collect();
        let _theirs: Vec<_> = others
            .iter()
            .map(|c| connections.admit(*c).unwrap())
            .collect();
        assert_eq!((connections.held(hog), connections.held(newcomer)), (1, 1));
        assert!(others.iter().all(|c| connections.held(*c) == 1));
        assert!(connections.admit(ip("10.0.2.1")).is_none());
    }

    #[test]
    fn a_trusted_proxy_may_hold_every_slot() {
        let connections = Connections::new(4, 1, &[ip("127.0.0.1")]);
        let _held: Vec<_> = (0..4)
            .map(|_| connections.admit(ip("127.0.0.1")).unwrap())
            .collect();
        assert!(connections.admit(ip("127.0.0.1")).is_none());
        assert_eq!(connections.held(ip("127.0.0.1")), 4);
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let connections = Connections::new(100, 2, &[]);
        let _a = connections.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = connections.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert!(connections.admit(ip("2001:db8:1:2::77")).is_none());
        assert!(connections.admit(ip("2001:db8:1:3::1")).is_some());
        assert_eq!(client_of(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }
}
