//! Proof-of-compute off the chain: what validators and providers run beside the chain module
//! (`aicoin_modules::registry`).
//!
//! - [`jobs`]: challenge jobs that look like real traffic, drawn from a seed;
//! - [`client`]: one streamed, signed job against a provider, timed;
//! - [`heads`]: the new-head loop block-driven tasks run on;
//! - [`audit`]: one teacher-forced pass of prompt + claimed answer on the auditor's own model;
//! - [`shard_probe`]: one probe of a pipeline shard's layers, and its audit;
//! - [`prober`]: a validator's epoch of probes, audits and its report transaction;
//! - [`provider`]: a provider registering (or updating) itself;
//! - [`tx`]: signing and sending a module call through the node's JSON-RPC.

pub mod audit;
pub mod client;
pub mod heads;
pub mod jobs;
pub mod prober;
pub mod provider;
pub mod shard_probe;
pub mod tx;
pub mod view;
