//! Checks a raw transaction must pass before it enters the pool, none of which need state:
//! encoding, size, type, replay protection and chain id, signature, and gas bounds.

use alloy_consensus::{
    Transaction, TxEnvelope,
    transaction::{Recovered, SignerRecoverable},
};
use alloy_eips::eip2718::Decodable2718;
use revm::{
    context_interface::cfg::gas::calculate_initial_tx_gas_for_tx,
    primitives::eip3860::MAX_INITCODE_SIZE,
};

use crate::{
    builder::zero_fee_tx_env,
    env::{SPEC, TX_GAS_LIMIT_CAP},
};

/// Largest encoded transaction accepted (as geth's pool).
pub const MAX_TX_SIZE: usize = 128 * 1024;

/// Why a raw transaction was refused before reaching the pool. Messages follow geth's wording
/// where geth has one, so client libraries recognise them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxValidationError {
    #[error("oversized data: transaction is {size} bytes, the limit is {MAX_TX_SIZE}")]
    Oversized { size: usize },
    #[error("invalid transaction encoding: {0}")]
    Decode(String),
    #[error(
        "transaction type not supported: EIP-4844 blob transactions are not accepted on AICoin"
    )]
    BlobTransaction,
    #[error(
        "transaction type not supported: EIP-7702 set-code transactions are not accepted on AICoin"
    )]
    SetCodeTransaction,
    #[error("only replay-protected (EIP-155) transactions allowed over RPC")]
    NotReplayProtected,
    #[error("invalid chain id: transaction is signed for chain {got}, this chain is {expected}")]
    WrongChainId { expected: u64, got: u64 },
    #[error("invalid sender: {0}")]
    BadSignature(String),
    #[error("exceeds block gas limit: transaction gas {gas}, block gas limit {limit}")]
    GasAboveBlockLimit { gas: u64, limit: u64 },
    #[error(
        "transaction gas limit too high: {gas}, the per-transaction cap is {TX_GAS_LIMIT_CAP} (EIP-7825)"
    )]
    GasAboveCap { gas: u64 },
    #[error("intrinsic gas too low: transaction gas {gas}, needs at least {needed}")]
    IntrinsicGasTooLow { gas: u64, needed: u64 },
    #[error("max initcode size exceeded: {size} bytes, the limit is {MAX_INITCODE_SIZE}")]
    InitCodeTooLarge { size: usize },
}

/// Decodes an EIP-2718 transaction and runs every stateless check, returning it with its
/// signer recovered.
pub fn decode_and_validate(
    raw: &[u8],
    chain_id: u64,
    block_gas_limit: u64,
) -> Result<Recovered<TxEnvelope>, TxValidationError> {
    if raw.len() > MAX_TX_SIZE {
        return Err(TxValidationError::Oversized { size: raw.len() });
    }
    let tx =
        TxEnvelope::decode_2718_exact(raw).map_err(|e| TxValidationError::Decode(e.to_string()))?;
    validate_transaction(tx, chain_id, block_gas_limit)
}

/// The stateless checks on an already decoded transaction (also applied to every transaction of
/// an imported block).
pub fn validate_transaction(
    tx: TxEnvelope,
    chain_id: u64,
    block_gas_limit: u64,
) -> Result<Recovered<TxEnvelope>, TxValidationError> {
    match &tx {
        TxEnvelope::Eip4844(_) => return Err(TxValidationError::BlobTransaction),
        TxEnvelope::Eip7702(_) => return Err(TxValidationError::SetCodeTransaction),
        TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_) | TxEnvelope::Eip1559(_) => {}
    }
    match tx.chain_id() {
        None => return Err(TxValidationError::NotReplayProtected),
        Some(got) if got != chain_id => {
            return Err(TxValidationError::WrongChainId {
                expected: chain_id,
                got,
            });
        }
        Some(_) => {}
    }
    let gas = tx.gas_limit();
    if gas > block_gas_limit {
        return Err(TxValidationError::GasAboveBlockLimit {
            gas,
            limit: block_gas_limit,
        });
    }
    if gas > TX_GAS_LIMIT_CAP {
        return Err(TxValidationError::GasAboveCap { gas });
    }
    if tx.is_create() && tx.input().len() > MAX_INITCODE_SIZE {
        return Err(TxValidationError::InitCodeTooLarge {
            size: tx.input().len(),
        });
    }
    let tx = tx
        .try_into_recovered()
        .map_err(|e| TxValidationError::BadSignature(e.to_string()))?;
    let intrinsic = calculate_initial_tx_gas_for_tx(zero_fee_tx_env(&tx), SPEC, None);
    let needed =
        (intrinsic.initial_regular_gas + intrinsic.initial_state_gas).max(intrinsic.floor_gas);
    if gas < needed {
        return Err(TxValidationError::IntrinsicGasTooLow { gas, needed });
    }
    Ok(tx)
}
