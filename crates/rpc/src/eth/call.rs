//! Read-only execution: `eth_call` (with state and block overrides), `eth_estimateGas` (with
//! state overrides) and `eth_createAccessList`, against any block's state.

use aicoin_execution::{CallOutcome, call, create_access_list, estimate_gas};
use alloy_eips::{BlockId, eip2930::AccessListResult};
use alloy_primitives::{Bytes, U64, U256};
use alloy_rpc_types_eth::{
    BlockOverrides, TransactionRequest,
    state::{EvmOverrides, StateOverride},
};
use jsonrpsee::proc_macros::rpc;

use super::EthRpc;
use crate::error::{RpcError, RpcResult};

#[rpc(server, namespace = "eth")]
pub trait EthCallApi {
    #[method(name = "call", blocking)]
    fn call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<StateOverride>,
        block_overrides: Option<Box<BlockOverrides>>,
    ) -> RpcResult<Bytes>;

    #[method(name = "estimateGas", blocking)]
    fn estimate_gas(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<StateOverride>,
    ) -> RpcResult<U64>;

    #[method(name = "createAccessList", blocking)]
    fn create_access_list(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<StateOverride>,
    ) -> RpcResult<AccessListResult>;
}

impl EthCallApiServer for EthRpc {
    fn call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<StateOverride>,
        block_overrides: Option<Box<BlockOverrides>>,
    ) -> RpcResult<Bytes> {
        let overrides = EvmOverrides::new(state_overrides, block_overrides);
        let mut env = self.state.call_env(block, overrides)?;
        match call(&mut env, request)? {
            CallOutcome::Success { output, .. } => Ok(output),
            CallOutcome::Revert { output, .. } => Err(RpcError::Reverted(output)),
            CallOutcome::Halt { reason, .. } => {
                Err(RpcError::Call(format!("execution failed: {reason}")))
            }
        }
    }

    fn estimate_gas(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<StateOverride>,
    ) -> RpcResult<U64> {
        let overrides = EvmOverrides::new(state_overrides, None);
        let mut env = self.state.call_env(block, overrides)?;
        Ok(U64::from(estimate_gas(&mut env, request)?))
    }

    fn create_access_list(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<StateOverride>,
    ) -> RpcResult<AccessListResult> {
        let overrides = EvmOverrides::new(state_overrides, None);
        let mut env = self.state.call_env(block, overrides)?;
        let outcome = create_access_list(&mut env, request)?;
        Ok(AccessListResult {
            access_list: outcome.access_list,
            gas_used: U256::from(outcome.gas_used),
            error: outcome.error,
        })
    }
}
