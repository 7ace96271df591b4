//! The end-of-block system step: each block's node share accrues to its epoch's pot (or goes
//! straight to the block's miner while no provider is active, so a lone dev node is paid as
//! before), and the last block of epoch `e + 1` settles epoch `e`:
//!
//! 1. per provider and figure, the median over the validators that reported it;
//! 2. a failed audit (the median validator saw one) zeroes the score and slashes `slashBps` of
//!    the stake to the treasury;
//! 3. the score parts and the score ([`score`](super::score)); utilization counts the tokens
//!    the validators' probes got plus those gateways report the provider served; a provider
//!    that answered under half its jobs was down, and scores 0 for the epoch;
//! 4. the pot paid pro rata to score (rounding dust carries to the next epoch's pot), or, if no
//!    provider scored, to the settling block's miner;
//! 5. the epoch's API revenue split among the providers that served it and passed their audits
//!    ([`revenue`](crate::access::revenue)).

use aicoin_primitives::registry::{active_count_slot, pot_slot, providers_slot, reporters_slot};
use alloy_primitives::{Address, U256};

use super::{
    IComputeRegistry::{self, EpochRecord, Measurement},
    score::{self, Parts, Weights, median},
    state::{self, Epoch, GPU, Provider, Status},
};
use crate::{
    access::{self, revenue::Earner},
    call::{CallResult, ModuleCall},
    store::{Slots, load_addresses},
};

pub fn end_block(
    call: &mut ModuleCall<'_>,
    node_share: U256,
    miner: Address,
    treasury: Address,
) -> CallResult<()> {
    let mut epoch = Epoch::load(call)?;
    let block = call.block_number();
    if !node_share.is_zero() {
        if call.load(active_count_slot())?.is_zero() {
            call.pay(miner, node_share)?;
        } else {
            let pot = call.load(pot_slot(epoch.number))?;
            call.store(pot_slot(epoch.number), pot + node_share)?;
        }
    }
    if block >= epoch.last_block {
        if let Some(previous) = epoch.number.checked_sub(1) {
            settle(call, previous, miner, treasury)?;
        }
        epoch.number += 1;
        epoch.last_block = block.saturating_add(call.param_u64("epochLength")?.max(1));
        epoch.store(call)?;
    }
    Ok(())
}

/// One provider being settled.
struct Entry {
    provider: Provider,
    record: EpochRecord,
    /// It answered at least half its jobs: only then does the epoch pay it.
    up: bool,
    /// Tokens it served through the gateways.
    served: u64,
}

fn settle(
    call: &mut ModuleCall<'_>,
    epoch: u64,
    miner: Address,
    treasury: Address,
) -> CallResult<()> {
    let block = call.block_number();
    let weights = Weights {
        utilization: call.param_u64("utilizationWeightBps")?,
        throughput: call.param_u64("throughputWeightBps")?,
        uptime: call.param_u64("uptimeWeightBps")?,
        completion: call.param_u64("completionWeightBps")?,
        cpu_factor: call.param_u64("cpuFactorBps")?,
        gpu_min_rate: call.param_u64("gpuMinRate")?,
    };
    let epoch_length = call.param_u64("epochLength")?.max(1);
    let uptime_cap = call.param_u64("uptimeCapBlocks")?;
    let window = call
        .param_u64("completionWindowBlocks")?
        .div_ceil(epoch_length)
        .max(1);
    let slash_bps = call.param("slashBps")?;

    let reporters = load_addresses(call, reporters_slot(epoch))?;
    let mut entries = Vec::new();
    for address in load_addresses(call, providers_slot())? {
        let mut provider = Provider::load(call, address)?;
        if !matches!(provider.status, Status::Active | Status::Leaving) {
            continue;
        }
        let mut reports = Vec::new();
        for validator in &reporters {
            let report = state::load_report(call, epoch, *validator, address)?;
            if report.jobs > 0 {
                reports.push(report);
            }
        }
        let median = medians(address, &reports);
        // Completion over the window, from running totals kept per epoch.
        let (jobs, answered) = match epoch.checked_sub(1) {
            Some(previous) => state::load_cumulative(call, address, previous)?,
            None => (0, 0),
        };
        let totals = (
            jobs + median.jobs as u128,
            answered + median.answered as u128,
        );
        state::store_cumulative(call, address, epoch, totals)?;
        let base = match epoch.checked_sub(window) {
            Some(start) => state::load_cumulative(call, address, start)?,
            None => (0, 0),
        };
        let measured = !reports.is_empty();
        let up = measured && 2 * median.answered as u64 >= median.jobs as u64;
        if measured {
            provider.up_since = match (up, provider.up_since) {
                (true, 0) => block,
                (true, since) => since,
                (false, _) => 0,
            };
        }
        let up_blocks = match provider.up_since {
            0 => 0,
            since => block.saturating_sub(since).saturating_add(epoch_length),
        };
        let record = EpochRecord {
            settled: true,
            reporters: reports.len() as u32,
            auditFailed: measured && median.auditFailed >= 1,
            uptime: score::uptime_bps(up_blocks, uptime_cap),
            completion: score::ratio_bps(totals.1 - base.1, totals.0 - base.0),
            median,
            utilization: 0,
            throughput: 0,
            score: 0,
            reward: U256::ZERO,
            slashed: U256::ZERO,
        };
        let served = access::revenue::served(call, epoch, address)?;
        entries.push(Entry {
            provider,
            record,
            up,
            served,
        });
    }

    // Utilization and throughput are relative to the best provider that passed its audits.
    let passed = |e: &&Entry| e.record.reporters > 0 && !e.record.auditFailed;
    let used = |e: &Entry| e.record.median.tokens.saturating_add(e.served);
    let most_tokens = entries.iter().filter(passed).map(used).max();
    // The revenue goes to who served it, unless an audit failed: a provider never probed this
    // epoch is still paid for its traffic.
    let earners: Vec<Earner> = entries
        .iter()
        .filter(|e| !e.record.auditFailed && e.served > 0)
        .map(|e| Earner {
            provider: e.provider.address,
            payout: e.provider.payout,
            tokens: e.served,
        })
        .collect();
    let best_rate = entries
        .iter()
        .filter(passed)
        .map(|e| e.record.median.rate)
        .max();
    let mut total = 0u128;
    for entry in &mut entries {
        let utilization = score::ratio_bps(used(entry).into(), most_tokens.unwrap_or(0).into());
        let record = &mut entry.record;
        if record.reporters == 0 || record.auditFailed {
            continue;
        }
        let parts = Parts {
            utilization,
            throughput: score::ratio_bps(record.median.rate.into(), best_rate.unwrap_or(0).into()),
            uptime: record.uptime,
            completion: record.completion,
        };
        record.utilization = parts.utilization;
        record.throughput = parts.throughput;
        // A provider that was down (answered under half its jobs) keeps its parts on record
        // but earns nothing for the epoch: its past answers do not pay for this one.
        record.score = match entry.up {
            true => score::score(
                &parts,
                &weights,
                entry.provider.hardware == GPU,
                record.median.rate,
            ),
            false => 0,
        };
        total += record.score as u128;
    }

    let pot = call.load(pot_slot(epoch))?;
    let mut paid = U256::ZERO;
    for Entry {
        mut provider,
        mut record,
        ..
    } in entries
    {
        if total > 0 && record.score > 0 {
            record.reward = pot * U256::from(record.score) / U256::from(total);
            paid += record.reward;
            call.pay(provider.payout, record.reward)?;
        }
        if record.auditFailed {
            record.slashed = provider.stake * slash_bps / U256::from(10_000u64);
            provider.stake -= record.slashed;
            provider.audit_failures += 1;
            call.pay(treasury, record.slashed)?;
            call.emit(&IComputeRegistry::Slashed {
                epoch,
                provider: provider.address,
                amount: record.slashed,
                reason: format!(
                    "failed audits: {} of {} audited answers (median over {} validators) did \
                     not match the validators' own copy of the model",
                    record.median.auditFailed, record.median.audited, record.reporters
                ),
            })?;
        }
        if record.reporters > 0 {
            provider.last_epoch = epoch;
            provider.last_score = record.score;
            provider.last_reward = record.reward;
            call.emit(&IComputeRegistry::Scored {
                epoch,
                provider: provider.address,
                score: U256::from(record.score),
            })?;
        }
        if !record.reward.is_zero() {
            call.emit(&IComputeRegistry::Reward {
                epoch,
                provider: provider.address,
                payout: provider.payout,
                amount: record.reward,
            })?;
        }
        provider.store_state(call)?;
        state::store_record(call, epoch, &record)?;
    }
    call.store(pot_slot(epoch), U256::ZERO)?;
    if total > 0 {
        // Rounding dust stays with the providers: it joins the next epoch's pot.
        let next = pot_slot(epoch + 1);
        let carried = call.load(next)? + (pot - paid);
        call.store(next, carried)?;
    } else if !pot.is_zero() {
        call.pay(miner, pot)?;
        call.emit(&IComputeRegistry::Unclaimed {
            epoch,
            miner,
            amount: pot,
        })?;
    }
    access::revenue::split(call, epoch, treasury, &earners)
}

/// Per figure, the median over `reports` (all zero for none).
fn medians(provider: Address, reports: &[Measurement]) -> Measurement {
    let figure = |f: fn(&Measurement) -> u64| {
        let mut values: Vec<u64> = reports.iter().map(f).collect();
        median(&mut values)
    };
    Measurement {
        provider,
        jobs: figure(|m| m.jobs.into()) as u32,
        answered: figure(|m| m.answered.into()) as u32,
        audited: figure(|m| m.audited.into()) as u32,
        auditFailed: figure(|m| m.auditFailed.into()) as u32,
        ttftMs: figure(|m| m.ttftMs.into()) as u32,
        tokens: figure(|m| m.tokens),
        rate: figure(|m| m.rate),
    }
}
