//! The AICoin wallet: BIP-39 mnemonics and BIP-44 Ethereum accounts, Web3 Secret Storage v3
//! keystores that geth, MetaMask, ethers and eth-account read, exact AIC amounts, checksummed
//! addresses and EIP-681 payment requests. No cryptography is written here: keys, mnemonics and
//! keystores come from alloy-signer-local, coins-bip39 and eth-keystore.
//!
//! Secrets (passwords, phrases, keys) are held in zeroizing buffers, never logged, and written
//! only encrypted, atomically, readable by their owner alone.

mod address;
mod amount;
mod error;
mod fs;
mod keystore;
mod mnemonic;
mod store;
mod uri;

pub use address::parse_address;
pub use amount::{DECIMALS, format_aic, parse_aic};
pub use error::WalletError;
pub use fs::write_private;
pub use keystore::Keystore;
pub use mnemonic::Phrase;
pub use store::{Account, Origin, Wallet};
pub use uri::payment_uri;
