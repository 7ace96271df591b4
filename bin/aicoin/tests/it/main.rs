//! Integration tests: real `aicoin` processes on free 127.0.0.1 ports, one file per feature.

mod bad_input;
mod blocks;
mod cluster;
mod common;
mod config;
mod docs;
mod inference;
mod restart;
mod rewards;
mod rpc_debug;
mod rpc_eth;
mod rpc_limits;
mod rpc_load;
mod rpc_protocol;
mod subscriptions;
mod wallet;
