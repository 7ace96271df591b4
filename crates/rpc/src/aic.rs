//! The `aic_` namespace: AICoin's own reads. The chain modules and their addresses, the chain
//! parameters as the state of any block holds them (the same values `IParams` returns to an
//! `eth_call` at that block), and the compute providers and epoch as the registry holds them.

use std::{collections::BTreeMap, sync::Arc};

use aicoin_modules::{
    Exit,
    governance::upgrade,
    registry::{state::Status, view},
    store::ReadOnly,
};
use aicoin_primitives::{
    PARAMS, Params,
    modules::{GOVERNANCE_ADDRESS, MODULES, PARAMS_ADDRESS, REGISTRY_ADDRESS},
};
use aicoin_storage::StoreError;
use alloy_eips::BlockId;
use alloy_primitives::{Address, B256, U256};
use jsonrpsee::proc_macros::rpc;

use crate::{
    block_id::state_block,
    error::{RpcError, RpcResult},
    state::RpcState,
};

/// A compute provider as `aic_providers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    pub address: Address,
    pub payout: Address,
    pub api_url: String,
    pub models: Vec<String>,
    /// The models of `models` it serves only a layer range of, as a pipeline shard.
    #[serde(default)]
    pub shards: Vec<ShardInfo>,
    /// `cpu` or `gpu` (as registered; scored as GPU only when the measured rate backs it).
    pub hardware: String,
    /// `active`, `leaving` (stake unbonding) or `left`.
    pub status: String,
    pub stake: U256,
    pub registered_at: u64,
    /// The block since which it has been up without a break (0: not up).
    pub up_since: u64,
    pub unbonding_epoch: u64,
    /// The last settled epoch it was measured in, its score (0-10,000) and reward there.
    pub last_epoch: u64,
    pub last_score: u64,
    pub last_reward: U256,
    /// Epochs in which it failed its audits (each slashed).
    pub audit_failures: u64,
    /// Governance suspended it (it is leaving or left, and cannot register again).
    pub suspended: bool,
}

/// A layer range of a model a provider serves as a pipeline shard: layers `start..end`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardInfo {
    pub model: String,
    pub start: u32,
    pub end: u32,
}

/// The current proof-of-compute epoch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochInfo {
    pub epoch: u64,
    /// Its last block: the one whose end settles the previous epoch.
    pub last_block: u64,
}

#[rpc(server, namespace = "aic")]
pub trait AicApi {
    /// Every chain module's name and address.
    #[method(name = "modules")]
    fn modules(&self) -> RpcResult<BTreeMap<String, Address>>;

    /// Every chain parameter by name, at `block` (default `latest`).
    #[method(name = "getParams")]
    fn get_params(&self, block: Option<BlockId>) -> RpcResult<BTreeMap<String, U256>>;

    /// Every compute provider ever registered, at `block` (default `latest`).
    #[method(name = "providers")]
    fn providers(&self, block: Option<BlockId>) -> RpcResult<Vec<ProviderInfo>>;

    /// The proof-of-compute epoch at `block` (default `latest`).
    #[method(name = "epoch")]
    fn epoch(&self, block: Option<BlockId>) -> RpcResult<EpochInfo>;

    /// The protocol upgrade governance scheduled last, beside this node's version: `behind`
    /// when the node is older than it, `active` once its activation block is reached.
    #[method(name = "upgrade")]
    fn upgrade(&self) -> RpcResult<UpgradeInfo>;
}

/// What `aic_upgrade` answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeInfo {
    pub node_version: String,
    /// The scheduled version and its activation block (none scheduled: both absent).
    pub version: Option<String>,
    pub activation_block: Option<u64>,
    pub behind: bool,
    pub active: bool,
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

    fn providers(&self, block: Option<BlockId>) -> RpcResult<Vec<ProviderInfo>> {
        let providers = self.registry(block, |slots| {
            view::providers(slots)?
                .into_iter()
                .map(|p| {
                    let suspended = aicoin_modules::registry::is_suspended(slots, p.address)?;
                    let shards = view::shards(slots, &p)?
                        .into_iter()
                        .map(|(model, layers)| ShardInfo {
                            model,
                            start: layers.start,
                            end: layers.end,
                        })
                        .collect();
                    Ok((suspended, shards, p))
                })
                .collect::<Result<Vec<_>, Exit>>()
        })?;
        Ok(providers
            .into_iter()
            .map(|(suspended, shards, p)| ProviderInfo {
                suspended,
                shards,
                address: p.address,
                payout: p.payout,
                api_url: p.api_url,
                models: p.models,
                hardware: match p.hardware {
                    1 => "gpu",
                    _ => "cpu",
                }
                .to_string(),
                status: match p.status {
                    Status::None => "none",
                    Status::Active => "active",
                    Status::Leaving => "leaving",
                    Status::Left => "left",
                }
                .to_string(),
                stake: p.stake,
                registered_at: p.registered_at,
                up_since: p.up_since,
                unbonding_epoch: p.unbonding_epoch,
                last_epoch: p.last_epoch,
                last_score: p.last_score,
                last_reward: p.last_reward,
                audit_failures: p.audit_failures,
            })
            .collect())
    }

    fn upgrade(&self) -> RpcResult<UpgradeInfo> {
        self.scheduled_upgrade()
    }

    fn epoch(&self, block: Option<BlockId>) -> RpcResult<EpochInfo> {
        let epoch = self.registry(block, |slots| view::epoch(slots))?;
        Ok(EpochInfo {
            epoch: epoch.number,
            last_block: epoch.last_block,
        })
    }
}

impl AicRpc {
    fn scheduled_upgrade(&self) -> RpcResult<UpgradeInfo> {
        let reader = self.state.reader()?;
        let head = reader.head_number()?;
        let state = reader.state_at(head)?;
        let mut load = |slot: B256| state.storage(&GOVERNANCE_ADDRESS, &slot.into());
        let scheduled = upgrade::scheduled(&mut ReadOnly(&mut load))
            .map_err(|e| RpcError::Internal(format!("reading governance: {e}")))?;
        let node_version = env!("CARGO_PKG_VERSION").to_string();
        Ok(match scheduled {
            None => UpgradeInfo {
                node_version,
                version: None,
                activation_block: None,
                behind: false,
                active: false,
            },
            Some(u) => UpgradeInfo {
                behind: u.is_newer_than(&node_version),
                active: head >= u.activation,
                node_version,
                version: Some(u.version.to_string()),
                activation_block: Some(u.activation),
            },
        })
    }
}

/// The registry's storage at one block, read slot by slot.
type RegistrySlots<'a> = ReadOnly<&'a mut dyn FnMut(B256) -> Result<U256, StoreError>>;

impl AicRpc {
    /// Runs `read` over the registry's storage at `block`.
    fn registry<T>(
        &self,
        block: Option<BlockId>,
        read: impl FnOnce(&mut RegistrySlots<'_>) -> Result<T, Exit>,
    ) -> RpcResult<T> {
        let reader = self.state.reader()?;
        let number = state_block(&reader, block)?;
        let state = reader.state_at(number)?;
        let mut load = |slot: B256| state.storage(&REGISTRY_ADDRESS, &slot.into());
        read(&mut ReadOnly(&mut load))
            .map_err(|e| RpcError::Internal(format!("reading the compute registry: {e}")))
    }
}
