//! Transaction execution on revm: the one EVM factory (with the chain modules), the block
//! builder used by producers and importers, read-only calls, gas estimation, access lists and
//! geth-style traces for RPC, and the stateless checks a transaction passes before it may enter
//! the pool.

mod builder;
mod call;
mod db;
mod env;
mod evm;
mod trace;
mod validate;

pub use builder::{BlockBuilder, BuiltBlock, ExecError, TxError, zero_fee_tx_env};
pub use call::{
    AccessListOutcome, CallDb, CallEnv, CallError, CallOutcome, call, create_access_list,
    estimate_gas,
};
pub use db::{DbError, StateDb};
pub use env::{SPEC, TX_GAS_LIMIT_CAP, block_env};
pub use evm::{AicoinEvm, AicoinEvmFactory};
pub use trace::{MinedAt, TraceBudget, TraceError, trace_block, trace_call};
pub use validate::{MAX_TX_SIZE, TxValidationError, decode_and_validate, validate_transaction};
