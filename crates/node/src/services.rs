//! What a starting node has set running, as one guard: the shutdown signal every service
//! watches, the RPC server and the background tasks. If start-up fails part-way, dropping the
//! guard stops whatever was already started, so a node that did not start leaves nothing behind.

use aicoin_rpc::ServerHandle;
use tokio::{sync::watch, task::JoinHandle};

#[derive(Debug)]
pub(crate) struct Services {
    shutdown: watch::Sender<bool>,
    rpc: Option<ServerHandle>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
    /// Stop everything on drop (until start-up succeeds).
    armed: bool,
}

impl Services {
    pub(crate) fn new() -> Self {
        Self {
            shutdown: watch::channel(false).0,
            rpc: None,
            tasks: Vec::new(),
            armed: true,
        }
    }

    /// Turns true when the node stops.
    pub(crate) fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// A future that resolves when the node stops.
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut shutdown = self.shutdown();
        async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        }
    }

    pub(crate) fn set_rpc(&mut self, rpc: ServerHandle) {
        self.rpc = Some(rpc);
    }

    pub(crate) fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    /// Start-up succeeded: from now on the node runs until [`Services::stop`].
    pub(crate) fn started(mut self) -> Self {
        self.armed = false;
        self
    }

    /// Signals every service to stop and waits for the tasks and the RPC server (`cluster`
    /// stops in between: it must see the signal, and finish, before the RPC closes).
    pub(crate) async fn stop(mut self, cluster: impl Future<Output = ()>) {
        let _ = self.shutdown.send(true);
        cluster.await;
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        if let Some(rpc) = self.rpc.take() {
            let _ = rpc.stop();
            rpc.stopped().await;
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.shutdown.send(true);
            if let Some(rpc) = &self.rpc {
                let _ = rpc.stop();
            }
        }
    }
}
