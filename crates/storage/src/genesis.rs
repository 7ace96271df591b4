//! The genesis block a chain spec defines, computed in memory so that a data dir can be checked
//! against a spec before anything is written.

use aicoin_consensus::genesis_shape;
use aicoin_primitives::ChainSpec;
use alloy_consensus::Header;
use alloy_primitives::{B256, Bytes, U256, keccak256};
use alloy_rlp::Encodable;
use alloy_trie::{KECCAK_EMPTY, TrieAccount, root};

use crate::changes::{AccountChange, AccountInfo, StateChanges};

/// The genesis header and the state it commits to.
pub fn genesis_block(spec: &ChainSpec) -> (Header, StateChanges) {
    let accounts = spec.genesis_accounts();
    let mut changes = StateChanges::default();
    let mut trie_accounts = Vec::with_capacity(accounts.len());
    for (address, account) in &accounts {
        let code_hash = match &account.code {
            Some(code) if !code.is_empty() => {
                let hash = keccak256(code);
                changes.code.push((hash, code.clone()));
                hash
            }
            _ => KECCAK_EMPTY,
        };
        let storage: Vec<(U256, U256)> = account
            .storage
            .iter()
            .map(|(slot, value)| (U256::from_be_bytes(slot.0), U256::from_be_bytes(value.0)))
            .filter(|(_, value)| !value.is_zero())
            .collect();
        let storage_root = root::storage_root_unhashed(
            storage
                .iter()
                .map(|(slot, value)| (B256::from(slot.to_be_bytes()), *value)),
        );
        let info = AccountInfo {
            nonce: account.nonce,
            balance: account.balance,
            code_hash,
        };
        trie_accounts.push((
            *address,
            TrieAccount::new(info.nonce, info.balance, storage_root, code_hash),
        ));
        changes.accounts.push(AccountChange {
            address: *address,
            info: Some(info),
            wipe_storage: false,
            storage,
        });
    }
    let header = Header {
        timestamp: spec.genesis.timestamp,
        gas_limit: spec.genesis.gas_limit,
        state_root: root::state_root_unhashed(trie_accounts),
        extra_data: spec_commitment(spec),
        ..genesis_shape()
    };
    (header, changes)
}

/// keccak of the consensus-relevant spec fields that the genesis state does not already cover
/// (chain id, authorities, treasury, issuance), carried in the genesis `extraData` so that the
/// genesis hash identifies the whole spec.
fn spec_commitment(spec: &ChainSpec) -> Bytes {
    let t = &spec.tokenomics;
    let mut out = Vec::new();
    spec.chain_id.encode(&mut out);
    spec.authorities.encode(&mut out);
    spec.treasury.encode(&mut out);
    for amount in [t.max_supply, t.genesis_allocation, t.initial_reward] {
        amount.encode(&mut out);
    }
    t.halving_interval.encode(&mut out);
    t.treasury_share_bps.encode(&mut out);
    Bytes::copy_from_slice(keccak256(out).as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Address;

    #[test]
    fn genesis_hash_identifies_the_spec() {
        let validator = Address::repeat_byte(1);
        let base = ChainSpec::local(2108, validator, &[]);
        let hash = |s: &ChainSpec| genesis_block(s).0.hash_slow();
        let mut other_id = base.clone();
        other_id.chain_id = 2109;
        let mut other_authority = base.clone();
        other_authority.authorities.push(Address::repeat_byte(2));
        let dev = ChainSpec::local(2108, validator, &[Address::repeat_byte(3)]);
        let all = [
            hash(&base),
            hash(&other_id),
            hash(&other_authority),
            hash(&dev),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(hash(&base), hash(&base.clone()));
    }
}
