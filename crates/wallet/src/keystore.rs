//! Web3 Secret Storage v3 keystores (the JSON files geth, MetaMask, ethers and eth-account
//! write), encrypted and decrypted by eth-keystore (scrypt + AES-128-CTR + keccak MAC).
//!
//! eth-keystore only reads its own spelling of the format and trusts the file: a short IV or
//! derived-key length makes it panic, and an enormous scrypt `n` makes it allocate without
//! bound. So every keystore is parsed and checked here first (shape, sizes, and a KDF cost that
//! cannot exhaust memory or time), normalized (`Crypto` or `crypto`, hex with or without `0x`),
//! and only then handed to eth-keystore. Written keystores carry the `address` field geth needs.

use std::path::Path;

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::WalletError;

/// Largest scrypt memory a keystore may ask for (128 · r · n bytes): 1 GiB, four times geth's
/// "standard" parameters (n = 2^18, r = 8).
const MAX_SCRYPT_BYTES: u64 = 1 << 30;
/// Most PBKDF2 rounds accepted (geth writes 262,144).
const MAX_PBKDF2_ROUNDS: u64 = 10_000_000;
/// Largest encrypted secret accepted (a key is 32 bytes, a wallet's mnemonic record a few hundred).
const MAX_CIPHERTEXT: usize = 4096;

/// A checked keystore document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keystore {
    /// The document in eth-keystore's spelling.
    normalized: Value,
    /// The `address` field, when the keystore has one.
    pub address: Option<Address>,
}

fn hex_field(value: &Value, name: &str) -> Result<Vec<u8>, String> {
    let text = value
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{name}` is missing or not a string"))?;
    let text = text.strip_prefix("0x").unwrap_or(text);
    hex::decode(text).map_err(|_| format!("`{name}` is not hexadecimal"))
}

fn uint_field(value: &Value, name: &str) -> Result<u64, String> {
    value
        .get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("`{name}` is missing or not a whole number"))
}

/// Checks `doc` and rewrites it the way eth-keystore reads it.
fn normalize(doc: &Value) -> Result<(Value, Option<Address>), String> {
    if doc.get("version").and_then(Value::as_u64) != Some(3) {
        return Err("only version 3 keystores are supported".into());
    }
    let crypto = doc
        .get("crypto")
        .or_else(|| doc.get("Crypto"))
        .ok_or("there is no `crypto` section")?;
    let cipher = crypto.get("cipher").and_then(Value::as_str);
    if cipher != Some("aes-128-ctr") {
        return Err(format!("cipher {cipher:?} is not aes-128-ctr"));
    }
    let iv = hex_field(crypto.get("cipherparams").unwrap_or(&Value::Null), "iv")?;
    if iv.len() != 16 {
        return Err(format!("the IV is {} bytes, not 16", iv.len()));
    }
    let ciphertext = hex_field(crypto, "ciphertext")?;
    if ciphertext.is_empty() || ciphertext.len() > MAX_CIPHERTEXT {
        return Err(format!("the ciphertext is {} bytes", ciphertext.len()));
    }
    let mac = hex_field(crypto, "mac")?;
    if mac.len() != 32 {
        return Err(format!("the MAC is {} bytes, not 32", mac.len()));
    }
    let params = crypto.get("kdfparams").ok_or("there are no `kdfparams`")?;
    let salt = hex_field(params, "salt")?;
    if uint_field(params, "dklen")? != 32 {
        return Err("the derived key length `dklen` must be 32".into());
    }
    let kdf = crypto
        .get("kdf")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kdfparams = match kdf {
        "scrypt" => {
            let (n, r, p) = (
                uint_field(params, "n")?,
                uint_field(params, "r")?,
                uint_field(params, "p")?,
            );
            if !n.is_power_of_two() || n < 2 || r == 0 || p == 0 || p > 16 {
                return Err(format!("scrypt parameters n={n} r={r} p={p} are not valid"));
            }
            if 128u64.saturating_mul(r).saturating_mul(n) > MAX_SCRYPT_BYTES {
                return Err(format!(
                    "scrypt parameters n={n} r={r} need more than 1 GiB of memory"
                ));
            }
            json!({ "dklen": 32, "n": n, "r": r, "p": p, "salt": hex::encode(&salt) })
        }
        "pbkdf2" => {
            let c = uint_field(params, "c")?;
            if c == 0 || c > MAX_PBKDF2_ROUNDS {
                return Err(format!("pbkdf2 round count {c} is out of range"));
            }
            if params.get("prf").and_then(Value::as_str) != Some("hmac-sha256") {
                return Err("pbkdf2 must use prf hmac-sha256".into());
            }
            json!({ "c": c, "dklen": 32, "prf": "hmac-sha256", "salt": hex::encode(&salt) })
        }
        other => return Err(format!("kdf {other:?} is neither scrypt nor pbkdf2")),
    };
    let address = match doc.get("address").and_then(Value::as_str) {
        Some(text) => {
            let text = text.strip_prefix("0x").unwrap_or(text);
            Some(
                format!("0x{text}")
                    .parse::<Address>()
                    .map_err(|_| "`address` is not an address")?,
            )
        }
        None => None,
    };
    let normalized = json!({
        "crypto": {
            "cipher": "aes-128-ctr",
            "cipherparams": { "iv": hex::encode(&iv) },
            "ciphertext": hex::encode(&ciphertext),
            "kdf": kdf,
            "kdfparams": kdfparams,
            "mac": hex::encode(&mac),
        },
        // eth-keystore wants a UUID; the id identifies nothing cryptographically.
        "id": doc.get("id").and_then(Value::as_str).filter(|id| id.len() == 36).unwrap_or("00000000-0000-4000-8000-000000000000"),
        "version": 3,
    });
    Ok((normalized, address))
}

/// A private scratch directory for eth-keystore's file-based API; only ciphertext passes
/// through it.
fn scratch() -> Result<tempfile::TempDir, WalletError> {
    tempfile::Builder::new()
        .prefix("aicoin-keystore-")
        .tempdir()
        .map_err(WalletError::io("create", std::env::temp_dir()))
}

impl Keystore {
    /// Parses and checks a keystore document; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, WalletError> {
        let bad = |reason: String| WalletError::BadKeystore {
            path: origin.to_path_buf(),
            reason,
        };
        let doc: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let (normalized, address) = normalize(&doc).map_err(bad)?;
        Ok(Self {
            normalized,
            address,
        })
    }

    pub fn read(path: &Path) -> Result<Self, WalletError> {
        let text = std::fs::read_to_string(path).map_err(WalletError::io("read", path))?;
        Self::parse(&text, path)
    }

    /// Encrypts `secret` under `password` (eth-keystore's scrypt: n = 2^13, r = 8, p = 1), with
    /// `address` recorded when the secret is that address's key.
    pub fn encrypt(
        secret: &[u8],
        password: &str,
        address: Option<Address>,
    ) -> Result<Self, WalletError> {
        let dir = scratch()?;
        eth_keystore::encrypt_key(
            dir.path(),
            &mut rand08::thread_rng(),
            secret,
            password,
            Some("k"),
        )
        .map_err(|e| WalletError::Signing(format!("encryption failed: {e}")))?;
        let path = dir.path().join("k");
        let text = std::fs::read_to_string(&path).map_err(WalletError::io("read", &path))?;
        let mut keystore = Self::parse(&text, &path)?;
        keystore.address = address;
        Ok(keystore)
    }

    /// Encrypts a signer's key, with its address.
    pub fn encrypt_key(signer: &PrivateKeySigner, password: &str) -> Result<Self, WalletError> {
        let key = Zeroizing::new(signer.to_bytes().0);
        Self::encrypt(key.as_slice(), password, Some(signer.address()))
    }

    /// The secret, if `password` is right.
    pub fn decrypt(&self, password: &str) -> Result<Zeroizing<Vec<u8>>, WalletError> {
        let dir = scratch()?;
        let path = dir.path().join("k");
        std::fs::write(&path, self.normalized.to_string())
            .map_err(WalletError::io("write", &path))?;
        match eth_keystore::decrypt_key(&path, password) {
            Ok(secret) => Ok(Zeroizing::new(secret)),
            Err(eth_keystore::KeystoreError::MacMismatch) => Err(WalletError::WrongPassword),
            Err(e) => Err(WalletError::BadKeystore {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// The private key, if `password` is right and the key matches the recorded address.
    pub fn decrypt_key(
        &self,
        password: &str,
        origin: &Path,
    ) -> Result<PrivateKeySigner, WalletError> {
        let secret = self.decrypt(password)?;
        let signer =
            PrivateKeySigner::from_slice(&secret).map_err(|_| WalletError::BadKeystore {
                path: origin.to_path_buf(),
                reason: "the decrypted secret is not a secp256k1 private key".into(),
            })?;
        if let Some(address) = self.address
            && address != signer.address()
        {
            return Err(WalletError::BadKeystore {
                path: origin.to_path_buf(),
                reason: format!(
                    "it claims address {address} but holds the key of {}",
                    signer.address()
                ),
            });
        }
        Ok(signer)
    }

    /// The document as written to disk: geth's layout, `address` without `0x`.
    pub fn to_json(&self) -> String {
        let mut doc = self.normalized.clone();
        if let Some(address) = self.address {
            doc["address"] = Value::String(hex::encode(address));
        }
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> &'static Path {
        Path::new("test.json")
    }

    #[test]
    fn keys_round_trip_and_wrong_passwords_fail() {
        let signer = PrivateKeySigner::random();
        let keystore = Keystore::encrypt_key(&signer, "correct horse").unwrap();
        let back = Keystore::parse(&keystore.to_json(), origin()).unwrap();
        assert_eq!(back.address, Some(signer.address()));
        assert_eq!(
            back.decrypt_key("correct horse", origin())
                .unwrap()
                .address(),
            signer.address()
        );
        assert!(matches!(
            back.decrypt_key("wrong", origin()),
            Err(WalletError::WrongPassword)
        ));
        assert!(keystore.to_json().contains(&hex::encode(signer.address())));
    }

    /// The PBKDF2 test vector of the Web3 Secret Storage definition (password "testpassword").
    #[test]
    fn reads_the_specs_pbkdf2_vector() {
        let text = r#"{
            "crypto": {
                "cipher": "aes-128-ctr",
                "cipherparams": { "iv": "6087dab2f9fdbbfaddc31a909735c1e6" },
                "ciphertext": "5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46",
                "kdf": "pbkdf2",
                "kdfparams": { "c": 262144, "dklen": 32, "prf": "hmac-sha256", "salt": "ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd" },
                "mac": "517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"
            },
            "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
            "version": 3
        }"#;
        let keystore = Keystore::parse(text, origin()).unwrap();
        let key = keystore.decrypt("testpassword").unwrap();
        assert_eq!(
            hex::encode(key.as_slice()),
            "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d"
        );
    }

    #[test]
    fn hostile_or_broken_files_are_refused_before_decryption() {
        let good: Value =
            serde_json::from_str(&Keystore::encrypt(b"secret", "pw", None).unwrap().to_json())
                .unwrap();
        let with = |path: &[&str], value: Value| {
            let mut doc = good.clone();
            let mut node = &mut doc;
            for key in &path[..path.len() - 1] {
                node = &mut node[*key];
            }
            node[path[path.len() - 1]] = value;
            doc.to_string()
        };
        let cases = [
            ("not json", "{".to_string()),
            (
                "short iv",
                with(&["crypto", "cipherparams", "iv"], json!("00")),
            ),
            ("dklen", with(&["crypto", "kdfparams", "dklen"], json!(16))),
            (
                "huge n",
                with(&["crypto", "kdfparams", "n"], json!(1u64 << 30)),
            ),
            (
                "n not a power of two",
                with(&["crypto", "kdfparams", "n"], json!(1000)),
            ),
            ("cipher", with(&["crypto", "cipher"], json!("aes-256-gcm"))),
            ("mac", with(&["crypto", "mac"], json!("abcd"))),
            ("version", with(&["version"], json!(1))),
            ("kdf", with(&["crypto", "kdf"], json!("argon2"))),
        ];
        for (what, text) in cases {
            assert!(
                matches!(
                    Keystore::parse(&text, origin()),
                    Err(WalletError::BadKeystore { .. })
                ),
                "{what} accepted"
            );
        }
    }
}
