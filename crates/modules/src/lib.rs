//! Chain modules: AICoin's on-chain logic as native Rust behind stateful precompiles at fixed
//! addresses (the way Cosmos EVM exposes its staking and governance modules). Each module has a
//! Solidity interface in `contracts/interfaces/`, from which its calls are decoded here, so
//! ethers, viem, web3.py, Foundry and other contracts call it with an ordinary ABI. Its state is
//! EVM storage under its address (in the state root, proofs and history), its events are
//! ordinary logs, and every call is metered in gas.
//!
//! [`install`] puts every module into an EVM's precompiles; the execution crate's one EVM
//! factory calls it for block building, `eth_call`, gas estimation and every tracer alike.

pub mod access;
mod call;
pub mod governance;
pub mod history;
pub mod params;
pub mod registry;
pub mod store;

pub use aicoin_primitives::modules::{
    API_ACCESS_ADDRESS, GOVERNANCE_ADDRESS, MODULES, PARAMS_ADDRESS, REGISTRY_ADDRESS,
    SYSTEM_ADDRESS,
};
pub use call::{CALL_GAS, CallResult, Exit, READ_GAS, WRITE_GAS};
pub use history::{History, HistoryError};

use std::sync::Arc;

use alloy_evm::precompiles::{DynPrecompile, PrecompileInput, PrecompilesMap};
use alloy_primitives::{Address, Bytes};
use revm::precompile::{PrecompileId, PrecompileResult};

use crate::call::ModuleCall;

/// Adds every module's precompile to `precompiles`; `history` is the chain before the block
/// the EVM executes.
pub fn install(precompiles: &mut PrecompilesMap, history: Arc<dyn History>) {
    precompiles.extend_precompiles([
        module(
            PARAMS_ADDRESS,
            "aicoin-params",
            params::call,
            history.clone(),
        ),
        module(
            REGISTRY_ADDRESS,
            "aicoin-registry",
            registry::call,
            history.clone(),
        ),
        module(
            API_ACCESS_ADDRESS,
            "aicoin-access",
            access::call,
            history.clone(),
        ),
        module(
            GOVERNANCE_ADDRESS,
            "aicoin-governance",
            governance::call,
            history,
        ),
    ]);
}

/// The precompile that answers calls at `address` with `handler`.
fn module(
    address: Address,
    id: &'static str,
    handler: fn(&mut ModuleCall<'_>) -> CallResult<Bytes>,
    history: Arc<dyn History>,
) -> (Address, DynPrecompile) {
    let precompile = move |input: PrecompileInput<'_>| -> PrecompileResult {
        let mut call = ModuleCall::new(input, address, &*history);
        let result = handler(&mut call);
        call.finish(result)
    };
    (
        address,
        DynPrecompile::new_stateful(PrecompileId::custom(id), precompile),
    )
}
