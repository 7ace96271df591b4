//! Where the chain modules live: native code behind stateful precompiles at fixed addresses,
//! their state in EVM storage under those addresses. Each address also holds a one-byte stub of
//! code from genesis, so tools (and Solidity's `extcodesize` check before a call) see a contract.

use alloy_primitives::{Address, Bytes, address};

/// The parameters module (`IParams`).
pub const PARAMS_ADDRESS: Address = address!("0x0000000000000000000000000000000000a1c001");

/// The compute registry (`IComputeRegistry`): providers, their stakes, the validators'
/// reports, scores and rewards.
pub const REGISTRY_ADDRESS: Address = address!("0x0000000000000000000000000000000000a1c002");

/// The API-access module (`IApiAccess`): tier purchases, subscriptions, API key generations.
pub const API_ACCESS_ADDRESS: Address = address!("0x0000000000000000000000000000000000a1c003");

/// The caller of the chain's own end-of-block steps (EIP-4788's system address): no one holds
/// its key, so only the block-execution path can call as it.
pub const SYSTEM_ADDRESS: Address = address!("0xfffffffffffffffffffffffffffffffffffffffe");

/// The governance module (`IGovernance`): proposals, votes, and the parameter changes and
/// treasury spends they execute.
pub const GOVERNANCE_ADDRESS: Address = address!("0x0000000000000000000000000000000000a1c004");

/// Every module, by name.
pub const MODULES: &[(&str, Address)] = &[
    ("params", PARAMS_ADDRESS),
    ("registry", REGISTRY_ADDRESS),
    ("access", API_ACCESS_ADDRESS),
    ("governance", GOVERNANCE_ADDRESS),
];

/// The code stored at each module address: `INVALID`, never run (the precompile answers first).
pub fn module_stub_code() -> Bytes {
    Bytes::from_static(&[0xfe])
}
