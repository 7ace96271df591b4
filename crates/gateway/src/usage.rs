//! The tokens each provider served through this gateway, per epoch, and the task that reports
//! them: once epoch e + 1 has begun, the gateway sends `IApiAccess.reportUsage(e, …)` (signed
//! by its key, like any transaction) and sends it again at later blocks until the chain shows
//! it reported. The counts are kept in memory: a gateway restarted mid-epoch reports only what
//! it served since.

use std::{collections::BTreeMap, sync::Arc};

use aicoin_compute::tx::TxSender;
use aicoin_modules::access::IApiAccess;
use aicoin_primitives::{NewBlock, modules::API_ACCESS_ADDRESS};
use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};

use crate::chain::ChainView;

/// Blocks to wait for a sent report before sending it again.
const RESEND_AFTER_BLOCKS: u64 = 5;

/// Served tokens by epoch, then provider.
#[derive(Default)]
pub struct Served(Mutex<BTreeMap<u64, BTreeMap<Address, u64>>>);

impl Served {
    pub fn record(&self, epoch: u64, provider: Address, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let mut served = self.0.lock();
        *served
            .entry(epoch)
            .or_default()
            .entry(provider)
            .or_default() += tokens;
    }

    pub fn of(&self, epoch: u64) -> BTreeMap<Address, u64> {
        self.0.lock().get(&epoch).cloned().unwrap_or_default()
    }

    fn forget_before(&self, epoch: u64) {
        let mut served = self.0.lock();
        *served = served.split_off(&epoch);
    }
}

/// Reports each finished epoch's served tokens until `shutdown`.
pub async fn report(
    chain: Arc<ChainView>,
    served: Arc<Served>,
    sender: TxSender,
    mut blocks: broadcast::Receiver<Arc<NewBlock>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let me = sender.address();
    let mut sent: Option<(u64, u64)> = None;
    loop {
        let Some(block) = aicoin_compute::heads::next_block(&mut blocks, &mut shutdown).await
        else {
            return;
        };
        let number = block.header.number;
        let epoch = chain.snapshot().epoch;
        let Some(previous) = epoch.checked_sub(1) else {
            continue;
        };
        // Only the previous epoch can still be reported.
        served.forget_before(previous);
        let usage = served.of(previous);
        if usage.is_empty()
            || sent.is_some_and(|(e, at)| e == previous && number < at + RESEND_AFTER_BLOCKS)
        {
            continue;
        }
        match chain.usage_reported(previous, me) {
            Ok(true) => {
                served.forget_before(epoch);
                continue;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read whether this gateway reported");
                continue;
            }
        }
        let providers = usage.len();
        let call = IApiAccess::reportUsageCall {
            epoch: previous,
            usage: usage
                .into_iter()
                .map(|(provider, tokens)| IApiAccess::Usage { provider, tokens })
                .collect(),
        };
        let gas = 100_000 + 70_000 * providers as u64;
        match sender
            .send(
                API_ACCESS_ADDRESS,
                call.abi_encode().into(),
                U256::ZERO,
                gas,
            )
            .await
        {
            Ok(hash) => {
                tracing::info!(epoch = previous, providers, %hash, "reported the epoch's served tokens");
                sent = Some((previous, number));
            }
            Err(e) => tracing::warn!(epoch = previous, error = %e, "cannot report served tokens"),
        }
    }
}
