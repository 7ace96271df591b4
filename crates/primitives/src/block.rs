//! The sealed block as it travels between nodes and rests in storage: a plain Ethereum block
//! with the producer's 65-byte seal beside its header, not inside `extraData`.
//!
//! The header's `extraData` names the sealer (its address, then a short version tag), so the
//! block hash commits to who sealed it; the seal is that sealer's signature over the block hash.
//! Keeping it out of the header keeps `extraData` within the 32 bytes every Ethereum client
//! accepts (Clique's 97 bytes break web3.py's default validation).

use alloy_consensus::{Header, TxEnvelope};
use alloy_primitives::{B256, FixedBytes};
use alloy_rlp::{RlpDecodable, RlpEncodable};

/// A secp256k1 signature over the block hash: r ‖ s ‖ y-parity (0 or 1).
pub type Seal = FixedBytes<65>;

/// A block with its seal, RLP-encoded as `[header, seal, [transactions…]]`: the format of the
/// raft log, `/blocks` sync and `aicoin import`/`export` files.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct SealedBlock {
    pub header: Header,
    pub seal: Seal,
    pub transactions: Vec<TxEnvelope>,
}

impl SealedBlock {
    /// keccak(rlp(header)): the seal does not enter the hash.
    pub fn hash(&self) -> B256 {
        self.header.hash_slow()
    }

    pub fn number(&self) -> u64 {
        self.header.number
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_rlp::{Decodable, Encodable};

    #[test]
    fn sealed_block_round_trips_through_rlp() {
        let block = SealedBlock {
            header: Header {
                number: 9,
                ..Default::default()
            },
            seal: Seal::repeat_byte(7),
            transactions: Vec::new(),
        };
        let mut out = Vec::new();
        block.encode(&mut out);
        assert_eq!(SealedBlock::decode(&mut out.as_slice()).unwrap(), block);
        assert_eq!(block.hash(), block.header.hash_slow());
    }
}
