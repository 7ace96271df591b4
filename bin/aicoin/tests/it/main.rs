//! Integration tests, one file per feature: the RPC features against nodes spawned in-process,
//! the CLI, config, restarts, kills and clusters against real `aicoin` processes, all on
//! 127.0.0.1.

mod access;
mod bad_input;
mod blocks;
mod cluster;
mod common;
mod compute;
mod config;
mod disk;
mod docs;
mod gateway;
mod governance;
mod inference;
mod pipeline;
mod restart;
mod rewards;
mod rpc_debug;
mod rpc_eth;
mod rpc_limits;
mod rpc_load;
mod rpc_protocol;
mod subscriptions;
mod txpool;
mod wallet;
