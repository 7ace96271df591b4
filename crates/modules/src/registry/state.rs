//! The compute registry's records as Rust values, loaded from and stored to the slots
//! `aicoin_primitives::registry` lays out: a provider's record, one validator's measurement
//! of a provider, a provider's settled epoch, and the current epoch.

use aicoin_primitives::registry::{
    ProviderField, RecordField, epoch_slot, provider_slot, record_slot, report_slot, shard_slot,
};
use alloy_primitives::{Address, U256};

use super::IComputeRegistry::{EpochRecord, Measurement, ProviderInfo};
use crate::{
    call::CallResult,
    store::{Packed, Slots, load_string, load_strings, store_string, store_strings},
};

/// A provider's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    None = 0,
    /// Measured, scored and paid.
    Active = 1,
    /// Left; its stake is unbonding.
    Leaving = 2,
    /// Its stake was withdrawn.
    Left = 3,
}

impl Status {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Active,
            2 => Self::Leaving,
            3 => Self::Left,
            _ => Self::None,
        }
    }
}

/// Hardware class 1: a GPU (0 is CPU only).
pub const GPU: u8 = 1;

/// The current epoch and the block it ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    pub number: u64,
    pub last_block: u64,
}

impl Epoch {
    pub fn load(slots: &mut impl Slots) -> CallResult<Self> {
        let word = Packed(slots.load(epoch_slot())?);
        Ok(Self {
            number: word.get(0, 64),
            last_block: word.get(64, 64),
        })
    }

    pub fn store(&self, slots: &mut impl Slots) -> CallResult<()> {
        let word = Packed::default()
            .set(0, 64, self.number)
            .set(64, 64, self.last_block);
        slots.store(epoch_slot(), word.0)
    }
}

/// A provider's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub address: Address,
    pub payout: Address,
    pub api_url: String,
    pub models: Vec<String>,
    pub hardware: u8,
    pub status: Status,
    pub stake: U256,
    pub registered_at: u64,
    pub unbonding_epoch: u64,
    pub up_since: u64,
    pub last_epoch: u64,
    pub last_score: u64,
    pub last_reward: U256,
    pub audit_failures: u64,
}

impl Provider {
    /// The status alone (one read): enough to know whether `address` is a provider.
    pub fn status(slots: &mut impl Slots, address: Address) -> CallResult<Status> {
        let state = Packed(slots.load(provider_slot(address, ProviderField::State))?);
        Ok(Status::from_u8(state.get(0, 8) as u8))
    }

    pub fn load(slots: &mut impl Slots, address: Address) -> CallResult<Self> {
        let field = |f| provider_slot(address, f);
        let state = Packed(slots.load(field(ProviderField::State))?);
        let last = Packed(slots.load(field(ProviderField::Last))?);
        Ok(Self {
            address,
            payout: aicoin_primitives::registry::word_address(
                slots.load(field(ProviderField::Payout))?,
            ),
            api_url: load_string(slots, field(ProviderField::ApiUrl))?,
            models: load_strings(slots, field(ProviderField::Models))?,
            hardware: state.get(8, 8) as u8,
            status: Status::from_u8(state.get(0, 8) as u8),
            stake: slots.load(field(ProviderField::Stake))?,
            registered_at: state.get(64, 64),
            unbonding_epoch: state.get(128, 64),
            up_since: state.get(192, 64),
            last_epoch: last.get(0, 64),
            last_score: last.get(64, 64),
            last_reward: slots.load(field(ProviderField::LastReward))?,
            audit_failures: last.get(128, 64),
        })
    }

    /// Stores the fields that change after registration (state, stake, last results).
    pub fn store_state(&self, slots: &mut impl Slots) -> CallResult<()> {
        let field = |f| provider_slot(self.address, f);
        let state = Packed::default()
            .set(0, 8, self.status as u64)
            .set(8, 8, self.hardware as u64)
            .set(64, 64, self.registered_at)
            .set(128, 64, self.unbonding_epoch)
            .set(192, 64, self.up_since);
        slots.store(field(ProviderField::State), state.0)?;
        slots.store(field(ProviderField::Stake), self.stake)?;
        let last = Packed::default()
            .set(0, 64, self.last_epoch)
            .set(64, 64, self.last_score)
            .set(128, 64, self.audit_failures);
        slots.store(field(ProviderField::Last), last.0)?;
        slots.store(field(ProviderField::LastReward), self.last_reward)
    }

    /// Stores everything, the provider's own settings included.
    pub fn store(&self, slots: &mut impl Slots) -> CallResult<()> {
        let field = |f| provider_slot(self.address, f);
        slots.store(
            field(ProviderField::Payout),
            aicoin_primitives::registry::address_word(self.payout),
        )?;
        store_string(slots, field(ProviderField::ApiUrl), &self.api_url)?;
        store_strings(slots, field(ProviderField::Models), &self.models)?;
        self.store_state(slots)
    }

    pub fn info(&self) -> ProviderInfo {
        ProviderInfo {
            provider: self.address,
            payout: self.payout,
            apiUrl: self.api_url.clone(),
            models: self.models.clone(),
            hardware: self.hardware,
            status: self.status as u8,
            stake: self.stake,
            registeredAt: self.registered_at,
            unbondingEpoch: self.unbonding_epoch,
            upSince: self.up_since,
            lastEpoch: self.last_epoch,
            lastScore: self.last_score,
            lastReward: self.last_reward,
            auditFailures: self.audit_failures,
        }
    }
}

/// The layers `provider` serves of `model` as a shard; `None` for the whole model.
pub fn load_shard(
    slots: &mut impl Slots,
    provider: Address,
    model: &str,
) -> CallResult<Option<std::ops::Range<u32>>> {
    let word = slots.load(shard_slot(provider, model))?;
    let start = (word & U256::from(u32::MAX)).saturating_to::<u32>();
    let end = (word >> 32usize).saturating_to::<u32>();
    Ok((end > 0).then_some(start..end))
}

/// Records the layers `provider` serves of `model`; `None` serves the whole model again.
pub fn store_shard(
    slots: &mut impl Slots,
    provider: Address,
    model: &str,
    layers: Option<std::ops::Range<u32>>,
) -> CallResult<()> {
    let word = layers.map_or(U256::ZERO, |l| {
        U256::from(l.start) | U256::from(l.end) << 32
    });
    slots.store(shard_slot(provider, model), word)
}

/// A measurement as its two storage words.
pub fn pack(m: &Measurement) -> [U256; 2] {
    let counts = Packed::default()
        .set(0, 32, m.jobs.into())
        .set(32, 32, m.answered.into())
        .set(64, 32, m.audited.into())
        .set(96, 32, m.auditFailed.into())
        .set(128, 32, m.ttftMs.into());
    let speed = Packed::default().set(0, 64, m.tokens).set(64, 64, m.rate);
    [counts.0, speed.0]
}

pub fn unpack(provider: Address, words: [U256; 2]) -> Measurement {
    let (counts, speed) = (Packed(words[0]), Packed(words[1]));
    Measurement {
        provider,
        jobs: counts.get(0, 32) as u32,
        answered: counts.get(32, 32) as u32,
        audited: counts.get(64, 32) as u32,
        auditFailed: counts.get(96, 32) as u32,
        ttftMs: counts.get(128, 32) as u32,
        tokens: speed.get(0, 64),
        rate: speed.get(64, 64),
    }
}

/// What `validator` reported of `provider` for `epoch` (zero jobs: nothing).
pub fn load_report(
    slots: &mut impl Slots,
    epoch: u64,
    validator: Address,
    provider: Address,
) -> CallResult<Measurement> {
    let words = [
        slots.load(report_slot(epoch, validator, provider, 0))?,
        slots.load(report_slot(epoch, validator, provider, 1))?,
    ];
    Ok(unpack(provider, words))
}

pub fn store_report(
    slots: &mut impl Slots,
    epoch: u64,
    validator: Address,
    m: &Measurement,
) -> CallResult<()> {
    for (word, value) in pack(m).into_iter().enumerate() {
        slots.store(
            report_slot(epoch, validator, m.provider, word as u64),
            value,
        )?;
    }
    Ok(())
}

/// A provider's settled epoch, as [`EpochRecord`] without the ABI's wrapping.
pub fn load_record(
    slots: &mut impl Slots,
    provider: Address,
    epoch: u64,
) -> CallResult<EpochRecord> {
    let field = |f| record_slot(provider, epoch, f);
    let median = unpack(
        provider,
        [
            slots.load(field(RecordField::Median0))?,
            slots.load(field(RecordField::Median1))?,
        ],
    );
    let parts = Packed(slots.load(field(RecordField::Parts))?);
    Ok(EpochRecord {
        settled: parts.get(0, 8) == 1,
        auditFailed: parts.get(8, 8) == 1,
        reporters: parts.get(32, 32) as u32,
        utilization: parts.get(64, 32),
        throughput: parts.get(96, 32),
        uptime: parts.get(128, 32),
        completion: parts.get(160, 32),
        score: parts.get(192, 64),
        median,
        reward: slots.load(field(RecordField::Reward))?,
        slashed: slots.load(field(RecordField::Slashed))?,
    })
}

pub fn store_record(slots: &mut impl Slots, epoch: u64, record: &EpochRecord) -> CallResult<()> {
    let provider = record.median.provider;
    let field = |f| record_slot(provider, epoch, f);
    let [median0, median1] = pack(&record.median);
    slots.store(field(RecordField::Median0), median0)?;
    slots.store(field(RecordField::Median1), median1)?;
    let parts = Packed::default()
        .set(0, 8, record.settled.into())
        .set(8, 8, record.auditFailed.into())
        .set(32, 32, record.reporters.into())
        .set(64, 32, record.utilization)
        .set(96, 32, record.throughput)
        .set(128, 32, record.uptime)
        .set(160, 32, record.completion)
        .set(192, 64, record.score);
    slots.store(field(RecordField::Parts), parts.0)?;
    slots.store(field(RecordField::Reward), record.reward)?;
    slots.store(field(RecordField::Slashed), record.slashed)
}

/// Jobs and answers of every epoch up to and including `epoch`.
pub fn load_cumulative(
    slots: &mut impl Slots,
    provider: Address,
    epoch: u64,
) -> CallResult<(u128, u128)> {
    let word = slots.load(record_slot(provider, epoch, RecordField::Cumulative))?;
    let mask: U256 = (U256::ONE << 128usize) - U256::ONE;
    let jobs: u128 = (word & mask).saturating_to();
    let answered: u128 = (word >> 128usize).saturating_to();
    Ok((jobs, answered))
}

pub fn store_cumulative(
    slots: &mut impl Slots,
    provider: Address,
    epoch: u64,
    (jobs, answered): (u128, u128),
) -> CallResult<()> {
    let word = U256::from(jobs) | (U256::from(answered) << 128);
    slots.store(record_slot(provider, epoch, RecordField::Cumulative), word)
}
