//! Web3 Secret Storage v3 keystores (the JSON files geth, MetaMask, ethers and eth-account
//! write): scrypt or PBKDF2-HMAC-SHA256 stretches the password, AES-128-CTR encrypts the
//! secret, keccak-256 over the derived key's second half and the ciphertext is the MAC.
//!
//! A keystore file is untrusted input: every one is parsed and checked first (shape, sizes, and
//! a KDF cost that cannot exhaust memory or time; `Crypto` or `crypto`, hex with or without
//! `0x`). New keystores use geth's standard scrypt cost, n = 2^18, r = 8, p = 1 (256 MiB and
//! about a second per unlock, which is the point: a stolen file resists guessing 32 times
//! longer than at eth-keystore's fixed 2^13, which this module used to call). Written keystores
//! carry the `address` field geth needs.

use std::path::Path;

use aes::cipher::{KeyIvInit, StreamCipher};
use alloy_primitives::{Address, keccak256};
use alloy_signer_local::PrivateKeySigner;
use serde_json::{Value, json};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::WalletError;

/// Largest scrypt memory a keystore may ask for (128 · r · n bytes): 1 GiB, four times geth's
/// "standard" parameters (n = 2^18, r = 8).
const MAX_SCRYPT_BYTES: u64 = 1 << 30;
/// Most PBKDF2 rounds accepted (geth writes 262,144).
const MAX_PBKDF2_ROUNDS: u64 = 10_000_000;
/// Largest encrypted secret accepted (a key is 32 bytes, a wallet's mnemonic record a few hundred).
const MAX_CIPHERTEXT: usize = 4096;
/// Largest salt accepted (geth and eth-keystore write 32 bytes).
const MAX_SALT: usize = 1024;
/// The scrypt cost of new keystores: geth's `StandardScryptN` (2^18), r = 8, p = 1.
const SCRYPT_LOG_N: u8 = 18;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// How the password is stretched into the 32-byte derived key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kdf {
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
        salt: Vec<u8>,
    },
    Pbkdf2 {
        rounds: u32,
        salt: Vec<u8>,
    },
}

impl Kdf {
    fn derive(&self, password: &str) -> Result<Zeroizing<[u8; 32]>, WalletError> {
        let mut key = Zeroizing::new([0u8; 32]);
        match self {
            Self::Scrypt { log_n, r, p, salt } => {
                let params = scrypt::Params::new(*log_n, *r, *p)
                    .map_err(|e| WalletError::Signing(format!("scrypt parameters: {e}")))?;
                scrypt::scrypt(password.as_bytes(), salt, &params, key.as_mut_slice())
                    .map_err(|e| WalletError::Signing(format!("scrypt: {e}")))?;
            }
            Self::Pbkdf2 { rounds, salt } => pbkdf2::pbkdf2_hmac::<Sha256>(
                password.as_bytes(),
                salt,
                *rounds,
                key.as_mut_slice(),
            ),
        }
        Ok(key)
    }

    fn to_json(&self) -> (&'static str, Value) {
        match self {
            Self::Scrypt { log_n, r, p, salt } => (
                "scrypt",
                json!({ "dklen": 32, "n": 1u64 << log_n, "r": r, "p": p, "salt": hex::encode(salt) }),
            ),
            Self::Pbkdf2 { rounds, salt } => (
                "pbkdf2",
                json!({ "c": rounds, "dklen": 32, "prf": "hmac-sha256", "salt": hex::encode(salt) }),
            ),
        }
    }
}

/// A checked keystore document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keystore {
    kdf: Kdf,
    iv: [u8; 16],
    ciphertext: Vec<u8>,
    mac: [u8; 32],
    id: String,
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

/// The MAC of Web3 Secret Storage: keccak-256 of the derived key's second half and the
/// ciphertext.
fn mac(key: &[u8; 32], ciphertext: &[u8]) -> [u8; 32] {
    let mut input = Zeroizing::new(Vec::with_capacity(16 + ciphertext.len()));
    input.extend_from_slice(&key[16..]);
    input.extend_from_slice(ciphertext);
    keccak256(input.as_slice()).0
}

/// Checks `doc` and reads it into a [`Keystore`].
fn parse_document(doc: &Value) -> Result<Keystore, String> {
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
    let iv: [u8; 16] = iv
        .as_slice()
        .try_into()
        .map_err(|_| format!("the IV is {} bytes, not 16", iv.len()))?;
    let ciphertext = hex_field(crypto, "ciphertext")?;
    if ciphertext.is_empty() || ciphertext.len() > MAX_CIPHERTEXT {
        return Err(format!("the ciphertext is {} bytes", ciphertext.len()));
    }
    let mac = hex_field(crypto, "mac")?;
    let mac: [u8; 32] = mac
        .as_slice()
        .try_into()
        .map_err(|_| format!("the MAC is {} bytes, not 32", mac.len()))?;
    let params = crypto.get("kdfparams").ok_or("there are no `kdfparams`")?;
    let salt = hex_field(params, "salt")?;
    if salt.len() > MAX_SALT {
        return Err(format!("the salt is {} bytes", salt.len()));
    }
    if uint_field(params, "dklen")? != 32 {
        return Err("the derived key length `dklen` must be 32".into());
    }
    let kdf = match crypto.get("kdf").and_then(Value::as_str) {
        Some("scrypt") => {
            let (n, r, p) = (
                uint_field(params, "n")?,
                uint_field(params, "r")?,
                uint_field(params, "p")?,
            );
            if !n.is_power_of_two() || n < 2 || r == 0 || p == 0 || p > 16 {
                return Err(format!("scrypt parameters n={n} r={r} p={p} are not valid"));
            }
            // RFC 7914's bound, which the scrypt crate enforces (and which the Web3 Secret
            // Storage definition's own scrypt vector, n = 2^18 with r = 1, breaks).
            if u64::from(n.trailing_zeros()) >= r.saturating_mul(16) {
                return Err(format!(
                    "scrypt parameters n={n} r={r} break RFC 7914's n < 2^(16 r)"
                ));
            }
            if 128u64.saturating_mul(r).saturating_mul(n) > MAX_SCRYPT_BYTES {
                return Err(format!(
                    "scrypt parameters n={n} r={r} need more than 1 GiB of memory"
                ));
            }
            // In range: n is a power of two below 2^23 and r below 2^23 by the memory cap.
            Kdf::Scrypt {
                log_n: n.trailing_zeros() as u8,
                r: r as u32,
                p: p as u32,
                salt,
            }
        }
        Some("pbkdf2") => {
            let c = uint_field(params, "c")?;
            if c == 0 || c > MAX_PBKDF2_ROUNDS {
                return Err(format!("pbkdf2 round count {c} is out of range"));
            }
            if params.get("prf").and_then(Value::as_str) != Some("hmac-sha256") {
                return Err("pbkdf2 must use prf hmac-sha256".into());
            }
            Kdf::Pbkdf2 {
                rounds: c as u32,
                salt,
            }
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
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| uuid::Uuid::try_parse(id).ok())
        .unwrap_or_else(new_id)
        .to_string();
    Ok(Keystore {
        kdf,
        iv,
        ciphertext,
        mac,
        id,
        address,
    })
}

/// A random (version 4) UUID, the `id` geth writes; it identifies nothing cryptographically.
fn new_id() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

impl Keystore {
    /// Parses and checks a keystore document; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, WalletError> {
        let bad = |reason: String| WalletError::BadKeystore {
            path: origin.to_path_buf(),
            reason,
        };
        let doc: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        parse_document(&doc).map_err(bad)
    }

    pub fn read(path: &Path) -> Result<Self, WalletError> {
        let text = std::fs::read_to_string(path).map_err(WalletError::io("read", path))?;
        Self::parse(&text, path)
    }

    /// Encrypts `secret` under `password` at geth's standard scrypt cost, with `address`
    /// recorded when the secret is that address's key.
    pub fn encrypt(
        secret: &[u8],
        password: &str,
        address: Option<Address>,
    ) -> Result<Self, WalletError> {
        Self::encrypt_with(
            Kdf::Scrypt {
                log_n: SCRYPT_LOG_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
                salt: rand::random::<[u8; 32]>().to_vec(),
            },
            secret,
            password,
            address,
        )
    }

    fn encrypt_with(
        kdf: Kdf,
        secret: &[u8],
        password: &str,
        address: Option<Address>,
    ) -> Result<Self, WalletError> {
        let key = kdf.derive(password)?;
        let iv: [u8; 16] = rand::random();
        let mut ciphertext = secret.to_vec();
        Aes128Ctr::new(key[..16].into(), &iv.into()).apply_keystream(&mut ciphertext);
        Ok(Self {
            mac: mac(&key, &ciphertext),
            kdf,
            iv,
            ciphertext,
            id: new_id().to_string(),
            address,
        })
    }

    /// Encrypts a signer's key, with its address.
    pub fn encrypt_key(signer: &PrivateKeySigner, password: &str) -> Result<Self, WalletError> {
        let key = Zeroizing::new(signer.to_bytes().0);
        Self::encrypt(key.as_slice(), password, Some(signer.address()))
    }

    /// The secret, if `password` is right.
    pub fn decrypt(&self, password: &str) -> Result<Zeroizing<Vec<u8>>, WalletError> {
        let key = self.kdf.derive(password)?;
        // Not a secret comparison: the MAC is in the file, and a guess costs a KDF run.
        if mac(&key, &self.ciphertext) != self.mac {
            return Err(WalletError::WrongPassword);
        }
        let mut secret = Zeroizing::new(self.ciphertext.clone());
        Aes128Ctr::new(key[..16].into(), &self.iv.into()).apply_keystream(&mut secret);
        Ok(secret)
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
        let (kdf, kdfparams) = self.kdf.to_json();
        let mut doc = json!({
            "crypto": {
                "cipher": "aes-128-ctr",
                "cipherparams": { "iv": hex::encode(self.iv) },
                "ciphertext": hex::encode(&self.ciphertext),
                "kdf": kdf,
                "kdfparams": kdfparams,
                "mac": hex::encode(self.mac),
            },
            "id": self.id,
            "version": 3,
        });
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

    #[test]
    fn new_keystores_cost_what_geths_standard_does() {
        let keystore = Keystore::encrypt(b"secret", "pw", None).unwrap();
        let doc: Value = serde_json::from_str(&keystore.to_json()).unwrap();
        let params = &doc["crypto"]["kdfparams"];
        assert_eq!(doc["crypto"]["kdf"], "scrypt");
        assert_eq!(
            (&params["n"], &params["r"], &params["p"], &params["dklen"]),
            (&json!(1 << 18), &json!(8), &json!(1), &json!(32))
        );
        assert_eq!(hex_field(params, "salt").unwrap().len(), 32);
        assert!(uuid::Uuid::try_parse(doc["id"].as_str().unwrap()).is_ok());
        let again = Keystore::parse(&keystore.to_json(), origin()).unwrap();
        assert_eq!(again, keystore);
        assert_eq!(again.decrypt("pw").unwrap().as_slice(), b"secret");
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
                "n too large for r",
                with(&["crypto", "kdfparams", "r"], json!(1)),
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
