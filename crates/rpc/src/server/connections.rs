//! Who may hold a connection: the total cap (the accept loop stops accepting at it), a cap per
//! client address (so one host cannot take every slot), and an idle timeout (so connections
//! that send nothing, such as an abandoned keep-alive, give their slot back). WebSocket clients
//! stay connected however long they wait for notifications: the server pings them and their
//! pongs count as activity.

use std::{collections::HashMap, net::IpAddr, pin::Pin, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio_io_timeout::TimeoutStream;

/// geth's HTTP idle timeout.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How often WebSocket clients are pinged; well under [`IDLE_TIMEOUT`].
pub const WS_PING_INTERVAL: Duration = Duration::from_secs(30);

/// Open connections per client address.
#[derive(Debug, Default)]
pub struct PerClient {
    max: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One client's connection slot; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::default(),
        })
    }

    /// A slot for `ip`, unless it already holds the most allowed.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock();
        let count = open.entry(ip).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            owner: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> u32 {
        self.open.lock().get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// `socket`, closed by an error once it has received nothing for [`IDLE_TIMEOUT`].
pub fn with_idle_timeout(socket: TcpStream) -> Pin<Box<TimeoutStream<TcpStream>>> {
    let mut stream = TimeoutStream::new(socket);
    stream.set_read_timeout(Some(IDLE_TIMEOUT));
    Box::pin(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_share_and_slots_come_back() {
        let per = PerClient::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = per.admit(a).unwrap();
        let _second = per.admit(a).unwrap();
        assert!(per.admit(a).is_none());
        let _other = per.admit(b).unwrap();
        drop(first);
        assert_eq!(per.open(a), 1);
        assert!(per.admit(a).is_some());
    }
}
