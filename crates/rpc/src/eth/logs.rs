//! Log queries: a filter's block range resolved against the chain, then each block's bloom
//! checked before its receipts are read. Shared by `eth_getLogs`, log filters and `logs`
//! subscriptions, with caps on the criteria a filter holds, the range scanned and the logs
//! returned.

use aicoin_storage::Reader;
use alloy_eips::BlockNumberOrTag;
use alloy_rpc_types_eth::{Filter, FilterBlockOption, Log};

use crate::{
    block_id::number_for_tag,
    convert::StoredBlock,
    error::{RpcError, RpcResult},
    state::RpcLimits,
};

/// Most addresses one filter or `logs` subscription may name, and most alternatives in each of
/// its topic positions: geth's limits. A filter is kept until it expires, so without them one
/// request body's worth of addresses (about 110k) stayed in memory per filter.
pub const MAX_FILTER_CRITERIA: usize = 1_000;

/// Refuses a filter naming more addresses, or more alternatives for a topic, than
/// [`MAX_FILTER_CRITERIA`].
pub fn check_criteria(filter: &Filter) -> RpcResult<()> {
    let addresses = filter.address.len();
    if addresses > MAX_FILTER_CRITERIA {
        return Err(RpcError::InvalidParams(format!(
            "the filter names {addresses} addresses; the most allowed is {MAX_FILTER_CRITERIA}"
        )));
    }
    for (position, topic) in filter.topics.iter().enumerate() {
        if topic.len() > MAX_FILTER_CRITERIA {
            return Err(RpcError::InvalidParams(format!(
                "the filter's topic {position} has {} alternatives; the most allowed is \
                 {MAX_FILTER_CRITERIA}",
                topic.len()
            )));
        }
    }
    Ok(())
}

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
    check_criteria(filter)?;
    match filter_range(reader, filter)? {
        Some(range) => logs_in_range(reader, filter, range, limits),
        None => Ok(Vec::new()),
    }
}
