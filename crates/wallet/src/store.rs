//! A wallet directory: one encrypted keystore per account under `keystore/` (named as geth
//! names them, so geth's `--keystore` can point at it), the encrypted mnemonic when the wallet
//! came from one (so more accounts can be derived later), and `wallet.json`, an index with no
//! secrets. One password encrypts everything in a wallet; every change is written atomically.

use std::path::{Path, PathBuf};

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{
    Keystore, Phrase, WalletError,
    fs::{private_dir, write_private},
};

const INDEX_FILE: &str = "wallet.json";
const MNEMONIC_FILE: &str = "mnemonic.json";
const KEYSTORE_DIR: &str = "keystore";

/// Where an account's key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Origin {
    /// Derived from the wallet's mnemonic at `m/44'/60'/0'/0/index`.
    Mnemonic {
        index: u32,
    },
    PrivateKey,
    Keystore,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub address: Address,
    pub origin: Origin,
    /// The keystore's file name under `keystore/`.
    pub file: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    version: u32,
    accounts: Vec<Account>,
    /// Whether `mnemonic.json` holds the wallet's phrase.
    has_mnemonic: bool,
}

/// The secret the mnemonic keystore holds.
#[derive(Serialize, Deserialize)]
struct MnemonicRecord {
    phrase: String,
    passphrase: String,
}

/// An open wallet directory.
#[derive(Debug)]
pub struct Wallet {
    dir: PathBuf,
    index: Index,
}

/// `UTC--2026-11-25T09-30-00.000000000Z--<address>`, geth's keystore file name.
fn geth_file_name(address: &Address) -> String {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%S%.9fZ");
    format!("UTC--{now}--{}", hex::encode(address))
}

impl Wallet {
    pub fn exists(dir: &Path) -> bool {
        dir.join(INDEX_FILE).exists()
    }

    pub fn open(dir: &Path) -> Result<Self, WalletError> {
        let path = dir.join(INDEX_FILE);
        if !path.exists() {
            return Err(WalletError::NoWallet(dir.to_path_buf()));
        }
        let text = std::fs::read_to_string(&path).map_err(WalletError::io("read", &path))?;
        let index: Index = serde_json::from_str(&text).map_err(|e| WalletError::CorruptIndex {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
        })
    }

    /// A new wallet from `phrase` (and its optional BIP-39 passphrase), holding account
    /// `index` (`m/44'/60'/0'/0/index`; 0 for a new wallet).
    pub fn create_from_mnemonic(
        dir: &Path,
        phrase: &Phrase,
        passphrase: Option<&str>,
        index: u32,
        password: &str,
    ) -> Result<Self, WalletError> {
        let mut wallet = Self::create(dir)?;
        let record = Zeroizing::new(
            serde_json::to_vec(&MnemonicRecord {
                phrase: phrase.as_str().to_string(),
                passphrase: passphrase.unwrap_or_default().to_string(),
            })
            .map_err(|e| WalletError::Signing(e.to_string()))?,
        );
        let keystore = Keystore::encrypt(&record, password, None)?;
        write_private(&dir.join(MNEMONIC_FILE), keystore.to_json().as_bytes())?;
        wallet.index.has_mnemonic = true;
        let signer = phrase.account(passphrase, index)?;
        wallet.add(&signer, Origin::Mnemonic { index }, password)?;
        Ok(wallet)
    }

    /// A new wallet holding one account whose key came from elsewhere.
    pub fn create_from_key(
        dir: &Path,
        signer: &PrivateKeySigner,
        origin: Origin,
        password: &str,
    ) -> Result<Self, WalletError> {
        let mut wallet = Self::create(dir)?;
        wallet.add(signer, origin, password)?;
        Ok(wallet)
    }

    fn create(dir: &Path) -> Result<Self, WalletError> {
        if Self::exists(dir) {
            return Err(WalletError::AlreadyExists(dir.to_path_buf()));
        }
        private_dir(dir)?;
        private_dir(&dir.join(KEYSTORE_DIR))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            index: Index {
                version: 1,
                ..Default::default()
            },
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn accounts(&self) -> &[Account] {
        &self.index.accounts
    }

    /// The first account: what commands use when no `--from`/`--address` is given.
    pub fn default_account(&self) -> Result<&Account, WalletError> {
        self.index
            .accounts
            .first()
            .ok_or_else(|| WalletError::NoWallet(self.dir.clone()))
    }

    pub fn account(&self, address: &Address) -> Result<&Account, WalletError> {
        self.index
            .accounts
            .iter()
            .find(|a| a.address == *address)
            .ok_or(WalletError::UnknownAccount(*address))
    }

    pub fn keystore_path(&self, account: &Account) -> PathBuf {
        self.dir.join(KEYSTORE_DIR).join(&account.file)
    }

    /// Checks `password` against the wallet (every secret in it is under the same password).
    pub fn check_password(&self, password: &str) -> Result<(), WalletError> {
        match self.index.accounts.first() {
            Some(account) => self.signer(&account.address, password).map(drop),
            None => Ok(()),
        }
    }

    /// Stores `signer` as a new account, encrypted under the wallet's password.
    pub fn add(
        &mut self,
        signer: &PrivateKeySigner,
        origin: Origin,
        password: &str,
    ) -> Result<Account, WalletError> {
        let address = signer.address();
        if self.index.accounts.iter().any(|a| a.address == address) {
            return Err(WalletError::DuplicateAccount(address));
        }
        self.check_password(password)?;
        let account = Account {
            address,
            origin,
            file: geth_file_name(&address),
        };
        let keystore = Keystore::encrypt_key(signer, password)?;
        write_private(&self.keystore_path(&account), keystore.to_json().as_bytes())?;
        self.index.accounts.push(account.clone());
        self.save()?;
        Ok(account)
    }

    /// Derives account `index` from the wallet's mnemonic and stores it.
    pub fn derive(&mut self, index: u32, password: &str) -> Result<Account, WalletError> {
        let (phrase, passphrase) = self.mnemonic(password)?;
        let signer = phrase.account(Some(&passphrase), index)?;
        self.add(&signer, Origin::Mnemonic { index }, password)
    }

    /// The wallet's phrase and BIP-39 passphrase.
    pub fn mnemonic(&self, password: &str) -> Result<(Phrase, Zeroizing<String>), WalletError> {
        if !self.index.has_mnemonic {
            return Err(WalletError::NoMnemonic);
        }
        let path = self.dir.join(MNEMONIC_FILE);
        let secret = Keystore::read(&path)?.decrypt(password)?;
        let record: MnemonicRecord =
            serde_json::from_slice(&secret).map_err(|_| WalletError::BadKeystore {
                path: path.clone(),
                reason: "the decrypted record is not a mnemonic".into(),
            })?;
        let MnemonicRecord { phrase, passphrase } = record;
        let (phrase, passphrase) = (Zeroizing::new(phrase), Zeroizing::new(passphrase));
        Ok((Phrase::parse(&phrase)?, passphrase))
    }

    /// The key of `address`, decrypted with `password`.
    pub fn signer(
        &self,
        address: &Address,
        password: &str,
    ) -> Result<PrivateKeySigner, WalletError> {
        let path = self.keystore_path(self.account(address)?);
        Keystore::read(&path)?.decrypt_key(password, &path)
    }

    fn save(&self) -> Result<(), WalletError> {
        let json =
            serde_json::to_vec_pretty(&self.index).map_err(|e| WalletError::CorruptIndex {
                path: self.dir.join(INDEX_FILE),
                reason: e.to_string(),
            })?;
        write_private(&self.dir.join(INDEX_FILE), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUNK: &str = "test test test test test test test test test test test junk";

    #[test]
    fn mnemonic_wallet_derives_more_accounts_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet");
        let phrase = Phrase::parse(JUNK).unwrap();
        let wallet = Wallet::create_from_mnemonic(&path, &phrase, None, 0, "pw").unwrap();
        assert_eq!(
            wallet.default_account().unwrap().address.to_checksum(None),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        drop(wallet);

        let mut wallet = Wallet::open(&path).unwrap();
        let second = wallet.derive(1, "pw").unwrap();
        assert_eq!(
            second.address.to_checksum(None),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
        assert!(matches!(
            wallet.derive(2, "nope"),
            Err(WalletError::WrongPassword)
        ));
        assert!(matches!(
            wallet.derive(1, "pw"),
            Err(WalletError::DuplicateAccount(_))
        ));
        let reopened = Wallet::open(&path).unwrap();
        assert_eq!(reopened.accounts().len(), 2);
        let signer = reopened.signer(&second.address, "pw").unwrap();
        assert_eq!(signer.address(), second.address);
        let (back, passphrase) = reopened.mnemonic("pw").unwrap();
        assert_eq!(back.as_str(), JUNK);
        assert!(passphrase.is_empty());
        assert!(matches!(
            Wallet::create_from_mnemonic(&path, &phrase, None, 0, "pw"),
            Err(WalletError::AlreadyExists(_))
        ));
        // geth's file naming: UTC--<time>--<address without 0x>.
        let file = &reopened.accounts()[0].file;
        assert!(
            file.starts_with("UTC--20")
                && file.ends_with("f39fd6e51aad88f6f4ce6ab8827279cfffb92266"),
            "{file}"
        );
    }

    #[test]
    fn key_wallets_have_no_mnemonic() {
        let dir = tempfile::tempdir().unwrap();
        let signer = PrivateKeySigner::random();
        let mut wallet =
            Wallet::create_from_key(dir.path(), &signer, Origin::PrivateKey, "pw").unwrap();
        assert!(matches!(
            wallet.derive(1, "pw"),
            Err(WalletError::NoMnemonic)
        ));
        // A second key must be added under the same password.
        let other = PrivateKeySigner::random();
        assert!(matches!(
            wallet.add(&other, Origin::PrivateKey, "different"),
            Err(WalletError::WrongPassword)
        ));
        wallet.add(&other, Origin::PrivateKey, "pw").unwrap();
        assert_eq!(wallet.accounts().len(), 2);
    }

    #[test]
    fn file_names_carry_the_date() {
        let name = geth_file_name(&Address::ZERO);
        let year: i32 = name[5..9].parse().unwrap();
        assert!((2024..2100).contains(&year), "{name}");
        assert_eq!(
            name.len(),
            "UTC--2026-11-25T09-30-00.000000000Z--".len() + 40
        );
    }
}
