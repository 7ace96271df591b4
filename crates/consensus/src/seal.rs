//! Proof-of-authority sealing with plain Ethereum headers: `extraData` is the sealer's 20-byte
//! address followed by a short version tag (32 bytes at most), and the seal, a secp256k1
//! signature (r ‖ s ‖ y-parity) over the block hash, travels beside the header in a
//! [`SealedBlock`]. The hash covers the sealer's address, so a block cannot be passed off as
//! another authority's; the signature proves that authority made it.

use aicoin_primitives::{Seal, SealedBlock};
use alloy_consensus::{Header, TxEnvelope, crypto::secp256k1};
use alloy_primitives::{Address, Bytes, Signature};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;

/// Most bytes Ethereum clients accept in `extraData` (web3.py rejects more by default).
pub const MAX_EXTRA_DATA: usize = 32;

/// The tag after the sealer's address: `aicoin/<version>`, cut to fit.
pub fn version_tag() -> &'static [u8] {
    let tag = concat!("aicoin/", env!("CARGO_PKG_VERSION")).as_bytes();
    &tag[..tag.len().min(MAX_EXTRA_DATA - Address::len_bytes())]
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("extraData is {0} bytes: it must start with the sealer's 20-byte address")]
    NoSealer(usize),
    #[error("extraData is {0} bytes, above the {MAX_EXTRA_DATA} Ethereum allows")]
    ExtraTooLong(usize),
    #[error("the header names {named} as its sealer, but the seal was made by {signer}")]
    SealerMismatch { named: Address, signer: Address },
    #[error("the seal's y-parity byte is {0}, not 0 or 1")]
    BadParity(u8),
    #[error("the seal is not a valid signature: {0}")]
    BadSignature(#[from] alloy_primitives::SignatureError),
    #[error("the seal's signature recovers no key: {0}")]
    Unrecoverable(#[from] alloy_consensus::crypto::RecoveryError),
    #[error("signing the block failed: {0}")]
    Signing(#[from] alloy_signer::Error),
}

/// The `extraData` of a block `sealer` seals.
pub fn sealer_extra_data(sealer: Address) -> Bytes {
    [sealer.as_slice(), version_tag()].concat().into()
}

/// The authority `header` names as its sealer.
pub fn named_sealer(header: &Header) -> Result<Address, SealError> {
    let extra = &header.extra_data;
    if extra.len() > MAX_EXTRA_DATA {
        return Err(SealError::ExtraTooLong(extra.len()));
    }
    if extra.len() < Address::len_bytes() {
        return Err(SealError::NoSealer(extra.len()));
    }
    Ok(Address::from_slice(&extra[..Address::len_bytes()]))
}

/// Seals `header` (whose `extraData` names `signer`, see [`sealer_extra_data`]) with its
/// transactions.
pub fn seal_block(
    header: Header,
    transactions: Vec<TxEnvelope>,
    signer: &PrivateKeySigner,
) -> Result<SealedBlock, SealError> {
    let named = named_sealer(&header)?;
    if named != signer.address() {
        return Err(SealError::SealerMismatch {
            named,
            signer: signer.address(),
        });
    }
    let signature = signer.sign_hash_sync(&header.hash_slow())?;
    Ok(SealedBlock {
        header,
        seal: Seal::from(signature.as_rsy()),
        transactions,
    })
}

/// The authority that sealed `header` with `seal`: the key the signature recovers, which must
/// be the one `extraData` names.
pub fn recover_sealer(header: &Header, seal: &Seal) -> Result<Address, SealError> {
    let named = named_sealer(header)?;
    let parity = match seal[64] {
        0 => false,
        1 => true,
        v => return Err(SealError::BadParity(v)),
    };
    // alloy's recovery refuses a high `s`, so each block has one valid seal.
    let signature = Signature::from_bytes_and_parity(&seal[..64], parity);
    let signer = secp256k1::recover_signer(&signature, header.hash_slow())?;
    if signer != named {
        return Err(SealError::SealerMismatch { named, signer });
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_by(sealer: Address) -> Header {
        Header {
            number: 7,
            extra_data: sealer_extra_data(sealer),
            ..Default::default()
        }
    }

    #[test]
    fn seal_round_trips_and_binds_the_header() {
        let signer = PrivateKeySigner::random();
        let sealed = seal_block(header_by(signer.address()), Vec::new(), &signer).unwrap();
        assert!(sealed.header.extra_data.len() <= MAX_EXTRA_DATA);
        assert_eq!(&sealed.header.extra_data[20..], version_tag());
        assert!(version_tag().starts_with(b"aicoin/"));
        assert_eq!(
            recover_sealer(&sealed.header, &sealed.seal).unwrap(),
            signer.address()
        );

        // Any change to the header moves the recovered key away from the one it names.
        let mut tampered = sealed.header.clone();
        tampered.number = 8;
        assert!(matches!(
            recover_sealer(&tampered, &sealed.seal),
            Err(SealError::SealerMismatch { .. })
        ));
    }

    #[test]
    fn a_seal_by_another_key_than_the_named_sealer_is_refused() {
        let (named, other) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        assert!(matches!(
            seal_block(header_by(named.address()), Vec::new(), &other),
            Err(SealError::SealerMismatch { .. })
        ));
        // A seal made over a header naming someone else.
        let header = header_by(named.address());
        let signature = other.sign_hash_sync(&header.hash_slow()).unwrap();
        assert!(matches!(
            recover_sealer(&header, &Seal::from(signature.as_rsy())),
            Err(SealError::SealerMismatch { named: n, signer: s })
                if n == named.address() && s == other.address()
        ));
    }

    #[test]
    fn high_s_twin_of_a_seal_is_rejected() {
        let signer = PrivateKeySigner::random();
        let sealed = seal_block(header_by(signer.address()), Vec::new(), &signer).unwrap();
        let signature = Signature::from_bytes_and_parity(&sealed.seal[..64], sealed.seal[64] == 1);
        // The malleated twin: s' = n - s with the other parity recovers the same key.
        let n = alloy_consensus::crypto::SECP256K1N_HALF * alloy_primitives::U256::from(2)
            + alloy_primitives::U256::from(1);
        let twin = Signature::new(signature.r(), n - signature.s(), !signature.v());
        assert!(matches!(
            recover_sealer(&sealed.header, &Seal::from(twin.as_rsy())),
            Err(SealError::Unrecoverable(_) | SealError::BadSignature(_))
        ));
    }

    #[test]
    fn malformed_extra_data_and_seals_are_errors() {
        let header = Header {
            extra_data: Bytes::from_static(&[0u8; 10]),
            ..Default::default()
        };
        assert!(matches!(
            recover_sealer(&header, &Seal::ZERO),
            Err(SealError::NoSealer(10))
        ));
        let header = Header {
            extra_data: Bytes::from_static(&[0u8; 97]),
            ..Default::default()
        };
        assert!(matches!(
            recover_sealer(&header, &Seal::ZERO),
            Err(SealError::ExtraTooLong(97))
        ));
        let mut seal = Seal::ZERO;
        seal[64] = 27;
        assert!(matches!(
            recover_sealer(&header_by(Address::repeat_byte(1)), &seal),
            Err(SealError::BadParity(27))
        ));
    }
}
