//! Chain-wide definitions shared by every AICoin crate: the chain spec, the issuance rules, the
//! chain parameters and the modules' addresses, the sealed block, the stored receipt, the dev
//! accounts and the new-head event.

pub mod access;
pub mod block;
pub mod chain_spec;
pub mod dev;
pub mod events;
pub mod governance;
pub mod modules;
pub mod params;
pub mod receipt;
pub mod registry;
pub mod signing;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
pub mod tokenomics;

pub use block::{Seal, SealedBlock};
pub use chain_spec::{
    AICOIN_CHAIN_ID, ChainSpec, ChainSpecError, DEFAULT_GAS_LIMIT, Genesis, GenesisAccount,
    TREASURY_ADDRESS,
};
pub use events::NewBlock;
pub use params::{PARAMS, ParamDef, ParamError, Params, param_by_key, param_key};
pub use receipt::TxReceipt;
pub use signing::sign_transaction;
pub use tokenomics::{AIC, BlockReward, Tokenomics, TokenomicsError};
