//! Chain-wide definitions shared by every AICoin crate: the chain spec, the issuance rules, the
//! stored receipt and the dev accounts.

pub mod chain_spec;
pub mod dev;
pub mod receipt;
pub mod tokenomics;

pub use chain_spec::{
    AICOIN_CHAIN_ID, ChainSpec, ChainSpecError, DEFAULT_GAS_LIMIT, Genesis, GenesisAccount,
    TREASURY_ADDRESS,
};
pub use receipt::TxReceipt;
pub use tokenomics::{AIC, BlockReward, Tokenomics, TokenomicsError};
