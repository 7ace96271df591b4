//! The EVM environment of a block: Osaka rules (revm's newest), AICoin's chain id, a zero base
//! fee, and the header's number, time, beneficiary and gas limit.

use alloy_consensus::Header;
use alloy_evm::EvmEnv;
use alloy_primitives::U256;
use revm::{
    context::{BlockEnv, CfgEnv},
    primitives::hardfork::SpecId,
};

/// The hardfork AICoin executes: the newest revm supports.
pub const SPEC: SpecId = SpecId::OSAKA;

/// Largest gas limit one transaction may carry (EIP-7825, active since Osaka).
pub const TX_GAS_LIMIT_CAP: u64 = revm::primitives::eip7825::TX_GAS_LIMIT_CAP;

/// The environment for executing the block `header` describes.
pub fn block_env(chain_id: u64, header: &Header) -> EvmEnv {
    let mut cfg = CfgEnv::new_with_spec(SPEC);
    cfg.chain_id = chain_id;
    let block = BlockEnv {
        number: U256::from(header.number),
        beneficiary: header.beneficiary,
        timestamp: U256::from(header.timestamp),
        gas_limit: header.gas_limit,
        basefee: 0,
        difficulty: U256::ZERO,
        prevrandao: Some(header.mix_hash),
        ..Default::default()
    };
    EvmEnv {
        cfg_env: cfg,
        block_env: block,
    }
}
