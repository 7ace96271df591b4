//! The chain spec: everything that defines a chain before its first block (chain id, genesis
//! state, issuance parameters, treasury, and the authorities allowed to seal blocks).
//!
//! Two nodes with equal specs compute the same genesis block; a data dir remembers the genesis
//! hash it was created with and refuses to open under any other spec.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Bytes, U256, address};
use serde::{Deserialize, Serialize};

use crate::{
    governance,
    modules::{
        API_ACCESS_ADDRESS, GOVERNANCE_ADDRESS, MODULES, PARAMS_ADDRESS, REGISTRY_ADDRESS,
        module_stub_code,
    },
    params::{ParamError, Params},
    registry::{self, ListedModel},
    tokenomics::{AIC, Tokenomics, TokenomicsError},
};

/// AICoin's chain id (`0x83c`).
pub const AICOIN_CHAIN_ID: u64 = 2108;

/// Default block gas limit.
pub const DEFAULT_GAS_LIMIT: u64 = 30_000_000;

/// The protocol-held treasury: no key controls it; governance spends from it.
pub const TREASURY_ADDRESS: Address = address!("0x00000000000000000000000000000000000a1c01");

/// Balance given to each of the ten `--dev` accounts.
pub const DEV_ACCOUNT_BALANCE_AIC: u64 = 10_000;

/// An account present in the genesis state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    #[serde(default)]
    pub balance: U256,
    #[serde(default)]
    pub nonce: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Bytes>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<B256, B256>,
}

/// The genesis block's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Genesis block timestamp, in seconds.
    pub timestamp: u64,
    /// Genesis block gas limit.
    pub gas_limit: u64,
    /// Receives [`Tokenomics::genesis_allocation`].
    pub genesis_address: Address,
    /// Further accounts (prefunds, predeployed code). Their balances count against the cap.
    #[serde(default)]
    pub alloc: BTreeMap<Address, GenesisAccount>,
}

/// Everything that defines a chain before its first block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    pub chain_id: u64,
    pub genesis: Genesis,
    pub tokenomics: Tokenomics,
    /// Receives `treasury_share_bps` of every block reward.
    pub treasury: Address,
    /// Validator addresses whose seal a block must carry.
    pub authorities: Vec<Address>,
    /// Genesis values of chain parameters, by name (e.g. `epochLength`), over the defaults.
    /// The issuance schedule's come from `tokenomics`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, U256>,
    /// The models compute providers may register at genesis (governance changes the list).
    #[serde(default = "registry::default_models")]
    pub models: Vec<ListedModel>,
}

/// A spec that cannot start a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainSpecError {
    #[error("chain id must not be 0")]
    ZeroChainId,
    #[error("the authority set is empty: no one could seal a block")]
    NoAuthorities,
    #[error("genesis gas limit {0} is below the 21000 a transfer needs")]
    GasLimitTooLow(u64),
    #[error("genesis balances add up to more than 2^256 wei")]
    GenesisSupplyOverflow,
    #[error(transparent)]
    Tokenomics(#[from] TokenomicsError),
    #[error(transparent)]
    Params(#[from] Box<ParamError>),
    #[error("genesis alloc holds {0}, a chain module's address")]
    AllocAtModule(Address),
    #[error("the treasury is {0}: it must be an ordinary, nonzero address")]
    BadTreasury(Address),
    #[error("model list entry {index}: {problem}")]
    Model { index: usize, problem: &'static str },
}

impl ChainSpec {
    /// The spec a node builds on its own when given no spec: the published tokenomics, the local
    /// validator as the only authority and as the genesis address, and with `dev` the ten
    /// standard test accounts prefunded with 10,000 AIC each.
    pub fn local(chain_id: u64, validator: Address, dev_accounts: &[Address]) -> Self {
        let alloc = dev_accounts
            .iter()
            .map(|a| {
                let balance = AIC * U256::from(DEV_ACCOUNT_BALANCE_AIC);
                (
                    *a,
                    GenesisAccount {
                        balance,
                        ..Default::default()
                    },
                )
            })
            .collect();
        Self {
            chain_id,
            genesis: Genesis {
                timestamp: 0,
                gas_limit: DEFAULT_GAS_LIMIT,
                genesis_address: validator,
                alloc,
            },
            tokenomics: Tokenomics::default(),
            treasury: TREASURY_ADDRESS,
            authorities: vec![validator],
            params: BTreeMap::new(),
            models: registry::default_models(),
        }
    }

    /// The chain parameters at genesis.
    pub fn genesis_params(&self) -> Result<Params, ParamError> {
        Params::genesis(&self.tokenomics, &self.params)
    }

    /// The complete genesis state: `alloc`, the genesis allocation credited to the genesis
    /// address, and the modules' accounts (stub code; the parameters, the authorities and the
    /// model list in storage).
    pub fn genesis_accounts(&self) -> BTreeMap<Address, GenesisAccount> {
        let mut accounts = self.genesis.alloc.clone();
        // `validate` refuses specs whose parameters do not hold.
        let params = self.genesis_params().unwrap_or_default();
        accounts.insert(
            PARAMS_ADDRESS,
            GenesisAccount {
                code: Some(module_stub_code()),
                storage: params
                    .entries()
                    .map(|(key, value)| (key, B256::from(value)))
                    .collect(),
                ..Default::default()
            },
        );
        accounts.insert(
            REGISTRY_ADDRESS,
            GenesisAccount {
                code: Some(module_stub_code()),
                storage: registry::genesis_storage(
                    &self.authorities,
                    &self.models,
                    params.epoch_length.saturating_to(),
                ),
                ..Default::default()
            },
        );
        accounts.insert(
            API_ACCESS_ADDRESS,
            GenesisAccount {
                code: Some(module_stub_code()),
                ..Default::default()
            },
        );
        accounts.insert(
            GOVERNANCE_ADDRESS,
            GenesisAccount {
                code: Some(module_stub_code()),
                storage: governance::genesis_storage(
                    self.treasury,
                    self.tokenomics.max_supply,
                    self.genesis_supply(),
                ),
                ..Default::default()
            },
        );
        let genesis = accounts.entry(self.genesis.genesis_address).or_default();
        genesis.balance = genesis
            .balance
            .saturating_add(self.tokenomics.genesis_allocation);
        accounts
    }

    /// Everything issued at genesis; counts against `max_supply`. Saturates where the sum would
    /// overflow, which [`ChainSpec::validate`] refuses.
    pub fn genesis_supply(&self) -> U256 {
        self.checked_genesis_supply().unwrap_or(U256::MAX)
    }

    fn checked_genesis_supply(&self) -> Option<U256> {
        self.genesis
            .alloc
            .values()
            .map(|a| a.balance)
            .chain([self.tokenomics.genesis_allocation])
            .try_fold(U256::ZERO, |sum, b| sum.checked_add(b))
    }

    /// Checks that the spec can start a chain whose issuance respects the cap.
    pub fn validate(&self) -> Result<(), ChainSpecError> {
        if self.chain_id == 0 {
            return Err(ChainSpecError::ZeroChainId);
        }
        if self.authorities.is_empty() {
            return Err(ChainSpecError::NoAuthorities);
        }
        if self.genesis.gas_limit < 21_000 {
            return Err(ChainSpecError::GasLimitTooLow(self.genesis.gas_limit));
        }
        if self.treasury == Address::ZERO || MODULES.iter().any(|(_, m)| *m == self.treasury) {
            return Err(ChainSpecError::BadTreasury(self.treasury));
        }
        let supply = self
            .checked_genesis_supply()
            .ok_or(ChainSpecError::GenesisSupplyOverflow)?;
        self.tokenomics.validate(supply)?;
        self.genesis_params().map_err(Box::new)?;
        if let Some((_, address)) = MODULES
            .iter()
            .find(|(_, address)| self.genesis.alloc.contains_key(address))
        {
            return Err(ChainSpecError::AllocAtModule(*address));
        }
        for (index, model) in self.models.iter().enumerate() {
            let problem = if model.id.is_empty() || model.id.len() > 128 {
                Some("the id must be 1 to 128 bytes")
            } else if model.units == 0 {
                Some("units must be at least 1")
            } else if self.models[..index].iter().any(|m| m.id == model.id) {
                Some("the id is listed twice")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ChainSpecError::Model { index, problem });
            }
        }
        Ok(())
    }

    pub fn is_authority(&self, address: &Address) -> bool {
        self.authorities.contains(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALIDATOR: Address = address!("0x83374239A87BcbA593E0775b3EDA5a1ce8bDAA0C");

    #[test]
    fn local_spec_credits_genesis_allocation_and_dev_accounts() {
        let dev = [Address::repeat_byte(1), Address::repeat_byte(2)];
        let spec = ChainSpec::local(AICOIN_CHAIN_ID, VALIDATOR, &dev);
        spec.validate().unwrap();
        let accounts = spec.genesis_accounts();
        assert_eq!(
            accounts[&VALIDATOR].balance,
            AIC * U256::from(10_500_000u64)
        );
        assert_eq!(accounts[&dev[0]].balance, AIC * U256::from(10_000u64));
        assert_eq!(spec.genesis_supply(), AIC * U256::from(10_520_000u64));
    }

    #[test]
    fn spec_round_trips_through_toml() {
        let spec = ChainSpec::local(AICOIN_CHAIN_ID, VALIDATOR, &[Address::repeat_byte(7)]);
        let text = toml::to_string(&spec).unwrap();
        let back: ChainSpec = toml::from_str(&text).unwrap();
        assert_eq!(spec, back);
    }

    #[test]
    fn invalid_specs_are_refused() {
        let mut spec = ChainSpec::local(AICOIN_CHAIN_ID, VALIDATOR, &[]);
        spec.authorities.clear();
        assert_eq!(spec.validate(), Err(ChainSpecError::NoAuthorities));
        let mut spec = ChainSpec::local(0, VALIDATOR, &[]);
        assert_eq!(spec.validate(), Err(ChainSpecError::ZeroChainId));
        spec.chain_id = 1;
        spec.genesis.alloc.insert(
            Address::repeat_byte(9),
            GenesisAccount {
                balance: AIC * U256::from(20_000_000u64),
                ..Default::default()
            },
        );
        assert!(matches!(
            spec.validate(),
            Err(ChainSpecError::Tokenomics(_))
        ));
        // Balances that would wrap the supply total are refused, not summed modulo 2^256.
        spec.genesis.alloc.clear();
        for i in 0..2 {
            spec.genesis.alloc.insert(
                Address::repeat_byte(i),
                GenesisAccount {
                    balance: U256::MAX,
                    ..Default::default()
                },
            );
        }
        assert_eq!(spec.validate(), Err(ChainSpecError::GenesisSupplyOverflow));
        // Treasury spends would be paid from 0x0, or lost in a module.
        let mut spec = ChainSpec::local(AICOIN_CHAIN_ID, VALIDATOR, &[]);
        for treasury in [Address::ZERO, crate::modules::GOVERNANCE_ADDRESS] {
            spec.treasury = treasury;
            assert_eq!(spec.validate(), Err(ChainSpecError::BadTreasury(treasury)));
        }
    }
}
