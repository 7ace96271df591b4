//! `aicoin wallet`: create or import a wallet, derive and list accounts, export keystores,
//! check balances, send AIC, and sign or verify messages. Every command is scriptable: `--json`
//! output, and secrets from files or `AICOIN_WALLET_*` variables instead of prompts.

pub mod chain;
mod secrets;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use aicoin_wallet::{
    Keystore, Origin, Phrase, Wallet, format_aic, parse_address, parse_aic, write_private,
};
use alloy_primitives::{Address, Signature};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use clap::{Args, Subcommand};
use eyre::{WrapErr, bail};
use serde_json::json;
use zeroize::Zeroizing;

use chain::{DEFAULT_RPC_URL, Node, quantity};
use secrets::PASSWORD_ENV;

/// Where the wallet lives and how output is printed; shared by every wallet command.
#[derive(Debug, Clone, Args)]
pub struct WalletDir {
    /// Wallet directory [default: <data dir>/wallet].
    #[arg(long, env = "AICOIN_WALLET_DIR", global = true)]
    wallet_dir: Option<PathBuf>,
    /// Data directory whose `wallet/` to use [default: the node's default for chain 2108].
    #[arg(long, env = "AICOIN_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// File holding the wallet password (otherwise AICOIN_WALLET_PASSWORD, or a prompt).
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

impl WalletDir {
    pub fn path(&self) -> PathBuf {
        self.wallet_dir.clone().unwrap_or_else(|| {
            self.data_dir
                .clone()
                .unwrap_or_else(|| {
                    aicoin_node::default_data_dir(aicoin_primitives::AICOIN_CHAIN_ID, false)
                })
                .join("wallet")
        })
    }

    pub fn open(&self) -> eyre::Result<Wallet> {
        Ok(Wallet::open(&self.path())?)
    }

    pub fn password(&self) -> eyre::Result<Zeroizing<String>> {
        secrets::password(
            self.password_file.as_deref(),
            PASSWORD_ENV,
            "Wallet password",
        )
    }

    /// The password for a wallet about to be created, or the existing one's.
    fn password_for(&self, creating: bool) -> eyre::Result<Zeroizing<String>> {
        match creating {
            true => secrets::new_password(self.password_file.as_deref()),
            false => self.password(),
        }
    }

    /// `address`, or the wallet's default account.
    pub fn address_or_default(&self, address: Option<&str>) -> eyre::Result<Address> {
        match address {
            Some(text) => Ok(parse_address(text)?),
            None => Ok(self.open()?.default_account()?.address),
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as JSON under `--json`, else the text.
    pub fn print(&self, value: serde_json::Value, text: impl FnOnce() -> String) {
        match self.json {
            true => println!("{value}"),
            false => println!("{}", text()),
        }
    }
}

#[derive(Debug, Args)]
pub struct WalletArgs {
    #[command(flatten)]
    dir: WalletDir,
    #[command(subcommand)]
    command: WalletCommand,
}

#[derive(Debug, Clone, Args)]
pub struct RpcUrl {
    /// The node to talk to.
    #[arg(long, env = "AICOIN_RPC_URL", default_value = DEFAULT_RPC_URL)]
    pub rpc_url: String,
}

#[derive(Debug, Subcommand)]
enum WalletCommand {
    /// Create a wallet from a new mnemonic (printed once: write it down) and store account 0.
    New {
        /// Mnemonic length.
        #[arg(long, default_value_t = 12, value_parser = word_count)]
        words: usize,
        /// File holding a BIP-39 passphrase (the "25th word"; AICOIN_WALLET_BIP39_PASSPHRASE too).
        #[arg(long)]
        bip39_passphrase_file: Option<PathBuf>,
    },
    /// Import a mnemonic, a private key or a keystore file.
    Import {
        /// The phrase (prompted for if given without a value; AICOIN_WALLET_MNEMONIC too).
        #[arg(long, num_args = 0..=1, default_missing_value = "", group = "source")]
        mnemonic: Option<String>,
        /// Account index of the mnemonic to store first.
        #[arg(long, default_value_t = 0, requires = "mnemonic")]
        index: u32,
        /// File holding the mnemonic's BIP-39 passphrase (AICOIN_WALLET_BIP39_PASSPHRASE too).
        #[arg(long, requires = "mnemonic")]
        bip39_passphrase_file: Option<PathBuf>,
        /// The key in hex (prompted for if given without a value; AICOIN_WALLET_PRIVATE_KEY too).
        #[arg(long, num_args = 0..=1, default_missing_value = "", group = "source")]
        private_key: Option<String>,
        /// A Web3 Secret Storage v3 keystore file (geth, MetaMask, ethers, eth-account).
        #[arg(long, group = "source")]
        keystore: Option<PathBuf>,
        /// File holding the keystore's password [default: the wallet password].
        #[arg(long, requires = "keystore")]
        keystore_password_file: Option<PathBuf>,
    },
    /// List the wallet's accounts.
    List,
    /// Derive account N of the wallet's mnemonic and store it.
    Derive {
        #[arg(long)]
        index: u32,
    },
    /// Print the default account's address.
    Address,
    /// Write an account's keystore (encrypted with the wallet password) to a file or stdout.
    Export {
        /// Export as a keystore file (the only format: private keys never leave encrypted).
        #[arg(long, required = true)]
        keystore: bool,
        /// The account [default: the default account].
        #[arg(long)]
        address: Option<String>,
        /// Where to write it [default: stdout].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show an address's balance.
    Balance {
        /// [default: the default account]
        #[arg(long)]
        address: Option<String>,
        #[command(flatten)]
        rpc: RpcUrl,
    },
    /// Send AIC (zero fees) and wait for the receipt.
    Send {
        #[arg(long)]
        to: String,
        /// Amount in AIC, e.g. 10.5 (up to 18 decimals).
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Sending account [default: the default account].
        #[arg(long)]
        from: Option<String>,
        /// Seconds to wait for the receipt.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// The chain the node must be on: the signature is only valid there, so a wrong
        /// --rpc-url cannot spend on another network.
        #[arg(long, env = "AICOIN_CHAIN_ID", default_value_t = aicoin_primitives::AICOIN_CHAIN_ID)]
        chain_id: u64,
        #[command(flatten)]
        rpc: RpcUrl,
    },
    /// Sign a message (EIP-191 personal_sign).
    SignMessage {
        message: String,
        /// [default: the default account]
        #[arg(long)]
        address: Option<String>,
    },
    /// Check that a signature of a message was made by an address (exit 1 if not).
    VerifyMessage {
        message: String,
        #[arg(long)]
        address: String,
        #[arg(long)]
        signature: String,
    },
}

fn word_count(text: &str) -> Result<usize, String> {
    match text {
        "12" => Ok(12),
        "24" => Ok(24),
        _ => Err("a new mnemonic has 12 or 24 words".into()),
    }
}

fn origin_text(origin: Origin) -> String {
    match origin {
        Origin::Mnemonic { index } => format!("mnemonic m/44'/60'/0'/0/{index}"),
        Origin::PrivateKey => "imported private key".into(),
        Origin::Keystore => "imported keystore".into(),
    }
}

fn bip39_passphrase(file: Option<&Path>) -> eyre::Result<Option<Zeroizing<String>>> {
    const ENV: &str = "AICOIN_WALLET_BIP39_PASSPHRASE";
    match (file, std::env::var(ENV)) {
        (Some(path), _) => Ok(Some(secrets::password(
            Some(path),
            ENV,
            "BIP-39 passphrase",
        )?)),
        (None, Ok(value)) => Ok(Some(Zeroizing::new(value))),
        (None, Err(_)) => Ok(None),
    }
}

pub async fn run(args: WalletArgs) -> eyre::Result<()> {
    let dir = &args.dir;
    match args.command {
        WalletCommand::New {
            words,
            bip39_passphrase_file,
        } => {
            let path = dir.path();
            if Wallet::exists(&path) {
                bail!(aicoin_wallet::WalletError::AlreadyExists(path));
            }
            let passphrase = bip39_passphrase(bip39_passphrase_file.as_deref())?;
            let password = dir.password_for(true)?;
            let phrase = Phrase::generate(words)?;
            let wallet = Wallet::create_from_mnemonic(
                &path,
                &phrase,
                passphrase.as_deref().map(|p| p.as_str()),
                0,
                &password,
            )?;
            let address = wallet.default_account()?.address;
            dir.print(
                json!({ "address": address.to_checksum(None), "mnemonic": phrase.as_str(), "wallet_dir": path }),
                || {
                    format!(
                        "Created a wallet in {}\n\nAddress:  {address}\n\nMnemonic (shown once; write it down and keep it offline, it \
                         restores every account):\n\n    {}\n",
                        path.display(),
                        phrase.as_str()
                    )
                },
            );
        }
        WalletCommand::Import {
            mnemonic,
            index,
            bip39_passphrase_file,
            private_key,
            keystore,
            keystore_password_file,
        } => {
            let path = dir.path();
            let creating = !Wallet::exists(&path);
            let account = if let Some(given) = mnemonic {
                if !creating {
                    bail!(
                        "{} already holds a wallet; import a mnemonic into a new --wallet-dir",
                        path.display()
                    );
                }
                let text = secrets::given_or_asked(
                    Some(&given),
                    None,
                    "AICOIN_WALLET_MNEMONIC",
                    "Mnemonic",
                )?;
                let phrase = Phrase::parse(&text)?;
                let passphrase = bip39_passphrase(bip39_passphrase_file.as_deref())?;
                let password = dir.password_for(true)?;
                let passphrase = passphrase.as_deref().map(|p| p.as_str());
                let wallet =
                    Wallet::create_from_mnemonic(&path, &phrase, passphrase, index, &password)?;
                wallet.accounts().first().cloned()
            } else {
                let (signer, origin) = match (private_key, keystore) {
                    (Some(given), None) => {
                        let text = secrets::given_or_asked(
                            Some(&given),
                            None,
                            "AICOIN_WALLET_PRIVATE_KEY",
                            "Private key",
                        )?;
                        let hex = text.trim().trim_start_matches("0x");
                        let signer = hex
                            .parse::<PrivateKeySigner>()
                            .map_err(|_| aicoin_wallet::WalletError::BadPrivateKey)?;
                        (signer, Origin::PrivateKey)
                    }
                    (None, Some(file)) => {
                        let keystore = Keystore::read(&file)?;
                        let keystore_password = match keystore_password_file {
                            Some(f) => secrets::password(
                                Some(&f),
                                "AICOIN_KEYSTORE_PASSWORD",
                                "Keystore password",
                            )?,
                            None => secrets::password(
                                dir.password_file.as_deref(),
                                PASSWORD_ENV,
                                "Keystore password",
                            )?,
                        };
                        (
                            keystore.decrypt_key(&keystore_password, &file)?,
                            Origin::Keystore,
                        )
                    }
                    _ => bail!("say what to import: --mnemonic, --private-key or --keystore FILE"),
                };
                let password = dir.password_for(creating)?;
                match creating {
                    true => Wallet::create_from_key(&path, &signer, origin, &password)?
                        .accounts()
                        .last()
                        .cloned(),
                    false => Some(Wallet::open(&path)?.add(&signer, origin, &password)?),
                }
            };
            let account = account.ok_or_else(|| eyre::eyre!("the import stored no account"))?;
            dir.print(
                json!({ "address": account.address.to_checksum(None), "origin": account.origin }),
                || {
                    format!(
                        "Imported {} ({})",
                        account.address,
                        origin_text(account.origin)
                    )
                },
            );
        }
        WalletCommand::List => {
            let wallet = dir.open()?;
            let accounts = wallet.accounts();
            let listed: Vec<_> = accounts
                .iter()
                .map(|a| json!({ "address": a.address.to_checksum(None), "origin": a.origin }))
                .collect();
            dir.print(json!(listed), || {
                accounts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let mark = if i == 0 { "*" } else { " " };
                        format!("{mark} {}  {}", a.address, origin_text(a.origin))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        WalletCommand::Derive { index } => {
            let mut wallet = dir.open()?;
            let password = dir.password()?;
            let account = wallet.derive(index, &password)?;
            dir.print(
                json!({ "address": account.address.to_checksum(None), "index": index }),
                || format!("{}  (m/44'/60'/0'/0/{index})", account.address),
            );
        }
        WalletCommand::Address => {
            let address = dir.address_or_default(None)?;
            dir.print(json!({ "address": address.to_checksum(None) }), || {
                address.to_string()
            });
        }
        WalletCommand::Export { address, out, .. } => {
            let wallet = dir.open()?;
            let address = dir.address_or_default(address.as_deref())?;
            let path = wallet.keystore_path(wallet.account(&address)?);
            let keystore = Keystore::read(&path)?;
            match out {
                Some(out) => {
                    write_private(&out, keystore.to_json().as_bytes())?;
                    dir.print(
                        json!({ "address": address.to_checksum(None), "file": out }),
                        || format!("Wrote the keystore of {address} to {}", out.display()),
                    );
                }
                None => println!("{}", keystore.to_json()),
            }
        }
        WalletCommand::Balance { address, rpc } => {
            let address = dir.address_or_default(address.as_deref())?;
            let wei = Node::new(&rpc.rpc_url)?.balance(address).await?;
            dir.print(
                json!({ "address": address.to_checksum(None), "wei": wei.to_string(), "aic": format_aic(wei) }),
                || format!("{} AIC", format_aic(wei)),
            );
        }
        WalletCommand::Send {
            to,
            amount,
            from,
            timeout,
            chain_id,
            rpc,
        } => {
            let to = parse_address(&to)?;
            let value = parse_aic(&amount)?;
            let from = dir.address_or_default(from.as_deref())?;
            let wallet = dir.open()?;
            let password = dir.password()?;
            let signer = wallet.signer(&from, &password)?;
            let node = Node::new(&rpc.rpc_url)?;
            let hash = node.transfer(&signer, to, value, chain_id).await?;
            if !dir.json {
                eprintln!("Sent {hash}; waiting for the receipt…");
            }
            let receipt = node
                .wait_for_receipt(hash, Duration::from_secs(timeout))
                .await?;
            let success = receipt["status"] == "0x1";
            let block = quantity(&receipt, "blockNumber")?;
            dir.print(
                json!({ "hash": hash, "status": if success { "success" } else { "failed" }, "block": block,
                        "from": from.to_checksum(None), "to": to.to_checksum(None), "wei": value.to_string(), "aic": format_aic(value) }),
                || {
                    format!(
                        "{} {} AIC from {from} to {to} in block {block}: {}",
                        if success { "Sent" } else { "Failed to send" },
                        format_aic(value),
                        if success { "success" } else { "failed" }
                    )
                },
            );
            if !success {
                bail!("transaction {hash} failed on chain");
            }
        }
        WalletCommand::SignMessage { message, address } => {
            let address = dir.address_or_default(address.as_deref())?;
            let password = dir.password()?;
            let signer = dir.open()?.signer(&address, &password)?;
            let signature = signer
                .sign_message_sync(message.as_bytes())
                .wrap_err("signing failed")?;
            let hex = alloy_primitives::hex::encode_prefixed(signature.as_bytes());
            dir.print(
                json!({ "address": address.to_checksum(None), "signature": hex }),
                || hex.clone(),
            );
        }
        WalletCommand::VerifyMessage {
            message,
            address,
            signature,
        } => {
            let address = parse_address(&address)?;
            let bytes = alloy_primitives::hex::decode(signature.trim())
                .ok()
                .filter(|b| b.len() == 65)
                .ok_or_else(|| eyre::eyre!("the signature must be 65 bytes of hex (r, s, v)"))?;
            let signer = Signature::try_from(bytes.as_slice())
                .ok()
                .and_then(|s| s.recover_address_from_msg(message.as_bytes()).ok())
                .ok_or_else(|| eyre::eyre!("the signature is malformed"))?;
            let valid = signer == address;
            dir.print(
                json!({ "valid": valid, "signer": signer.to_checksum(None) }),
                || match valid {
                    true => format!("Valid: signed by {address}"),
                    false => format!("Invalid: signed by {signer}, not {address}"),
                },
            );
            if !valid {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
