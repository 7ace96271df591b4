//! The registry, the API-access module and the parameters as the node's store holds them
//! after a block.

use aicoin_modules::{
    Exit,
    access::{IApiAccess, Subscription, gateways},
    registry::{state, state::Provider, view},
    store::ReadOnly,
};
use aicoin_primitives::{
    modules::{API_ACCESS_ADDRESS, PARAMS_ADDRESS, REGISTRY_ADDRESS},
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
        self.slots_of(REGISTRY_ADDRESS)
    }

    fn slots_of(
        &self,
        module: Address,
    ) -> ReadOnly<impl FnMut(B256) -> Result<U256, StoreError> + '_> {
        let state = &self.state;
        ReadOnly(move |slot: B256| state.storage(&module, &slot.into()))
    }

    /// The models `provider` serves as pipeline shards, with their layers.
    pub fn shards(
        &self,
        provider: &Provider,
    ) -> Result<Vec<(String, std::ops::Range<u32>)>, ViewError> {
        Ok(view::shards(&mut self.slots(), provider)?)
    }

    /// `account`'s API subscription as stored (whether it is active depends on the block).
    pub fn subscription(&self, account: Address) -> Result<Subscription, ViewError> {
        Ok(Subscription::load(
            &mut self.slots_of(API_ACCESS_ADDRESS),
            account,
        )?)
    }

    /// The registered gateways.
    pub fn gateways(&self) -> Result<Vec<IApiAccess::Gateway>, ViewError> {
        Ok(gateways::list(&mut self.slots_of(API_ACCESS_ADDRESS))?)
    }

    pub fn is_gateway(&self, account: Address) -> Result<bool, ViewError> {
        Ok(gateways::is_gateway(
            &mut self.slots_of(API_ACCESS_ADDRESS),
            account,
        )?)
    }

    /// Whether `gateway` reported its usage of `epoch`.
    pub fn usage_reported(&self, epoch: u64, gateway: Address) -> Result<bool, ViewError> {
        Ok(!self
            .state
            .storage(
                &API_ACCESS_ADDRESS,
                &aicoin_primitives::access::usage_reported_slot(epoch, gateway).into(),
            )?
            .is_zero())
    }

    /// Whether `provider` failed an audit lately, seen during epoch `current`: the last settled
    /// epoch's record says so, or more than half of the validators that reported the epoch before
    /// `current` so far saw a failed audit (one validator alone cannot bar a provider).
    pub fn failed_audit_lately(&self, provider: Address, current: u64) -> Result<bool, ViewError> {
        let mut slots = self.slots();
        if let Some(settled) = current.checked_sub(2)
            && state::load_record(&mut slots, provider, settled)?.auditFailed
        {
            return Ok(true);
        }
        let Some(reported) = current.checked_sub(1) else {
            return Ok(false);
        };
        let reporters = aicoin_modules::store::load_addresses(
            &mut slots,
            aicoin_primitives::registry::reporters_slot(reported),
        )?;
        let mut seen = 0;
        let mut failed = 0;
        for validator in reporters {
            let report = state::load_report(&mut slots, reported, validator, provider)?;
            if report.jobs > 0 {
                seen += 1;
                failed += usize::from(report.auditFailed > 0);
            }
        }
        Ok(2 * failed > seen)
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
