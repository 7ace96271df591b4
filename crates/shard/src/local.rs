//! A shard served on loopback by a runtime of its own, for tests and benchmarks: killing it
//! drops the runtime, which ends every connection at once, as a killed process's would.

use std::{ops::Range, sync::Arc};

use aicoin_inference::llama::Llama;
use alloy_primitives::Address;

use crate::{Shard, ShardConfig, ShardServer};

pub struct LocalShard {
    runtime: Option<tokio::runtime::Runtime>,
    /// Its record, as the registry would list it, under `provider`.
    pub shard: Shard,
    pub server: Arc<ShardServer>,
}

impl LocalShard {
    /// Serves `layers` (loaded in `model`) of model `id` on 127.0.0.1 as `provider`.
    pub fn start(
        id: &str,
        model: Arc<Llama>,
        provider: Address,
        config: ShardConfig,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let layers: Range<usize> = model.range.clone();
        let server = ShardServer::new([(id.to_string(), model)], config, None);
        let router = server.router();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        // As every server of the node: no Nagle delay on small frames.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        runtime.spawn(async move { axum::serve(listener, router).await });
        Ok(Self {
            runtime: Some(runtime),
            shard: Shard {
                provider,
                api_url: format!("http://{addr}"),
                layers,
            },
            server,
        })
    }

    /// Ends it and every session it holds, at once.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for LocalShard {
    fn drop(&mut self) {
        self.kill();
    }
}
