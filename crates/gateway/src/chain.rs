//! What the gateway reads from the chain: which providers serve which listed model now (a
//! snapshot taken at every new block), the tiers on sale, and an account's subscription (read
//! per request, so a purchase or a `revokeKeys()` counts from the next block on).

use std::{collections::BTreeMap, sync::Arc};

use aicoin_compute::view::{RegistryView, Status, ViewError};
use aicoin_primitives::registry::ModelCategory;
use aicoin_storage::Store;
use alloy_primitives::{Address, U256};
use parking_lot::RwLock;

/// A provider the gateway may forward to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub address: Address,
    pub api_url: String,
    /// This gateway's own pipeline of the model's shards ([`crate::pipeline`]), not a
    /// registered provider: its work is recorded shard by shard, not as the upstream's.
    pub pipeline: bool,
}

/// A listed model and the providers that serve it now: whole, or a layer range of it each
/// (pipeline shards, which a gateway chains).
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub id: String,
    pub context_length: u64,
    pub category: ModelCategory,
    pub providers: Vec<Upstream>,
    pub shards: Vec<aicoin_shard::Shard>,
}

/// One API tier as the parameters price it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub id: u8,
    pub name: &'static str,
    pub price: U256,
    pub requests_per_minute: u64,
    pub tokens_per_day: u64,
    pub period_blocks: u64,
}

pub const TIER_NAMES: [&str; 3] = ["basic", "standard", "premium"];

/// The chain as of one block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub head: u64,
    pub epoch: u64,
    /// Models with at least one provider (or shard), by id.
    pub offers: BTreeMap<String, Offer>,
    pub tiers: Vec<Tier>,
}

/// An account's subscription at the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub tier: u8,
    pub expires_at: u64,
    pub active: bool,
    pub key_generation: u64,
    pub head: u64,
}

/// The chain behind the gateway.
pub struct ChainView {
    store: Store,
    snapshot: RwLock<Arc<Snapshot>>,
}

impl ChainView {
    pub fn new(store: Store) -> Result<Self, ViewError> {
        let view = Self {
            store,
            snapshot: RwLock::new(Arc::default()),
        };
        view.refresh()?;
        Ok(view)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().clone()
    }

    /// Takes a new snapshot at the head: active, unsuspended providers with no recent failed
    /// audit, by model.
    pub fn refresh(&self) -> Result<(), ViewError> {
        let reader = self.store.reader()?;
        let view = RegistryView::new(&reader)?;
        let head = reader.head_number()?;
        let epoch = view.epoch()?.number;
        let mut offers: BTreeMap<String, Offer> = view
            .models()?
            .into_iter()
            .map(|m| {
                let offer = Offer {
                    id: m.id.clone(),
                    context_length: m.context_length,
                    category: m.category,
                    providers: Vec::new(),
                    shards: Vec::new(),
                };
                (m.id, offer)
            })
            .collect();
        for provider in view.providers()? {
            if provider.status != Status::Active
                || view.is_suspended(provider.address)?
                || view.failed_audit_lately(provider.address, epoch)?
            {
                continue;
            }
            let shards = view.shards(&provider)?;
            for model in &provider.models {
                let Some(offer) = offers.get_mut(model) else {
                    continue;
                };
                match shards.iter().find(|(m, _)| m == model) {
                    Some((_, layers)) => offer.shards.push(aicoin_shard::Shard {
                        provider: provider.address,
                        api_url: provider.api_url.clone(),
                        layers: layers.start as usize..layers.end as usize,
                    }),
                    None => offer.providers.push(Upstream {
                        address: provider.address,
                        api_url: provider.api_url.clone(),
                        pipeline: false,
                    }),
                }
            }
        }
        offers.retain(|_, offer| !offer.providers.is_empty() || !offer.shards.is_empty());
        let period_blocks = view.param_u64("subscriptionBlocks")?;
        let tiers = TIER_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                Ok(Tier {
                    id: i as u8 + 1,
                    name,
                    price: view.param(&format!("{name}Price"))?,
                    requests_per_minute: view.param_u64(&format!("{name}Rpm"))?,
                    tokens_per_day: view.param_u64(&format!("{name}TokensPerDay"))?,
                    period_blocks,
                })
            })
            .collect::<Result<_, ViewError>>()?;
        *self.snapshot.write() = Arc::new(Snapshot {
            head,
            epoch,
            offers,
            tiers,
        });
        Ok(())
    }

    /// `account`'s subscription at the head.
    pub fn subscription(&self, account: Address) -> Result<Subscription, ViewError> {
        let reader = self.store.reader()?;
        let head = reader.head_number()?;
        let stored = RegistryView::at(&reader, head)?.subscription(account)?;
        Ok(Subscription {
            tier: stored.tier,
            expires_at: stored.expires_at,
            // Active for the next block, the one a request made now falls in.
            active: stored.active_at(head + 1),
            key_generation: stored.key_generation,
            head,
        })
    }

    pub fn is_gateway(&self, account: Address) -> Result<bool, ViewError> {
        let reader = self.store.reader()?;
        RegistryView::new(&reader)?.is_gateway(account)
    }

    pub fn is_authority(&self, account: Address) -> Result<bool, ViewError> {
        let reader = self.store.reader()?;
        Ok(RegistryView::new(&reader)?
            .authorities()?
            .contains(&account))
    }

    pub fn usage_reported(&self, epoch: u64, gateway: Address) -> Result<bool, ViewError> {
        let reader = self.store.reader()?;
        RegistryView::new(&reader)?.usage_reported(epoch, gateway)
    }
}
