//! `aicoin api-key`: API keys for the paid inference API, signed by the wallet. `buy` buys a
//! tier at its price (`IApiAccess.buy`), `create` signs
//! one for the account's current key generation (`IApiAccess.subscription`), `verify` checks a
//! key against the chain as a gateway does, and `revoke` bumps the generation on chain, so
//! every key signed before is refused.

use std::time::{Duration, SystemTime};

use aicoin_gateway::ApiKey;
use aicoin_modules::access::IApiAccess;
use aicoin_primitives::modules::API_ACCESS_ADDRESS;
use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::SolCall;
use clap::{Args, Subcommand};
use eyre::{bail, eyre};
use jsonrpsee::rpc_params;
use serde_json::json;

use crate::{
    module_tx::{self, ModuleCall, Sending},
    wallet::{
        RpcUrl, WalletDir,
        chain::{Node, quantity},
    },
};

#[derive(Debug, Args)]
pub struct ApiKeyArgs {
    #[command(flatten)]
    dir: WalletDir,
    #[command(subcommand)]
    command: ApiKeyCommand,
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Buy an API tier at its price (`IApiAccess.buy`): basic, standard or premium.
    Buy {
        tier: String,
        #[command(flatten)]
        sending: Sending,
    },
    /// Sign a new API key with the wallet: use it as the OpenAI SDKs' `api_key`.
    Create {
        /// The account whose subscription it spends [default: the wallet's default account].
        #[arg(long)]
        from: Option<String>,
        /// How long it is valid: a number and s, m, h or d.
        #[arg(long, default_value = "30d")]
        expires: String,
        #[command(flatten)]
        rpc: RpcUrl,
    },
    /// Check a key as a gateway does: its signature, chain, expiry and key generation.
    Verify {
        key: String,
        #[command(flatten)]
        rpc: RpcUrl,
    },
    /// Revoke every key the account signed so far (`IApiAccess.revokeKeys`).
    Revoke {
        #[command(flatten)]
        sending: Sending,
    },
}

pub async fn run(args: ApiKeyArgs) -> eyre::Result<()> {
    let dir = &args.dir;
    match args.command {
        ApiKeyCommand::Buy { tier, sending } => {
            let (id, name) = match tier.to_ascii_lowercase().as_str() {
                "1" | "basic" => (1u8, "basic"),
                "2" | "standard" => (2, "standard"),
                "3" | "premium" => (3, "premium"),
                other => bail!("no tier {other:?}: basic, standard or premium"),
            };
            let account = dir.address_or_default(sending.from.as_deref())?;
            let node = Node::new(&sending.rpc_url)?;
            let params: serde_json::Value = node.call("aic_getParams", rpc_params![]).await?;
            let price: U256 = params[format!("{name}Price")]
                .as_str()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| eyre!("the node does not say the {name} tier's price"))?;
            let call = ModuleCall {
                to: API_ACCESS_ADDRESS,
                value: price,
                data: IApiAccess::buyCall { tier: id }.abi_encode(),
            };
            module_tx::send(dir, &sending, &call).await?;
            let subscription = subscription(&node, account).await?;
            dir.print(
                json!({ "account": account.to_checksum(None), "tier": id, "price": price.to_string(),
                        "expiresAtBlock": subscription.expiresAt }),
                || {
                    format!(
                        "Bought the {name} tier for {account} ({price} wei); it runs until block {}",
                        subscription.expiresAt
                    )
                },
            );
            Ok(())
        }
        ApiKeyCommand::Create { from, expires, rpc } => {
            let account = dir.address_or_default(from.as_deref())?;
            let lasts = parse_duration(&expires)?;
            let node = Node::new(&rpc.rpc_url)?;
            let chain_id = node.chain_id().await?;
            let subscription = subscription(&node, account).await?;
            let key = ApiKey {
                account,
                expires: unix_now().saturating_add(lasts.as_secs()),
                generation: subscription.keyGeneration,
                chainId: chain_id,
            };
            let signer = dir.open()?.signer(&account, &dir.password()?)?;
            let text = key.sign(&signer)?;
            dir.print(
                json!({ "key": text, "account": account.to_checksum(None), "expires": key.expires,
                        "generation": key.generation, "chainId": chain_id }),
                || text.clone(),
            );
            Ok(())
        }
        ApiKeyCommand::Verify { key, rpc } => {
            let key = ApiKey::decode(&key)?;
            let node = Node::new(&rpc.rpc_url)?;
            let subscription = subscription(&node, key.account).await?;
            key.check(
                node.chain_id().await?,
                unix_now(),
                subscription.keyGeneration,
            )?;
            let tier = match (subscription.active, subscription.tier) {
                (false, _) => "no active tier".to_string(),
                (true, 1) => "Basic".into(),
                (true, 2) => "Standard".into(),
                (true, _) => "Premium".into(),
            };
            dir.print(
                json!({ "valid": true, "account": key.account.to_checksum(None), "expires": key.expires,
                        "generation": key.generation, "active": subscription.active,
                        "tier": subscription.tier, "expiresAtBlock": subscription.expiresAt }),
                || {
                    format!(
                        "Valid key of {} (generation {}, expires at Unix time {}): {tier}",
                        key.account, key.generation, key.expires
                    )
                },
            );
            Ok(())
        }
        ApiKeyCommand::Revoke { sending } => {
            let account = dir.address_or_default(sending.from.as_deref())?;
            let call = ModuleCall {
                to: API_ACCESS_ADDRESS,
                value: U256::ZERO,
                data: IApiAccess::revokeKeysCall {}.abi_encode(),
            };
            let receipt = module_tx::send(dir, &sending, &call).await?;
            let node = Node::new(&sending.rpc_url)?;
            let generation = subscription(&node, account).await?.keyGeneration;
            let block = quantity(&receipt, "blockNumber")?;
            dir.print(
                json!({ "account": account.to_checksum(None), "generation": generation, "block": block }),
                || format!("Revoked every key of {account} signed before block {block}; keys are now of generation {generation}"),
            );
            Ok(())
        }
    }
}

async fn subscription(node: &Node, account: Address) -> eyre::Result<IApiAccess::Subscription> {
    let data = Bytes::from(IApiAccess::subscriptionCall { account }.abi_encode());
    let out: Bytes = node
        .call(
            "eth_call",
            rpc_params![json!({ "to": API_ACCESS_ADDRESS, "data": data }), "latest"],
        )
        .await?;
    IApiAccess::subscriptionCall::abi_decode_returns(&out)
        .map_err(|e| eyre!("the API-access module answered something else: {e}"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `30d`, `12h`, `90m` or `45s`.
fn parse_duration(text: &str) -> eyre::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| eyre!("--expires {text:?}: a number and s, m, h or d, e.g. 30d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => bail!("--expires {text:?}: the unit is one of s, m, h, d"),
    };
    if number == 0 {
        bail!("--expires {text:?}: a key must last a while");
    }
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5_400));
        for bad in ["", "d", "10", "5w", "0h", "-3d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
