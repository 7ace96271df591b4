//! A provider registering itself: once its node has the chain, it compares its registry record
//! with what it serves. Unregistered (or withdrawn), it sends `register` with the stake when its
//! key holds enough; when it does not, it says exactly which transaction it needs. Registered
//! with other settings (URL, models, payout, hardware), it sends `update`; serving a layer range
//! of a model (a pipeline shard) other than the one recorded, it sends `setShard`.

use std::{ops::Range, sync::Arc};

use aicoin_modules::registry::{IComputeRegistry, state::Provider};
use aicoin_primitives::{AIC, NewBlock, modules::REGISTRY_ADDRESS};
use aicoin_storage::Store;
use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use tokio::sync::{broadcast, watch};

use crate::{
    tx::TxSender,
    view::{RegistryView, Status, ViewError},
};

/// Blocks to wait for a sent registration before sending again.
const RESEND_AFTER_BLOCKS: u64 = 10;

/// What this provider registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub payout: Address,
    pub api_url: String,
    pub models: Vec<String>,
    /// 0 CPU, 1 GPU.
    pub hardware: u8,
    /// The stake to lock [default: the chain's `minStake`].
    pub stake: Option<U256>,
    /// The models of `models` served as pipeline shards, with their layers.
    pub shards: Vec<(String, Range<u32>)>,
}

impl Registration {
    /// The layers of `model` served, `None` for the whole model.
    fn shard(&self, model: &str) -> Option<Range<u32>> {
        self.shards
            .iter()
            .find(|(m, _)| m == model)
            .map(|(_, layers)| layers.clone())
    }

    fn matches(&self, provider: &Provider) -> bool {
        provider.payout == self.payout
            && provider.api_url == self.api_url
            && provider.models == self.models
            && provider.hardware == self.hardware
    }
}

/// What to do at this block.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Nothing,
    Register {
        stake: U256,
    },
    Update,
    /// The model's recorded shard is not what is served.
    SetShard {
        model: String,
        layers: Option<Range<u32>>,
    },
    /// The key cannot pay the stake.
    Unfunded {
        stake: U256,
        balance: U256,
    },
    /// Governance suspended this provider: it cannot register again.
    Suspended,
}

fn next_step(store: &Store, me: Address, wanted: &Registration) -> Result<Step, ViewError> {
    let reader = store.reader()?;
    let view = RegistryView::new(&reader)?;
    let provider = view.provider(me)?;
    Ok(match provider.status {
        Status::Active if wanted.matches(&provider) => {
            let recorded = view.shards(&provider)?;
            let differs = wanted.models.iter().find_map(|model| {
                let layers = wanted.shard(model);
                let on_chain = recorded
                    .iter()
                    .find(|(m, _)| m == model)
                    .map(|(_, l)| l.clone());
                (layers != on_chain).then(|| (model.clone(), layers))
            });
            match differs {
                Some((model, layers)) => Step::SetShard { model, layers },
                None => Step::Nothing,
            }
        }
        Status::Active => Step::Update,
        // Leaving by choice: not undone here.
        Status::Leaving => Step::Nothing,
        Status::None | Status::Left if view.is_suspended(me)? => Step::Suspended,
        Status::None | Status::Left => {
            let stake = wanted.stake.unwrap_or(view.param("minStake")?);
            let balance = view.balance(me)?;
            if balance >= stake {
                Step::Register { stake }
            } else {
                Step::Unfunded { stake, balance }
            }
        }
    })
}

/// The `register` call's data for `wanted`.
pub fn register_call(wanted: &Registration) -> Vec<u8> {
    IComputeRegistry::registerCall {
        payout: wanted.payout,
        apiUrl: wanted.api_url.clone(),
        models: wanted.models.clone(),
        hardware: wanted.hardware,
    }
    .abi_encode()
}

/// Keeps this node registered as `wanted` until `shutdown`.
pub async fn run(
    wanted: Registration,
    sender: TxSender,
    store: Store,
    mut blocks: broadcast::Receiver<Arc<NewBlock>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let me = sender.address();
    let mut sent: Option<(u64, Step)> = None;
    let mut told = false;
    loop {
        let Some(block) = crate::heads::next_block(&mut blocks, &mut shutdown).await else {
            return;
        };
        let number = block.header.number;
        let step = match next_step(&store, me, &wanted) {
            Ok(step) => step,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read this provider's registration");
                continue;
            }
        };
        // The same transaction again only once the last one had time to land; the next one
        // (a shard after the registration) at once.
        if sent
            .as_ref()
            .is_some_and(|(at, last)| *last == step && number < at + RESEND_AFTER_BLOCKS)
        {
            continue;
        }
        let sending = step.clone();
        let (data, value, what) = match step {
            Step::Nothing => {
                sent = None;
                continue;
            }
            Step::Register { stake } => (register_call(&wanted), stake, "register"),
            Step::Update => (
                IComputeRegistry::updateCall {
                    payout: wanted.payout,
                    apiUrl: wanted.api_url.clone(),
                    models: wanted.models.clone(),
                    hardware: wanted.hardware,
                }
                .abi_encode(),
                U256::ZERO,
                "update",
            ),
            Step::SetShard { model, layers } => (
                IComputeRegistry::setShardCall {
                    model,
                    start: layers.as_ref().map_or(0, |l| l.start),
                    end: layers.as_ref().map_or(0, |l| l.end),
                }
                .abi_encode(),
                U256::ZERO,
                "setShard",
            ),
            Step::Unfunded { stake, balance } => {
                if !told {
                    told = true;
                    tell_unfunded(me, &wanted, stake, balance);
                }
                continue;
            }
            Step::Suspended => {
                if !told {
                    told = true;
                    tracing::error!(provider = %me, "governance suspended this provider: it cannot register again");
                }
                continue;
            }
        };
        match sender
            .send(REGISTRY_ADDRESS, data.into(), value, 2_000_000)
            .await
        {
            Ok(hash) => {
                tracing::info!(%hash, provider = %me, api_url = %wanted.api_url, models = ?wanted.models, "sent {what} to the compute registry");
                sent = Some((number, sending));
            }
            Err(e) => tracing::warn!(error = %e, "cannot send {what} to the compute registry"),
        }
    }
}

fn tell_unfunded(me: Address, wanted: &Registration, stake: U256, balance: U256) {
    let data = alloy_primitives::hex::encode_prefixed(register_call(wanted));
    let aic = |wei: U256| format!("{}.{:018}", wei / AIC, wei % AIC);
    let message = format!(
        "this provider is not registered: its key {me} holds {} AIC and the stake is {} AIC.\n\
         Fund it, and it registers itself at the next block, e.g.\n  \
         aicoin wallet send --to {me} --amount {}\n\
         or send this transaction from {me} itself:\n  \
         to    {REGISTRY_ADDRESS} (IComputeRegistry.register)\n  \
         value {} wei\n  data  {data}",
        aic(balance),
        aic(stake),
        aic(stake - balance.min(stake)),
        stake,
    );
    tracing::warn!("{message}");
    eprintln!("{message}");
}
