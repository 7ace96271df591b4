//! The redb tables and what each key and value holds. State is keyed by keccak(address) and
//! keccak(slot), the trie's own keys, so the leaves feed the state root directly.

use redb::TableDefinition;

/// Hash of an address or slot: a state trie key.
pub(crate) type Hashed = [u8; 32];

/// `"genesis_hash"` → 32 bytes, `"chain_spec"` → JSON, `"issued"` → 32-byte big-endian wei,
/// `"format"` → the layout version as one byte (absent in data dirs of aicoin 0.5 and older).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Block number → RLP header.
pub(crate) const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new("headers");
/// Block number → the producer's 65-byte seal (none for genesis).
pub(crate) const SEALS: TableDefinition<u64, [u8; 65]> = TableDefinition::new("seals");
/// Block number → block hash.
pub(crate) const BLOCK_HASHES: TableDefinition<u64, [u8; 32]> =
    TableDefinition::new("block_hashes");
/// Block hash → block number.
pub(crate) const BLOCK_NUMBERS: TableDefinition<[u8; 32], u64> =
    TableDefinition::new("block_numbers");
/// Block number → RLP list of the block's transactions.
pub(crate) const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("bodies");
/// Block number → the transactions' senders, 20 bytes each, in order.
pub(crate) const SENDERS: TableDefinition<u64, &[u8]> = TableDefinition::new("senders");
/// Block number → RLP list of [`aicoin_primitives::TxReceipt`].
pub(crate) const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
/// Block number → RLP list of the logs of the block's end-of-block system step (only blocks
/// that have some; the table exists once one has).
pub(crate) const SYSTEM_LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("system_logs");
/// Transaction hash → (block number, index in block).
pub(crate) const TX_LOCATIONS: TableDefinition<[u8; 32], (u64, u32)> =
    TableDefinition::new("tx_locations");
/// keccak(address) → RLP trie account (nonce, balance, storage root, code hash).
pub(crate) const ACCOUNTS: TableDefinition<Hashed, &[u8]> = TableDefinition::new("accounts");
/// (keccak(address), keccak(slot)) → 32-byte big-endian value; zero values are not stored.
pub(crate) const STORAGE: TableDefinition<(Hashed, Hashed), [u8; 32]> =
    TableDefinition::new("storage");
/// Code hash → bytecode.
pub(crate) const CODE: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("code");
/// Nibble path (one byte per nibble) → branch node of the account trie.
pub(crate) const ACCOUNT_TRIE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("account_trie");
/// keccak(address) ‖ nibble path → branch node of that account's storage trie.
pub(crate) const STORAGE_TRIE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("storage_trie");
/// (keccak(address), block) → the account as it was *before* that block changed it (empty: it
/// did not exist). The first entry after block `b` holds the account's state at `b`.
pub(crate) const ACCOUNT_HISTORY: TableDefinition<(Hashed, u64), &[u8]> =
    TableDefinition::new("account_history");
/// (keccak(address), keccak(slot), block) → the slot's value before that block changed it.
pub(crate) const STORAGE_HISTORY: TableDefinition<(Hashed, Hashed, u64), [u8; 32]> =
    TableDefinition::new("storage_history");
