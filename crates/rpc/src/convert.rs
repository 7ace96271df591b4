//! Stored blocks, transactions and receipts in their JSON-RPC shapes. Every fee a client sees is
//! zero: `baseFeePerGas`, and `gasPrice`/`effectiveGasPrice` of every mined transaction.

use aicoin_storage::Reader;
use alloy_consensus::{
    Block as ConsensusBlock, BlockBody, Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom,
    Sealed, Transaction as _, TxEnvelope, TxType, transaction::Recovered,
};
use alloy_eips::eip4895::Withdrawals;
use alloy_primitives::{Address, B256, U256};
use alloy_rlp::Encodable;
use alloy_rpc_types_eth::{
    Block, BlockTransactions, Header, Log, Transaction, TransactionInfo, TransactionReceipt,
};

use crate::error::RpcResult;

/// A mined transaction as the RPC shows it.
pub fn rpc_transaction(
    tx: TxEnvelope,
    sender: Address,
    block_hash: B256,
    block_number: u64,
    index: u64,
    timestamp: u64,
) -> Transaction {
    let info = TransactionInfo {
        hash: Some(*tx.tx_hash()),
        index: Some(index),
        block_hash: Some(block_hash),
        block_number: Some(block_number),
        base_fee: Some(0),
        block_timestamp: Some(timestamp),
    };
    let mut rpc = Transaction::from_transaction(Recovered::new_unchecked(tx, sender), info);
    rpc.effective_gas_price = Some(0);
    rpc
}

/// A pooled, not yet mined transaction.
pub fn pending_transaction(tx: Recovered<TxEnvelope>) -> Transaction {
    Transaction::from_transaction(tx, TransactionInfo::default())
}

/// Block `number`, with full transactions or their hashes.
pub fn rpc_block(reader: &Reader, number: u64, full: bool) -> RpcResult<Option<Block>> {
    let Some(header) = reader.header(number)? else {
        return Ok(None);
    };
    let Some(hash) = reader.block_hash(number)? else {
        return Ok(None);
    };
    let transactions = reader.transactions(number)?;
    let consensus = ConsensusBlock {
        header,
        body: BlockBody {
            transactions,
            ommers: Vec::new(),
            withdrawals: Some(Withdrawals::default()),
        },
    };
    let size = U256::from(consensus.length());
    let ConsensusBlock { header, body } = consensus;
    let timestamp = header.timestamp;
    let transactions = if full {
        let senders = reader.senders(number)?;
        BlockTransactions::Full(
            body.transactions
                .into_iter()
                .zip(senders)
                .enumerate()
                .map(|(i, (tx, sender))| {
                    rpc_transaction(tx, sender, hash, number, i as u64, timestamp)
                })
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(body.transactions.iter().map(|tx| *tx.tx_hash()).collect())
    };
    Ok(Some(Block {
        header: Header::from_consensus(Sealed::new_unchecked(header, hash), None, Some(size)),
        uncles: Vec::new(),
        transactions,
        withdrawals: Some(Withdrawals::default()),
    }))
}

/// The transaction at `(number, index)` of a mined block.
pub fn rpc_transaction_at(
    reader: &Reader,
    number: u64,
    index: u32,
) -> RpcResult<Option<Transaction>> {
    let Some(header) = reader.header(number)? else {
        return Ok(None);
    };
    let Some(hash) = reader.block_hash(number)? else {
        return Ok(None);
    };
    let (Some(tx), Some(sender)) = (
        reader.transactions(number)?.into_iter().nth(index as usize),
        reader.senders(number)?.get(index as usize).copied(),
    ) else {
        return Ok(None);
    };
    Ok(Some(rpc_transaction(
        tx,
        sender,
        hash,
        number,
        index as u64,
        header.timestamp,
    )))
}

/// The receipt of the mined transaction `tx_hash`.
pub fn rpc_receipt(reader: &Reader, tx_hash: &B256) -> RpcResult<Option<TransactionReceipt>> {
    let Some((number, index)) = reader.transaction_location(tx_hash)? else {
        return Ok(None);
    };
    let index = index as usize;
    let (Some(header), Some(block_hash)) = (reader.header(number)?, reader.block_hash(number)?)
    else {
        return Ok(None);
    };
    let receipts = reader.receipts(number)?;
    let transactions = reader.transactions(number)?;
    let senders = reader.senders(number)?;
    let (Some(receipt), Some(tx), Some(sender)) = (
        receipts.get(index),
        transactions.get(index),
        senders.get(index),
    ) else {
        return Ok(None);
    };
    let previous_gas = index
        .checked_sub(1)
        .map_or(0, |i| receipts[i].cumulative_gas_used);
    let first_log_index: usize = receipts[..index].iter().map(|r| r.logs.len()).sum();
    let logs = receipt
        .logs
        .iter()
        .enumerate()
        .map(|(i, log)| Log {
            inner: log.clone(),
            block_hash: Some(block_hash),
            block_number: Some(number),
            block_timestamp: Some(header.timestamp),
            transaction_hash: Some(*tx_hash),
            transaction_index: Some(index as u64),
            log_index: Some((first_log_index + i) as u64),
            removed: false,
        })
        .collect();
    let inner = ReceiptEnvelope::from_typed(
        TxType::try_from(receipt.tx_type).unwrap_or(TxType::Legacy),
        ReceiptWithBloom::new(
            Receipt {
                status: Eip658Value::Eip658(receipt.success),
                cumulative_gas_used: receipt.cumulative_gas_used,
                logs,
            },
            receipt.bloom(),
        ),
    );
    let contract_address = tx.is_create().then(|| sender.create(tx.nonce()));
    Ok(Some(TransactionReceipt {
        inner,
        transaction_hash: *tx_hash,
        transaction_index: Some(index as u64),
        block_hash: Some(block_hash),
        block_number: Some(number),
        gas_used: receipt.cumulative_gas_used - previous_gas,
        effective_gas_price: 0,
        blob_gas_used: None,
        blob_gas_price: None,
        from: *sender,
        to: tx.to(),
        contract_address,
    }))
}
