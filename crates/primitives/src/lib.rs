//! Chain-wide definitions shared by every AICoin crate: the chain spec, the issuance rules, the
//! stored receipt, the dev accounts and the new-head event.

pub mod chain_spec;
pub mod dev;
pub mod events;
pub mod receipt;
pub mod tokenomics;

pub use chain_spec::{
    AICOIN_CHAIN_ID, ChainSpec, ChainSpecError, DEFAULT_GAS_LIMIT, Genesis, GenesisAccount,
    TREASURY_ADDRESS,
};
pub use events::NewBlock;
pub use receipt::TxReceipt;
pub use tokenomics::{AIC, BlockReward, Tokenomics, TokenomicsError};
