//! Blocks, their transactions and receipts: by number, tag or hash, whole or by index.

use alloy_eips::{BlockId, BlockNumberOrTag, eip2718::Encodable2718};
use alloy_primitives::{B256, Bytes, U64};
use alloy_rpc_types_eth::{Index, Transaction, TransactionReceipt};
use jsonrpsee::proc_macros::rpc;

use super::EthRpc;
use crate::{
    block_id::{number_for_id, number_for_tag},
    convert::{RpcBlock as Block, StoredBlock, pending_transaction, rpc_receipt},
    error::RpcResult,
};

#[rpc(server, namespace = "eth")]
pub trait EthBlocksApi {
    #[method(name = "blockNumber")]
    fn block_number(&self) -> RpcResult<U64>;

    #[method(name = "getBlockByNumber")]
    fn block_by_number(&self, number: BlockNumberOrTag, full: bool) -> RpcResult<Option<Block>>;

    #[method(name = "getBlockByHash")]
    fn block_by_hash(&self, hash: B256, full: bool) -> RpcResult<Option<Block>>;

    #[method(name = "getBlockTransactionCountByNumber")]
    fn block_transaction_count_by_number(&self, number: BlockNumberOrTag)
    -> RpcResult<Option<U64>>;

    #[method(name = "getBlockTransactionCountByHash")]
    fn block_transaction_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>>;

    #[method(name = "getUncleCountByBlockNumber")]
    fn uncle_count_by_number(&self, number: BlockNumberOrTag) -> RpcResult<Option<U64>>;

    #[method(name = "getUncleCountByBlockHash")]
    fn uncle_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>>;

    #[method(name = "getUncleByBlockNumberAndIndex")]
    fn uncle_by_number_and_index(
        &self,
        number: BlockNumberOrTag,
        index: Index,
    ) -> RpcResult<Option<Block>>;

    #[method(name = "getUncleByBlockHashAndIndex")]
    fn uncle_by_hash_and_index(&self, hash: B256, index: Index) -> RpcResult<Option<Block>>;

    #[method(name = "getBlockReceipts", blocking)]
    fn block_receipts(&self, block: BlockId) -> RpcResult<Option<Vec<TransactionReceipt>>>;

    #[method(name = "getTransactionByHash")]
    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Transaction>>;

    #[method(name = "getRawTransactionByHash")]
    fn raw_transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Bytes>>;

    #[method(name = "getTransactionByBlockNumberAndIndex")]
    fn transaction_by_number_and_index(
        &self,
        number: BlockNumberOrTag,
        index: Index,
    ) -> RpcResult<Option<Transaction>>;

    #[method(name = "getTransactionByBlockHashAndIndex")]
    fn transaction_by_hash_and_index(
        &self,
        hash: B256,
        index: Index,
    ) -> RpcResult<Option<Transaction>>;

    #[method(name = "getTransactionReceipt")]
    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>>;
}

impl EthRpc {
    fn stored_block(&self, id: BlockId) -> RpcResult<Option<StoredBlock>> {
        let reader = self.state.reader()?;
        match number_for_id(&reader, id)? {
            Some(number) => StoredBlock::load(&reader, number),
            None => Ok(None),
        }
    }
}

impl EthBlocksApiServer for EthRpc {
    fn block_number(&self) -> RpcResult<U64> {
        Ok(U64::from(self.state.reader()?.head_number()?))
    }

    fn block_by_number(&self, number: BlockNumberOrTag, full: bool) -> RpcResult<Option<Block>> {
        Ok(self.stored_block(number.into())?.map(|b| b.rpc_block(full)))
    }

    fn block_by_hash(&self, hash: B256, full: bool) -> RpcResult<Option<Block>> {
        Ok(self.stored_block(hash.into())?.map(|b| b.rpc_block(full)))
    }

    fn block_transaction_count_by_number(
        &self,
        number: BlockNumberOrTag,
    ) -> RpcResult<Option<U64>> {
        let block = self.stored_block(number.into())?;
        Ok(block.map(|b| U64::from(b.transactions.len())))
    }

    fn block_transaction_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>> {
        let block = self.stored_block(hash.into())?;
        Ok(block.map(|b| U64::from(b.transactions.len())))
    }

    fn uncle_count_by_number(&self, number: BlockNumberOrTag) -> RpcResult<Option<U64>> {
        let reader = self.state.reader()?;
        Ok(number_for_tag(&reader, number)?.map(|_| U64::ZERO))
    }

    fn uncle_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>> {
        let reader = self.state.reader()?;
        Ok(reader.block_number(&hash)?.map(|_| U64::ZERO))
    }

    fn uncle_by_number_and_index(
        &self,
        _number: BlockNumberOrTag,
        _index: Index,
    ) -> RpcResult<Option<Block>> {
        Ok(None)
    }

    fn uncle_by_hash_and_index(&self, _hash: B256, _index: Index) -> RpcResult<Option<Block>> {
        Ok(None)
    }

    fn block_receipts(&self, block: BlockId) -> RpcResult<Option<Vec<TransactionReceipt>>> {
        let reader = self.state.reader()?;
        let Some(number) = number_for_id(&reader, block)? else {
            return Ok(None);
        };
        let Some(block) = StoredBlock::load(&reader, number)? else {
            return Ok(None);
        };
        Ok(Some(block.rpc_receipts(&reader.receipts(number)?)))
    }

    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Transaction>> {
        let reader = self.state.reader()?;
        if let Some((number, index)) = reader.transaction_location(&hash)? {
            let block = StoredBlock::load(&reader, number)?;
            return Ok(block.and_then(|b| b.rpc_transaction(index as usize)));
        }
        Ok(self
            .state
            .pool
            .get(&hash)
            .map(|pooled| pending_transaction(pooled.tx.clone())))
    }

    fn raw_transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Bytes>> {
        let reader = self.state.reader()?;
        if let Some((number, index)) = reader.transaction_location(&hash)? {
            let tx = reader.transactions(number)?.into_iter().nth(index as usize);
            return Ok(tx.map(|tx| tx.encoded_2718().into()));
        }
        Ok(self
            .state
            .pool
            .get(&hash)
            .map(|pooled| pooled.tx.inner().encoded_2718().into()))
    }

    fn transaction_by_number_and_index(
        &self,
        number: BlockNumberOrTag,
        index: Index,
    ) -> RpcResult<Option<Transaction>> {
        let block = self.stored_block(number.into())?;
        Ok(block.and_then(|b| b.rpc_transaction(index.into())))
    }

    fn transaction_by_hash_and_index(
        &self,
        hash: B256,
        index: Index,
    ) -> RpcResult<Option<Transaction>> {
        let block = self.stored_block(hash.into())?;
        Ok(block.and_then(|b| b.rpc_transaction(index.into())))
    }

    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>> {
        rpc_receipt(&self.state.reader()?, &hash)
    }
}
