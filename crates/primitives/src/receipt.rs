//! Transaction receipts as the chain stores them: outcome, cumulative gas and logs. The bloom is
//! derived when a receipt is served or hashed, not stored.

use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom, TxType};
use alloy_primitives::{Bloom, Log};
use alloy_rlp::{RlpDecodable, RlpEncodable};

#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct TxReceipt {
    /// EIP-2718 type of the transaction (0 legacy, 1 EIP-2930, 2 EIP-1559).
    pub tx_type: u8,
    pub success: bool,
    /// Gas used by this and every earlier transaction of the block.
    pub cumulative_gas_used: u64,
    pub logs: Vec<Log>,
}

impl TxReceipt {
    /// The consensus receipt with its bloom, as hashed into `receiptsRoot`.
    pub fn to_envelope(&self) -> ReceiptEnvelope {
        let receipt = Receipt {
            status: Eip658Value::Eip658(self.success),
            cumulative_gas_used: self.cumulative_gas_used,
            logs: self.logs.clone(),
        };
        let tx_type = TxType::try_from(self.tx_type).unwrap_or(TxType::Legacy);
        ReceiptEnvelope::from_typed(tx_type, ReceiptWithBloom::from(receipt))
    }

    pub fn bloom(&self) -> Bloom {
        alloy_primitives::logs_bloom(self.logs.iter())
    }
}
