//! The registry and the parameters as the node's store holds them after a block.

use aicoin_modules::{
    Exit,
    registry::{state::Provider, view},
    store::ReadOnly,
};
use aicoin_primitives::{
    modules::{PARAMS_ADDRESS, REGISTRY_ADDRESS},
    param_key,
    registry::ListedModel,
};
use aicoin_storage::{Reader, StateView, StoreError};
use alloy_primitives::{Address, B256, U256};

pub use view::{Epoch, Status};

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the compute registry: {0}")]
    Registry(#[from] Exit),
}

/// Reads one block's state.
pub struct RegistryView {
    state: StateView,
}

impl RegistryView {
    /// The state at `reader`'s head.
    pub fn new(reader: &Reader) -> Result<Self, ViewError> {
        Self::at(reader, reader.head_number()?)
    }

    /// The state after block `number`.
    pub fn at(reader: &Reader, number: u64) -> Result<Self, ViewError> {
        Ok(Self {
            state: reader.state_at(number)?,
        })
    }

    fn slots(&self) -> ReadOnly<impl FnMut(B256) -> Result<U256, StoreError> + '_> {
        let state = &self.state;
        ReadOnly(move |slot: B256| state.storage(&REGISTRY_ADDRESS, &slot.into()))
    }

    pub fn epoch(&self) -> Result<Epoch, ViewError> {
        Ok(view::epoch(&mut self.slots())?)
    }

    pub fn providers(&self) -> Result<Vec<Provider>, ViewError> {
        Ok(view::providers(&mut self.slots())?)
    }

    pub fn provider(&self, address: Address) -> Result<Provider, ViewError> {
        Ok(view::provider(&mut self.slots(), address)?)
    }

    /// Whether governance suspended `address` (it can never register again).
    pub fn is_suspended(&self, address: Address) -> Result<bool, ViewError> {
        Ok(aicoin_modules::registry::is_suspended(
            &mut self.slots(),
            address,
        )?)
    }

    pub fn authorities(&self) -> Result<Vec<Address>, ViewError> {
        Ok(view::authorities(&mut self.slots())?)
    }

    pub fn models(&self) -> Result<Vec<ListedModel>, ViewError> {
        Ok(view::models(&mut self.slots())?)
    }

    /// The chain parameter `name` (zero for a name the chain does not have).
    pub fn param(&self, name: &str) -> Result<U256, ViewError> {
        Ok(self
            .state
            .storage(&PARAMS_ADDRESS, &param_key(name).into())?)
    }

    pub fn param_u64(&self, name: &str) -> Result<u64, ViewError> {
        Ok(self.param(name)?.saturating_to())
    }

    pub fn balance(&self, address: Address) -> Result<U256, ViewError> {
        Ok(self
            .state
            .account(&address)?
            .map_or(U256::ZERO, |a| a.balance))
    }
}
