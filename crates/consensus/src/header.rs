//! The header shape every AICoin block has, and the checks an importer runs on a header before
//! executing its block.
//!
//! Blocks are Prague-shaped so wallets see a modern chain: `baseFeePerGas` is always 0 (fees are
//! zero, and a zero base fee tells wallets EIP-1559 is supported), there are no uncles, no
//! withdrawals, no blobs and no execution-layer requests, and difficulty and nonce are 0 as after
//! the merge. `mixHash` (PREVRANDAO) is the keccak of the parent hash: it varies per block but,
//! as on any proof-of-authority chain, it is not randomness a contract may rely on.

use aicoin_primitives::ChainSpec;
use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH, Header};
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_primitives::{Address, B64, B256, U256, keccak256};

use aicoin_primitives::Seal;

use crate::seal::{SealError, recover_sealer, sealer_extra_data};

/// How far ahead of the importer's clock a block timestamp may be.
pub const MAX_FUTURE_DRIFT_SECS: u64 = 15;

/// A header for block `parent.number + 1` that `sealer` will seal, with every fixed field set;
/// the producer fills in the roots, bloom and gas used after execution, then seals it.
pub fn header_template(
    parent: &Header,
    parent_hash: B256,
    beneficiary: Address,
    timestamp: u64,
    gas_limit: u64,
    sealer: Address,
) -> Header {
    Header {
        parent_hash,
        number: parent.number + 1,
        beneficiary,
        timestamp: timestamp.max(parent.timestamp),
        gas_limit,
        mix_hash: keccak256(parent_hash),
        extra_data: sealer_extra_data(sealer),
        ..genesis_shape()
    }
}

/// The fixed fields, as the genesis header has them.
pub fn genesis_shape() -> Header {
    Header {
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        difficulty: U256::ZERO,
        nonce: B64::ZERO,
        base_fee_per_gas: Some(0),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: Some(EMPTY_REQUESTS_HASH),
        ..Default::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("block {got} does not follow head {head}")]
    NotNext { head: u64, got: u64 },
    #[error("parent hash {got} is not the head's hash {expected}")]
    WrongParent { expected: B256, got: B256 },
    #[error("timestamp {got} is before the parent's {parent}")]
    TimestampBeforeParent { parent: u64, got: u64 },
    #[error("timestamp {got} is more than {MAX_FUTURE_DRIFT_SECS}s ahead of local time {now}")]
    TimestampInFuture { now: u64, got: u64 },
    #[error("gas used {used} exceeds the gas limit {limit}")]
    GasAboveLimit { used: u64, limit: u64 },
    #[error("field {0} differs from the fixed AICoin header shape")]
    BadShape(&'static str),
    #[error("bad seal: {0}")]
    Seal(#[from] SealError),
    #[error("sealed by {0}, which is not in the authority set")]
    UnknownSealer(Address),
}

/// Checks `header` as the successor of `parent` (whose hash is `parent_hash`) and its `seal`,
/// and returns the authority that sealed it. `now` is the importer's clock in seconds.
pub fn validate_header(
    spec: &ChainSpec,
    parent: &Header,
    parent_hash: B256,
    header: &Header,
    seal: &Seal,
    now: u64,
) -> Result<Address, HeaderError> {
    if header.number != parent.number + 1 {
        return Err(HeaderError::NotNext {
            head: parent.number,
            got: header.number,
        });
    }
    if header.parent_hash != parent_hash {
        return Err(HeaderError::WrongParent {
            expected: parent_hash,
            got: header.parent_hash,
        });
    }
    if header.timestamp < parent.timestamp {
        return Err(HeaderError::TimestampBeforeParent {
            parent: parent.timestamp,
            got: header.timestamp,
        });
    }
    if header.timestamp > now + MAX_FUTURE_DRIFT_SECS {
        return Err(HeaderError::TimestampInFuture {
            now,
            got: header.timestamp,
        });
    }
    if header.gas_used > header.gas_limit {
        return Err(HeaderError::GasAboveLimit {
            used: header.gas_used,
            limit: header.gas_limit,
        });
    }
    let shape = genesis_shape();
    let fixed = [
        ("ommersHash", header.ommers_hash == shape.ommers_hash),
        ("difficulty", header.difficulty == shape.difficulty),
        ("nonce", header.nonce == shape.nonce),
        (
            "baseFeePerGas",
            header.base_fee_per_gas == shape.base_fee_per_gas,
        ),
        (
            "withdrawalsRoot",
            header.withdrawals_root == shape.withdrawals_root,
        ),
        ("blobGasUsed", header.blob_gas_used == shape.blob_gas_used),
        (
            "excessBlobGas",
            header.excess_blob_gas == shape.excess_blob_gas,
        ),
        (
            "parentBeaconBlockRoot",
            header.parent_beacon_block_root == shape.parent_beacon_block_root,
        ),
        ("requestsHash", header.requests_hash == shape.requests_hash),
        (
            "blockAccessListHash",
            header.block_access_list_hash.is_none(),
        ),
        ("slotNumber", header.slot_number.is_none()),
    ];
    if let Some((field, _)) = fixed.iter().find(|(_, ok)| !ok) {
        return Err(HeaderError::BadShape(field));
    }
    let sealer = recover_sealer(header, seal)?;
    if !spec.is_authority(&sealer) {
        return Err(HeaderError::UnknownSealer(sealer));
    }
    Ok(sealer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::seal_block;
    use aicoin_primitives::SealedBlock;
    use alloy_signer_local::PrivateKeySigner;

    fn setup() -> (ChainSpec, PrivateKeySigner, Header, B256) {
        let signer = PrivateKeySigner::random();
        let spec = ChainSpec::local(2108, signer.address(), &[]);
        let parent = Header {
            timestamp: 100,
            ..genesis_shape()
        };
        let hash = parent.hash_slow();
        (spec, signer, parent, hash)
    }

    fn child(parent: &Header, hash: B256, signer: &PrivateKeySigner) -> SealedBlock {
        let h = header_template(
            parent,
            hash,
            signer.address(),
            103,
            30_000_000,
            signer.address(),
        );
        seal_block(h, Vec::new(), signer).unwrap()
    }

    fn check(
        spec: &ChainSpec,
        parent: &Header,
        hash: B256,
        block: &SealedBlock,
        now: u64,
    ) -> Result<Address, HeaderError> {
        validate_header(spec, parent, hash, &block.header, &block.seal, now)
    }

    #[test]
    fn accepts_a_well_formed_sealed_child() {
        let (spec, signer, parent, hash) = setup();
        let block = child(&parent, hash, &signer);
        assert!(block.header.extra_data.len() <= 32);
        assert_eq!(
            check(&spec, &parent, hash, &block, 103).unwrap(),
            signer.address()
        );
    }

    #[test]
    fn rejects_foreign_seal_and_broken_links() {
        let (spec, signer, parent, hash) = setup();
        let stranger = PrivateKeySigner::random();
        let block = child(&parent, hash, &stranger);
        assert!(matches!(
            check(&spec, &parent, hash, &block, 103),
            Err(HeaderError::UnknownSealer(a)) if a == stranger.address()
        ));

        let block = child(&parent, B256::repeat_byte(1), &signer);
        assert!(matches!(
            check(&spec, &parent, hash, &block, 103),
            Err(HeaderError::WrongParent { .. })
        ));

        let mut header = header_template(
            &parent,
            hash,
            signer.address(),
            103,
            30_000_000,
            signer.address(),
        );
        header.base_fee_per_gas = Some(7);
        let block = seal_block(header, Vec::new(), &signer).unwrap();
        assert!(matches!(
            check(&spec, &parent, hash, &block, 103),
            Err(HeaderError::BadShape("baseFeePerGas"))
        ));

        let block = child(&parent, hash, &signer);
        assert!(matches!(
            check(&spec, &parent, hash, &block, 50),
            Err(HeaderError::TimestampInFuture { .. })
        ));

        // An authority's valid seal moved onto a header that names another sealer.
        let mut other = child(&parent, hash, &signer);
        other.header.extra_data = sealer_extra_data(stranger.address());
        assert!(matches!(
            check(&spec, &parent, hash, &other, 103),
            Err(HeaderError::Seal(SealError::SealerMismatch { .. }))
        ));
    }
}
