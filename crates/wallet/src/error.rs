//! Everything that can go wrong with a wallet, worded for the person at the keyboard. No
//! message ever contains a secret (password, phrase, key).

use std::path::PathBuf;

use alloy_primitives::Address;

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("no wallet in {0}: create one with `aicoin wallet new` or `aicoin wallet import`")]
    NoWallet(PathBuf),
    #[error(
        "{0} already holds a wallet; use another --wallet-dir or add accounts with `derive`/`import`"
    )]
    AlreadyExists(PathBuf),
    #[error("wrong password (or the keystore file was altered)")]
    WrongPassword,
    #[error("{path} is not a usable keystore: {reason}")]
    BadKeystore { path: PathBuf, reason: String },
    #[error("the mnemonic must have 12, 15, 18, 21 or 24 words, not {0}")]
    MnemonicWordCount(usize),
    #[error("word {position} of the mnemonic is not in the English BIP-39 word list")]
    MnemonicUnknownWord { position: usize },
    #[error("the mnemonic's checksum does not match: a word is mistyped, missing or out of order")]
    MnemonicChecksum,
    #[error(
        "this wallet was created from a private key or keystore, so it has no mnemonic to derive accounts from"
    )]
    NoMnemonic,
    #[error(
        "not a private key: expected 64 hex characters (32 bytes), optionally with 0x, of a valid secp256k1 key"
    )]
    BadPrivateKey,
    #[error("{0} is already in this wallet")]
    DuplicateAccount(Address),
    #[error("{0} is not an account of this wallet (see `aicoin wallet list`)")]
    UnknownAccount(Address),
    #[error("invalid address {input:?}: {reason}")]
    BadAddress { input: String, reason: &'static str },
    #[error("invalid amount {input:?}: {reason}")]
    BadAmount { input: String, reason: String },
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("the wallet index {path} is corrupt: {reason}")]
    CorruptIndex { path: PathBuf, reason: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl WalletError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
