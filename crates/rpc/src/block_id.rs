//! Resolving the block a request names (`latest`, `pending`, `safe`, `finalized`, `earliest`, a
//! number, or an EIP-1898 block hash or number object) to a stored block number.
//!
//! A block is final as soon as it is committed (blocks are sealed by the authority set and never
//! reorganised), so `safe` and `finalized` are the head; there is no pending block, so `pending`
//! state is the head's too (pending *nonces* come from the pool).

use aicoin_storage::Reader;
use alloy_eips::{BlockId, BlockNumberOrTag};

use crate::error::{RpcError, RpcResult};

/// The block number `tag` names, or `None` if it names a block that does not exist (yet).
pub fn number_for_tag(reader: &Reader, tag: BlockNumberOrTag) -> RpcResult<Option<u64>> {
    let head = reader.head_number()?;
    Ok(match tag {
        BlockNumberOrTag::Latest
        | BlockNumberOrTag::Pending
        | BlockNumberOrTag::Safe
        | BlockNumberOrTag::Finalized => Some(head),
        BlockNumberOrTag::Earliest => Some(0),
        BlockNumberOrTag::Number(n) => (n <= head).then_some(n),
    })
}

/// The block number `id` names, or `None` if there is no such block.
pub fn number_for_id(reader: &Reader, id: BlockId) -> RpcResult<Option<u64>> {
    match id {
        BlockId::Number(tag) => number_for_tag(reader, tag),
        BlockId::Hash(hash) => reader.block_number(&hash.block_hash).map_err(Into::into),
    }
}

/// The block a state query targets (`latest` when not given); a missing block is the "header
/// not found" error.
pub fn state_block(reader: &Reader, id: Option<BlockId>) -> RpcResult<u64> {
    number_for_id(reader, id.unwrap_or_default())?.ok_or(RpcError::HeaderNotFound)
}
