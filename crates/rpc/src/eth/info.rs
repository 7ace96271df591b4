//! Facts about the chain and this node: chain id, fees (all zero), fee history, sync and mining
//! status.

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{Address, U64, U256};
use alloy_rpc_types_eth::FeeHistory;
use jsonrpsee::proc_macros::rpc;

use super::EthRpc;
use crate::{
    block_id::number_for_tag,
    error::{RpcError, RpcResult},
};

/// Most blocks one `eth_feeHistory` call covers (as geth).
const MAX_FEE_HISTORY_BLOCKS: u64 = 1024;
/// Most reward percentiles one `eth_feeHistory` call may ask for (as geth).
const MAX_REWARD_PERCENTILES: usize = 100;

#[rpc(server, namespace = "eth")]
pub trait EthInfoApi {
    #[method(name = "chainId")]
    fn chain_id(&self) -> RpcResult<U64>;

    #[method(name = "gasPrice")]
    fn gas_price(&self) -> RpcResult<U256>;

    #[method(name = "maxPriorityFeePerGas")]
    fn max_priority_fee_per_gas(&self) -> RpcResult<U256>;

    #[method(name = "blobBaseFee")]
    fn blob_base_fee(&self) -> RpcResult<U256>;

    #[method(name = "feeHistory", blocking)]
    fn fee_history(
        &self,
        block_count: U64,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory>;

    #[method(name = "syncing")]
    fn syncing(&self) -> RpcResult<bool>;

    #[method(name = "mining")]
    fn mining(&self) -> RpcResult<bool>;

    #[method(name = "hashrate")]
    fn hashrate(&self) -> RpcResult<U256>;

    #[method(name = "coinbase")]
    fn coinbase(&self) -> RpcResult<Address>;
}

/// Checks percentiles as geth does: at most 100, each within 0..=100, in ascending order.
fn check_percentiles(percentiles: &[f64]) -> RpcResult<()> {
    if percentiles.len() > MAX_REWARD_PERCENTILES {
        return Err(RpcError::InvalidParams(format!(
            "at most {MAX_REWARD_PERCENTILES} reward percentiles, got {}",
            percentiles.len()
        )));
    }
    if let Some(p) = percentiles.iter().find(|p| !(0.0..=100.0).contains(*p)) {
        return Err(RpcError::InvalidParams(format!(
            "reward percentile {p} is outside 0..=100"
        )));
    }
    if percentiles.windows(2).any(|w| w[0] > w[1]) {
        return Err(RpcError::InvalidParams(
            "reward percentiles must be in ascending order".into(),
        ));
    }
    Ok(())
}

impl EthInfoApiServer for EthRpc {
    fn chain_id(&self) -> RpcResult<U64> {
        Ok(U64::from(self.state.chain_id()))
    }

    fn gas_price(&self) -> RpcResult<U256> {
        Ok(U256::ZERO)
    }

    fn max_priority_fee_per_gas(&self) -> RpcResult<U256> {
        Ok(U256::ZERO)
    }

    fn blob_base_fee(&self) -> RpcResult<U256> {
        Ok(U256::ZERO)
    }

    fn fee_history(
        &self,
        block_count: U64,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory> {
        if let Some(p) = &reward_percentiles {
            check_percentiles(p)?;
        }
        let reader = self.state.reader()?;
        let newest = number_for_tag(&reader, newest_block)?.ok_or(RpcError::HeaderNotFound)?;
        if block_count.is_zero() {
            // geth's answer to no blocks: nothing, from block 0.
            return Ok(FeeHistory::default());
        }
        let count = block_count
            .to::<u64>()
            .min(MAX_FEE_HISTORY_BLOCKS)
            .min(newest + 1);
        let oldest = newest + 1 - count;
        let mut gas_used_ratio = Vec::with_capacity(count as usize);
        for number in oldest..=newest {
            let header = reader.header(number)?.ok_or(RpcError::HeaderNotFound)?;
            gas_used_ratio.push(header.gas_used as f64 / header.gas_limit.max(1) as f64);
        }
        let n = count as usize;
        Ok(FeeHistory {
            base_fee_per_gas: vec![0; n + 1],
            gas_used_ratio,
            base_fee_per_blob_gas: vec![0; n + 1],
            blob_gas_used_ratio: vec![0.0; n],
            oldest_block: oldest,
            reward: reward_percentiles.map(|p| vec![vec![0; p.len()]; n]),
        })
    }

    fn syncing(&self) -> RpcResult<bool> {
        Ok(false)
    }

    fn mining(&self) -> RpcResult<bool> {
        Ok(self.state.mining)
    }

    fn hashrate(&self) -> RpcResult<U256> {
        Ok(U256::ZERO)
    }

    fn coinbase(&self) -> RpcResult<Address> {
        Ok(self.state.coinbase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_checked_before_anything_is_allocated() {
        assert!(check_percentiles(&[10.0, 50.0, 90.0]).is_ok());
        assert!(check_percentiles(&[50.0, 10.0]).is_err());
        assert!(check_percentiles(&[101.0]).is_err());
        assert!(check_percentiles(&[f64::NAN]).is_err());
        assert!(check_percentiles(&vec![1.0; 101]).is_err());
    }
}
