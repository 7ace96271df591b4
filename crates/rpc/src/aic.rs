//! The `aic_` namespace: AICoin's own reads. The chain modules and their addresses, and the
//! chain parameters as the state of any block holds them (the same values `IParams` returns to
//! an `eth_call` at that block).

use std::{collections::BTreeMap, sync::Arc};

use aicoin_primitives::{
    PARAMS, Params,
    modules::{MODULES, PARAMS_ADDRESS},
};
use alloy_eips::BlockId;
use alloy_primitives::{Address, U256};
use jsonrpsee::proc_macros::rpc;

use crate::{block_id::state_block, error::RpcResult, state::RpcState};

#[rpc(server, namespace = "aic")]
pub trait AicApi {
    /// Every chain module's name and address.
    #[method(name = "modules")]
    fn modules(&self) -> RpcResult<BTreeMap<String, Address>>;

    /// Every chain parameter by name, at `block` (default `latest`).
    #[method(name = "getParams")]
    fn get_params(&self, block: Option<BlockId>) -> RpcResult<BTreeMap<String, U256>>;
}

#[derive(Debug, Clone)]
pub struct AicRpc {
    state: Arc<RpcState>,
}

impl AicRpc {
    pub fn new(state: Arc<RpcState>) -> Self {
        Self { state }
    }
}

impl AicApiServer for AicRpc {
    fn modules(&self) -> RpcResult<BTreeMap<String, Address>> {
        Ok(MODULES
            .iter()
            .map(|(name, address)| (name.to_string(), *address))
            .collect())
    }

    fn get_params(&self, block: Option<BlockId>) -> RpcResult<BTreeMap<String, U256>> {
        let reader = self.state.reader()?;
        let number = state_block(&reader, block)?;
        let state = reader.state_at(number)?;
        let params = Params::read(|key| state.storage(&PARAMS_ADDRESS, &key.into()))?;
        Ok(PARAMS
            .iter()
            .map(|def| {
                (
                    def.name.to_string(),
                    params.get(def.name).unwrap_or_default(),
                )
            })
            .collect())
    }
}
