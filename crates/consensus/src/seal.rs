//! Clique-style sealing: `extraData` is 32 bytes of vanity followed by the producer's 65-byte
//! secp256k1 signature (r ‖ s ‖ y-parity) over the keccak of the header RLP with the signature
//! left out. The block hash covers the signature, so a sealed header cannot be re-signed.

use alloy_consensus::{Header, crypto::secp256k1};
use alloy_primitives::{Address, B256, Bytes, Signature, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;

pub const EXTRA_VANITY_LEN: usize = 32;
pub const EXTRA_SEAL_LEN: usize = 65;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("extraData is {0} bytes; a sealed header carries exactly {len}", len = EXTRA_VANITY_LEN + EXTRA_SEAL_LEN)]
    BadExtraLength(usize),
    #[error("the seal is not a valid signature: {0}")]
    BadSignature(String),
    #[error("signing the header failed: {0}")]
    Signing(String),
}

/// The hash the producer signs: the header with `extraData` cut to its vanity.
pub fn seal_hash(header: &Header) -> Result<B256, SealError> {
    let len = header.extra_data.len();
    if len != EXTRA_VANITY_LEN + EXTRA_SEAL_LEN {
        return Err(SealError::BadExtraLength(len));
    }
    let mut unsealed = header.clone();
    unsealed.extra_data = header.extra_data.slice(..EXTRA_VANITY_LEN);
    Ok(keccak256(alloy_rlp::encode(&unsealed)))
}

/// Signs `header` (whose `extraData` is the 32-byte vanity) and appends the seal.
pub fn seal_header(mut header: Header, signer: &PrivateKeySigner) -> Result<Header, SealError> {
    let mut vanity = [0u8; EXTRA_VANITY_LEN];
    let given = &header.extra_data[..header.extra_data.len().min(EXTRA_VANITY_LEN)];
    vanity[..given.len()].copy_from_slice(given);
    header.extra_data = Bytes::copy_from_slice(&vanity);
    let hash = keccak256(alloy_rlp::encode(&header));
    let signature = signer
        .sign_hash_sync(&hash)
        .map_err(|e| SealError::Signing(e.to_string()))?;
    let mut extra = vanity.to_vec();
    extra.extend_from_slice(&signature.as_rsy());
    header.extra_data = extra.into();
    Ok(header)
}

/// The address whose key sealed `header`.
pub fn recover_sealer(header: &Header) -> Result<Address, SealError> {
    let hash = seal_hash(header)?;
    let seal = &header.extra_data[EXTRA_VANITY_LEN..];
    let parity = match seal[64] {
        0 => false,
        1 => true,
        v => {
            return Err(SealError::BadSignature(format!(
                "y-parity byte is {v}, not 0 or 1"
            )));
        }
    };
    // alloy's recovery refuses a high `s`: with (r, n - s) and the flipped parity the same
    // sealer would sign a second, differently hashed copy of the block.
    let signature = Signature::from_bytes_and_parity(&seal[..64], parity);
    secp256k1::recover_signer(&signature, hash).map_err(|e| SealError::BadSignature(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_the_header() {
        let signer = PrivateKeySigner::random();
        let header = Header {
            number: 7,
            extra_data: Bytes::from_static(b"aicoin"),
            ..Default::default()
        };
        let sealed = seal_header(header, &signer).unwrap();
        assert_eq!(sealed.extra_data.len(), EXTRA_VANITY_LEN + EXTRA_SEAL_LEN);
        assert_eq!(&sealed.extra_data[..6], b"aicoin");
        assert_eq!(recover_sealer(&sealed).unwrap(), signer.address());

        // Any change to a sealed field moves the recovered address away from the signer.
        let mut tampered = sealed.clone();
        tampered.number = 8;
        assert_ne!(recover_sealer(&tampered).ok(), Some(signer.address()));
    }

    #[test]
    fn high_s_twin_of_a_seal_is_rejected() {
        let signer = PrivateKeySigner::random();
        let sealed = seal_header(Header::default(), &signer).unwrap();
        let seal = &sealed.extra_data[EXTRA_VANITY_LEN..];
        let signature = Signature::from_bytes_and_parity(&seal[..64], seal[64] == 1);
        // The malleated twin: s' = n - s with the other parity recovers the same key.
        let n = alloy_consensus::crypto::SECP256K1N_HALF * alloy_primitives::U256::from(2)
            + alloy_primitives::U256::from(1);
        let twin = Signature::new(signature.r(), n - signature.s(), !signature.v());
        let mut extra = sealed.extra_data[..EXTRA_VANITY_LEN].to_vec();
        extra.extend_from_slice(&twin.as_rsy());
        let twin_header = Header {
            extra_data: extra.into(),
            ..sealed.clone()
        };
        assert_ne!(twin_header.hash_slow(), sealed.hash_slow());
        assert!(matches!(
            recover_sealer(&twin_header),
            Err(SealError::BadSignature(_))
        ));
    }

    #[test]
    fn malformed_seals_are_errors() {
        let header = Header {
            extra_data: Bytes::from_static(&[0u8; 40]),
            ..Default::default()
        };
        assert_eq!(recover_sealer(&header), Err(SealError::BadExtraLength(40)));
        let mut extra = vec![0u8; EXTRA_VANITY_LEN + EXTRA_SEAL_LEN];
        extra[EXTRA_VANITY_LEN + 64] = 27;
        let header = Header {
            extra_data: extra.into(),
            ..Default::default()
        };
        assert!(matches!(
            recover_sealer(&header),
            Err(SealError::BadSignature(_))
        ));
    }
}
