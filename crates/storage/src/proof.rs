//! EIP-1186 Merkle proofs of an account and some of its storage slots against the head's state
//! root, computed from the stored branch nodes (O(depth) per key, not O(state)).

use aicoin_trie::compute_proofs;
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::{EMPTY_ROOT_HASH, TrieAccount};

use crate::{
    Reader, StoreError, decode_account,
    tables::{ACCOUNT_TRIE, ACCOUNTS, STORAGE, STORAGE_TRIE},
    trie_source::{AccountTrie, StorageTrie},
};

/// An account with the proof of its leaf (or of its absence) in the state trie, and proofs of the
/// requested slots in its storage trie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProof {
    pub address: Address,
    /// `None` when the account does not exist (the proof then shows its absence).
    pub account: Option<TrieAccount>,
    /// The state root the proofs lead to.
    pub state_root: B256,
    pub account_proof: Vec<Bytes>,
    pub storage: Vec<StorageProof>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageProof {
    pub slot: B256,
    pub value: U256,
    pub proof: Vec<Bytes>,
}

impl Reader {
    /// Proofs of `address` and its `slots` in the head's state.
    pub fn proof(&self, address: Address, slots: &[B256]) -> Result<AccountProof, StoreError> {
        let accounts = self.txn().open_table(ACCOUNTS)?;
        let account_trie = self.txn().open_table(ACCOUNT_TRIE)?;
        let hashed = keccak256(address);
        let account = accounts
            .get(hashed.0)?
            .map(|v| decode_account(v.value()))
            .transpose()?;
        let mut source = AccountTrie {
            leaves: &accounts,
            branches: &account_trie,
        };
        let (state_root, mut proofs) = compute_proofs(&mut source, &[hashed])?;
        let account_proof = proofs.pop().unwrap_or_default();

        let storage = match account.filter(|a| a.storage_root != EMPTY_ROOT_HASH) {
            // An account without storage: every slot is zero with the empty root as its proof.
            None => slots
                .iter()
                .map(|slot| StorageProof {
                    slot: *slot,
                    value: U256::ZERO,
                    proof: Vec::new(),
                })
                .collect(),
            Some(_) => {
                let leaves = self.txn().open_table(STORAGE)?;
                let branches = self.txn().open_table(STORAGE_TRIE)?;
                let mut source = StorageTrie {
                    account: hashed.0,
                    leaves: &leaves,
                    branches: &branches,
                };
                let keys: Vec<B256> = slots.iter().map(keccak256).collect();
                let (_, proofs) = compute_proofs(&mut source, &keys)?;
                let mut out = Vec::with_capacity(slots.len());
                for ((slot, key), proof) in slots.iter().zip(&keys).zip(proofs) {
                    let value = leaves
                        .get((hashed.0, key.0))?
                        .map_or(U256::ZERO, |v| U256::from_be_bytes(v.value()));
                    out.push(StorageProof {
                        slot: *slot,
                        value,
                        proof,
                    });
                }
                out
            }
        };
        Ok(AccountProof {
            address,
            account,
            state_root,
            account_proof,
            storage,
        })
    }
}
