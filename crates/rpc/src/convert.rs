//! Stored blocks, transactions, receipts and logs in their JSON-RPC shapes. Every fee a client
//! sees is zero: `baseFeePerGas`, and `gasPrice`/`effectiveGasPrice` of every mined transaction.

use aicoin_primitives::{Seal, TxReceipt};
use aicoin_storage::Reader;
use alloy_consensus::{
    Block as ConsensusBlock, BlockBody, Eip658Value, Header as ConsensusHeader, Receipt,
    ReceiptEnvelope, ReceiptWithBloom, Sealed, Transaction as _, TxEnvelope, TxType,
    transaction::Recovered,
};
use alloy_eips::eip4895::Withdrawals;
use alloy_primitives::{Address, B256, U256};
use alloy_rlp::Encodable;
use alloy_rpc_types_eth::{
    Block, BlockTransactions, Header, Log, Transaction, TransactionInfo, TransactionReceipt,
};

use crate::error::RpcResult;

/// A pooled, not yet mined transaction.
pub fn pending_transaction(tx: Recovered<TxEnvelope>) -> Transaction {
    Transaction::from_transaction(tx, TransactionInfo::default())
}

/// A header as `eth_getBlock*` and `newHeads` show it.
pub fn rpc_header(header: ConsensusHeader, hash: B256, size: Option<U256>) -> Header {
    Header::from_consensus(Sealed::new_unchecked(header, hash), None, size)
}

/// A block as AICoin's RPC returns it: Ethereum's block JSON, plus the producer's seal as one
/// more field (clients ignore fields they do not know).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RpcBlock {
    #[serde(flatten)]
    pub block: Block,
    /// The 65-byte signature over the block hash by the sealer `extraData` names (none for
    /// genesis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_signature: Option<Seal>,
}

/// A stored block read once, from which every RPC shape of it is built.
#[derive(Debug, Clone)]
pub struct StoredBlock {
    pub number: u64,
    pub hash: B256,
    pub header: ConsensusHeader,
    pub seal: Option<Seal>,
    pub transactions: Vec<TxEnvelope>,
    pub senders: Vec<Address>,
}

impl StoredBlock {
    pub fn load(reader: &Reader, number: u64) -> RpcResult<Option<Self>> {
        let (Some(header), Some(hash)) = (reader.header(number)?, reader.block_hash(number)?)
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            number,
            hash,
            header,
            seal: reader.seal(number)?,
            transactions: reader.transactions(number)?,
            senders: reader.senders(number)?,
        }))
    }

    /// The block as `eth_getBlockBy*` returns it, with full transactions or their hashes.
    pub fn rpc_block(self, full: bool) -> RpcBlock {
        let transactions = match full {
            true => BlockTransactions::Full(
                (0..self.transactions.len())
                    .filter_map(|i| self.rpc_transaction(i))
                    .collect(),
            ),
            false => BlockTransactions::Hashes(self.transaction_hashes()),
        };
        let block = ConsensusBlock {
            header: self.header,
            body: BlockBody {
                transactions: self.transactions,
                ommers: Vec::new(),
                withdrawals: Some(Withdrawals::default()),
            },
        };
        let size = U256::from(block.length());
        RpcBlock {
            block: Block {
                header: rpc_header(block.header, self.hash, Some(size)),
                uncles: Vec::new(),
                transactions,
                withdrawals: Some(Withdrawals::default()),
            },
            seal_signature: self.seal,
        }
    }

    pub fn transaction_hashes(&self) -> Vec<B256> {
        self.transactions.iter().map(|tx| *tx.tx_hash()).collect()
    }

    /// The transaction at `index`, as mined in this block.
    pub fn rpc_transaction(&self, index: usize) -> Option<Transaction> {
        let tx = self.transactions.get(index)?.clone();
        let sender = *self.senders.get(index)?;
        let info = TransactionInfo {
            hash: Some(*tx.tx_hash()),
            index: Some(index as u64),
            block_hash: Some(self.hash),
            block_number: Some(self.number),
            base_fee: Some(0),
            block_timestamp: Some(self.header.timestamp),
        };
        let mut rpc = Transaction::from_transaction(Recovered::new_unchecked(tx, sender), info);
        rpc.effective_gas_price = Some(0);
        Some(rpc)
    }

    /// The transactions with their signers, to replay the block.
    pub fn recovered(&self) -> Vec<Recovered<TxEnvelope>> {
        self.transactions
            .iter()
            .cloned()
            .zip(self.senders.iter().copied())
            .map(|(tx, sender)| Recovered::new_unchecked(tx, sender))
            .collect()
    }

    /// Every log of the block with its block, transaction and position; then the logs of its
    /// end-of-block system step (epoch settlements), which no transaction made: they carry the
    /// zero transaction hash and the index one past the last transaction.
    pub fn logs(&self, receipts: &[TxReceipt], system: &[alloy_primitives::Log]) -> Vec<Log> {
        let mut logs = Vec::new();
        for (index, (receipt, tx)) in receipts.iter().zip(&self.transactions).enumerate() {
            for log in &receipt.logs {
                logs.push(self.rpc_log(log.clone(), *tx.tx_hash(), index, logs.len()));
            }
        }
        let index = self.transactions.len();
        for log in system {
            logs.push(self.rpc_log(log.clone(), B256::ZERO, index, logs.len()));
        }
        logs
    }

    fn rpc_log(
        &self,
        log: alloy_primitives::Log,
        tx_hash: B256,
        tx_index: usize,
        log_index: usize,
    ) -> Log {
        Log {
            inner: log,
            block_hash: Some(self.hash),
            block_number: Some(self.number),
            block_timestamp: Some(self.header.timestamp),
            transaction_hash: Some(tx_hash),
            transaction_index: Some(tx_index as u64),
            log_index: Some(log_index as u64),
            removed: false,
        }
    }

    /// Every receipt of the block, as `eth_getBlockReceipts` returns them.
    pub fn rpc_receipts(&self, receipts: &[TxReceipt]) -> Vec<TransactionReceipt> {
        let mut out = Vec::with_capacity(receipts.len());
        let (mut previous_gas, mut first_log) = (0, 0);
        for (index, receipt) in receipts.iter().enumerate() {
            let (Some(tx), Some(sender)) = (self.transactions.get(index), self.senders.get(index))
            else {
                break;
            };
            out.push(self.rpc_receipt(receipt, tx, *sender, index, previous_gas, first_log));
            previous_gas = receipt.cumulative_gas_used;
            first_log += receipt.logs.len();
        }
        out
    }

    /// The receipt of the transaction at `index`.
    pub fn rpc_receipt_at(
        &self,
        receipts: &[TxReceipt],
        index: usize,
    ) -> Option<TransactionReceipt> {
        let receipt = receipts.get(index)?;
        let previous_gas = index
            .checked_sub(1)
            .and_then(|i| receipts.get(i))
            .map_or(0, |r| r.cumulative_gas_used);
        let first_log = receipts[..index].iter().map(|r| r.logs.len()).sum();
        Some(self.rpc_receipt(
            receipt,
            self.transactions.get(index)?,
            *self.senders.get(index)?,
            index,
            previous_gas,
            first_log,
        ))
    }

    fn rpc_receipt(
        &self,
        receipt: &TxReceipt,
        tx: &TxEnvelope,
        sender: Address,
        index: usize,
        previous_gas: u64,
        first_log: usize,
    ) -> TransactionReceipt {
        let tx_hash = *tx.tx_hash();
        let logs = receipt
            .logs
            .iter()
            .enumerate()
            .map(|(i, log)| self.rpc_log(log.clone(), tx_hash, index, first_log + i))
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
        TransactionReceipt {
            inner,
            transaction_hash: tx_hash,
            transaction_index: Some(index as u64),
            block_hash: Some(self.hash),
            block_number: Some(self.number),
            gas_used: receipt.cumulative_gas_used.saturating_sub(previous_gas),
            effective_gas_price: 0,
            blob_gas_used: None,
            blob_gas_price: None,
            from: sender,
            to: tx.to(),
            contract_address: tx.is_create().then(|| sender.create(tx.nonce())),
        }
    }
}

/// The receipt of the mined transaction `tx_hash`.
pub fn rpc_receipt(reader: &Reader, tx_hash: &B256) -> RpcResult<Option<TransactionReceipt>> {
    let Some((number, index)) = reader.transaction_location(tx_hash)? else {
        return Ok(None);
    };
    let Some(block) = StoredBlock::load(reader, number)? else {
        return Ok(None);
    };
    let receipts = reader.receipts(number)?;
    Ok(block.rpc_receipt_at(&receipts, index as usize))
}
