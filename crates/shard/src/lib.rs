//! Pipeline-parallel inference across providers: a model's layers split into ranges that
//! different providers serve, chained by a coordinator that survives a dying shard.
//!
//! - [`frame`]: the one binary frame of the shard protocol (session, start position, token
//!   count, the hidden states as raw f32).
//! - [`server`]: a provider's shard sessions over a WebSocket, each with its KV cache reserved
//!   against the node's budget, closed when idle.
//! - [`link`]: the coordinator's signed WebSocket to one shard.
//! - [`route`]: the fastest chain of shards over a range of layers, and bans with backoff.
//! - [`local`]: a shard on loopback with a runtime of its own, for tests and benchmarks.
//! - [`coordinator`]: the layers of a split model run through the chain, with failover that
//!   replays the prefix on a new provider, so the output stays the single node's, token for
//!   token.

pub mod coordinator;
pub mod frame;
pub mod link;
pub mod local;
pub mod route;
pub mod server;

pub use coordinator::{Coordinator, CoordinatorConfig};
pub use route::Shard;
pub use server::{ShardConfig, ShardServer, ShardSpec};

/// The largest frame either side accepts (a 128-token prefill chunk of an 8,192-wide model is
/// 4 MiB).
pub const MAX_FRAME_BYTES: usize = 64 << 20;
