//! API keys that need no database: a key is an EIP-712 message (the account whose
//! subscription it spends, its expiry, the account's key generation, the chain) with the
//! account's signature, encoded as `aic_` and base64url. Any gateway checks it from the key
//! alone plus two facts from the chain (the chain id, the account's current key generation):
//! the signature must recover the account, the key must be unexpired and of the current
//! generation, so `revokeKeys()` on chain refuses every key signed before. MetaMask signs the
//! same message with `eth_signTypedData_v4`.

use alloy_primitives::{Address, Signature, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{Eip712Domain, SolStruct, SolValue, eip712_domain, sol};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

sol! {
    /// What an API key grants: `account`'s subscription, until `expires` (Unix seconds), while
    /// its key generation is `generation`, on chain `chainId`.
    #[derive(Debug, PartialEq, Eq)]
    struct ApiKey {
        address account;
        uint64 expires;
        uint64 generation;
        uint64 chainId;
    }
}

/// The prefix every key starts with (as OpenAI's start with `sk-`).
pub const PREFIX: &str = "aic_";

/// A key's bytes: the message ABI-encoded (4 words), then the 65-byte signature.
const ENCODED_LEN: usize = 4 * 32 + 65;

/// Why a key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "not an AICoin API key (they start with {PREFIX} and come from `aicoin api-key create`)"
    )]
    Malformed,
    #[error("the key is for chain {key}, not this gateway's chain {expected}")]
    WrongChain { key: u64, expected: u64 },
    #[error("the key's signature is not {0}'s")]
    WrongSigner(Address),
    #[error("the key expired at {expired} (Unix time)")]
    Expired { expired: u64 },
    #[error(
        "the key is of generation {key}; {account} revoked its keys (generation {current} now)"
    )]
    Revoked {
        account: Address,
        key: u64,
        current: u64,
    },
    #[error("cannot sign the key: {0}")]
    Signing(String),
}

/// The EIP-712 domain keys are signed in.
pub fn domain(chain_id: u64) -> Eip712Domain {
    eip712_domain! {
        name: "AICoin API",
        version: "1",
        chain_id: chain_id,
    }
}

impl ApiKey {
    /// The EIP-712 hash the account signs.
    pub fn signing_hash(&self) -> alloy_primitives::B256 {
        self.eip712_signing_hash(&domain(self.chainId))
    }

    /// Signs this key with `signer` (which must be `account`'s key) and encodes it.
    pub fn sign(&self, signer: &PrivateKeySigner) -> Result<String, KeyError> {
        if signer.address() != self.account {
            return Err(KeyError::WrongSigner(self.account));
        }
        let signature = signer
            .sign_hash_sync(&self.signing_hash())
            .map_err(|e| KeyError::Signing(e.to_string()))?;
        Ok(encode(self, &signature))
    }

    /// Decodes `text` and checks its signature: the key and the account it speaks for.
    pub fn decode(text: &str) -> Result<Self, KeyError> {
        let bytes = text
            .trim()
            .strip_prefix(PREFIX)
            .and_then(|rest| URL_SAFE_NO_PAD.decode(rest).ok())
            .filter(|bytes| bytes.len() == ENCODED_LEN)
            .ok_or(KeyError::Malformed)?;
        let (message, signature) = bytes.split_at(4 * 32);
        let (account, expires, generation, chain_id) =
            <(Address, u64, u64, u64)>::abi_decode_params_validate(message)
                .map_err(|_| KeyError::Malformed)?;
        let key = Self {
            account,
            expires,
            generation,
            chainId: chain_id,
        };
        let signature = Signature::from_raw(signature).map_err(|_| KeyError::Malformed)?;
        match signature.recover_address_from_prehash(&key.signing_hash()) {
            Ok(signer) if signer == account => Ok(key),
            _ => Err(KeyError::WrongSigner(account)),
        }
    }

    /// Checks a decoded key against this gateway's chain, the time now (Unix seconds) and the
    /// account's key generation on chain.
    pub fn check(&self, chain_id: u64, now: u64, generation: u64) -> Result<(), KeyError> {
        if self.chainId != chain_id {
            return Err(KeyError::WrongChain {
                key: self.chainId,
                expected: chain_id,
            });
        }
        if now >= self.expires {
            return Err(KeyError::Expired {
                expired: self.expires,
            });
        }
        if self.generation != generation {
            return Err(KeyError::Revoked {
                account: self.account,
                key: self.generation,
                current: generation,
            });
        }
        Ok(())
    }
}

/// `aic_` and the base64url of the message and signature.
pub fn encode(key: &ApiKey, signature: &Signature) -> String {
    let mut bytes = (
        key.account,
        U256::from(key.expires),
        U256::from(key.generation),
        U256::from(key.chainId),
    )
        .abi_encode_params();
    bytes.extend_from_slice(&signature.as_bytes());
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(signer: &PrivateKeySigner) -> ApiKey {
        ApiKey {
            account: signer.address(),
            expires: 2_000_000_000,
            generation: 3,
            chainId: 2108,
        }
    }

    #[test]
    fn a_signed_key_decodes_to_its_account_and_checks_against_the_chain() {
        let signer = PrivateKeySigner::random();
        let text = key(&signer).sign(&signer).unwrap();
        assert!(text.starts_with("aic_") && text.len() < 300, "{text}");
        let decoded = ApiKey::decode(&text).unwrap();
        assert_eq!(decoded, key(&signer));
        assert_eq!(decoded.check(2108, 1_900_000_000, 3), Ok(()));
        assert_eq!(
            decoded.check(1, 1_900_000_000, 3),
            Err(KeyError::WrongChain {
                key: 2108,
                expected: 1
            })
        );
        assert_eq!(
            decoded.check(2108, 2_000_000_000, 3),
            Err(KeyError::Expired {
                expired: 2_000_000_000
            })
        );
        assert!(matches!(
            decoded.check(2108, 1_900_000_000, 4),
            Err(KeyError::Revoked {
                key: 3,
                current: 4,
                ..
            })
        ));
    }

    #[test]
    fn forged_tampered_and_garbled_keys_are_refused() {
        let owner = PrivateKeySigner::random();
        let thief = PrivateKeySigner::random();
        // A key naming the owner, signed by someone else.
        let forged = encode(
            &key(&owner),
            &thief.sign_hash_sync(&key(&owner).signing_hash()).unwrap(),
        );
        assert_eq!(
            ApiKey::decode(&forged),
            Err(KeyError::WrongSigner(owner.address()))
        );
        assert!(key(&owner).sign(&thief).is_err());
        // The owner's key with a later expiry written in.
        let mut longer = key(&owner);
        let signature = owner.sign_hash_sync(&longer.signing_hash()).unwrap();
        longer.expires += 1;
        assert_eq!(
            ApiKey::decode(&encode(&longer, &signature)),
            Err(KeyError::WrongSigner(owner.address()))
        );
        for garbled in ["", "sk-abc", "aic_", "aic_!!!", "aic_AAAA"] {
            assert_eq!(
                ApiKey::decode(garbled),
                Err(KeyError::Malformed),
                "{garbled}"
            );
        }
    }

    #[test]
    fn metamask_signs_the_same_typed_data() {
        // The JSON a dApp passes to eth_signTypedData_v4 hashes to what the key is signed over.
        let signer = PrivateKeySigner::random();
        let key = key(&signer);
        let json = serde_json::json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                ],
                "ApiKey": [
                    {"name": "account", "type": "address"},
                    {"name": "expires", "type": "uint64"},
                    {"name": "generation", "type": "uint64"},
                    {"name": "chainId", "type": "uint64"},
                ],
            },
            "primaryType": "ApiKey",
            "domain": {"name": "AICoin API", "version": "1", "chainId": 2108},
            "message": {
                "account": signer.address(),
                "expires": 2_000_000_000u64,
                "generation": 3,
                "chainId": 2108,
            },
        });
        let typed: alloy_dyn_abi::TypedData = serde_json::from_value(json).unwrap();
        assert_eq!(typed.eip712_signing_hash().unwrap(), key.signing_hash());
    }
}
