//! Log queries: a filter's block range resolved against the chain, then each block's bloom
//! checked before its receipts are read. Shared by `eth_getLogs`, log filters and `logs`
//! subscriptions, with caps on the range scanned and the logs returned.

use aicoin_storage::Reader;
use alloy_eips::BlockNumberOrTag;
use alloy_rpc_types_eth::{Filter, FilterBlockOption, Log};

use crate::{
    block_id::number_for_tag,
    convert::StoredBlock,
    error::{RpcError, RpcResult},
    state::RpcLimits,
};

/// The inclusive block range a filter covers, clamped to the head.
pub fn filter_range(reader: &Reader, filter: &Filter) -> RpcResult<Option<(u64, u64)>> {
    match filter.block_option {
        FilterBlockOption::AtBlockHash(hash) => {
            let number = reader
                .block_number(&hash)?
                .ok_or(RpcError::HeaderNotFound)?;
            Ok(Some((number, number)))
        }
        FilterBlockOption::Range {
            from_block,
            to_block,
        } => {
            if let (Some(BlockNumberOrTag::Number(from)), Some(BlockNumberOrTag::Number(to))) =
                (from_block, to_block)
                && from > to
            {
                return Err(RpcError::InvalidParams(format!(
                    "invalid block range: fromBlock {from} is after toBlock {to}"
                )));
            }
            let head = reader.head_number()?;
            let resolve = |tag: Option<BlockNumberOrTag>| -> RpcResult<u64> {
                Ok(match tag.unwrap_or_default() {
                    BlockNumberOrTag::Number(n) => n.min(head),
                    tag => number_for_tag(reader, tag)?.unwrap_or(head),
                })
            };
            let from = match from_block {
                Some(BlockNumberOrTag::Number(n)) if n > head => return Ok(None),
                other => resolve(other)?,
            };
            let to = resolve(to_block)?;
            if from > to {
                return Err(RpcError::InvalidParams(format!(
                    "invalid block range: fromBlock {from} is after toBlock {to}"
                )));
            }
            Ok(Some((from, to)))
        }
    }
}

/// The logs of blocks `from..=to` that `filter` selects, within `limits`.
pub fn logs_in_range(
    reader: &Reader,
    filter: &Filter,
    (from, to): (u64, u64),
    limits: &RpcLimits,
) -> RpcResult<Vec<Log>> {
    let blocks = to - from + 1;
    if blocks > limits.max_logs_range {
        return Err(RpcError::LimitExceeded(format!(
            "block range too large: {blocks} blocks ({from}..={to}), the limit is {}; split the \
             query",
            limits.max_logs_range
        )));
    }
    let mut logs = Vec::new();
    for number in from..=to {
        let Some(header) = reader.header(number)? else {
            break;
        };
        if !filter.matches_bloom(header.logs_bloom) {
            continue;
        }
        let Some(block) = StoredBlock::load(reader, number)? else {
            break;
        };
        logs.extend(
            block
                .logs(&reader.receipts(number)?, &reader.system_logs(number)?)
                .into_iter()
                .filter(|log| filter.matches(&log.inner)),
        );
        if logs.len() > limits.max_logs {
            return Err(RpcError::LimitExceeded(format!(
                "query returned more than {} logs; narrow the block range or the filter",
                limits.max_logs
            )));
        }
    }
    Ok(logs)
}

/// The logs `filter` selects over its whole range.
pub fn logs(reader: &Reader, filter: &Filter, limits: &RpcLimits) -> RpcResult<Vec<Log>> {
    match filter_range(reader, filter)? {
        Some(range) => logs_in_range(reader, filter, range, limits),
        None => Ok(Vec::new()),
    }
}
