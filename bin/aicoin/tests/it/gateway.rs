//! The paid gateway with real processes: a validator running `--gateway` (it registers itself)
//! in front of two providers (full nodes with `--provide`) serving the tiny model. Keys of
//! accounts without a tier are refused with 402, a bought tier's key streams answers with
//! usage and the provider's name, requests spread over both providers and survive one being
//! `kill -9`ed mid-load, 50 parallel requests against a budget that fits 10 are served exactly
//! 10 times, and at each epoch's end the providers and the treasury are paid the revenue's
//! 80/20 split, recomputed here to the wei.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use aicoin_gateway::{ApiKey, PROVIDER_HEADER};
use aicoin_modules::{access::IApiAccess, registry::IComputeRegistry};
use aicoin_primitives::{AIC, TREASURY_ADDRESS, modules::API_ACCESS_ADDRESS};
use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolCall;
use serde_json::{Value, json};

use crate::{
    cluster::{eventually, free_port, one_cluster_at_a_time},
    common::{NodeProcess, Rpc, aicoin, dev_key},
    compute::{models_dir, registered},
};

const EPOCH_BLOCKS: u64 = 20;
/// Tokens the budget test's requests generate each (`ignore_eos`: exactly this many).
const MAX_TOKENS: u64 = 6;
const QUESTION: &str = "Name three colours.";

/// The tokens of one budget-test request: its prompt as the tiny model's template and
/// tokenizer make it (the gateway counts the same way), plus what it generates.
fn request_tokens(models: &Path) -> u64 {
    let (prompter, _) = aicoin_inference::Prompter::load(&models.join("tiny/model.gguf")).unwrap();
    let prompt = prompter
        .chat_prompt(&[aicoin_inference::Message {
            role: "user".into(),
            content: QUESTION.into(),
        }])
        .unwrap();
    prompter.encode(&prompt).unwrap().len() as u64 + MAX_TOKENS
}

/// One authority, the providers' keys and the dev accounts funded, the tiny model listed; the
/// Basic tier's day budget fits ten and a half budget-test requests.
pub(crate) fn chain_spec(
    home: &Path,
    validator: Address,
    funded: &[Address],
    per_request: u64,
) -> PathBuf {
    let mut spec = aicoin_primitives::ChainSpec::local(2108, validator, funded);
    let params = [
        ("epochLength", EPOCH_BLOCKS),
        ("basicRpm", 1_000),
        ("standardRpm", 100_000),
        // The fallback load runs until enough answers follow a kill, however fast they come.
        ("standardTokensPerDay", 100_000_000),
        ("basicTokensPerDay", 10 * per_request + per_request / 2),
    ];
    for (name, value) in params {
        spec.params.insert(name.into(), U256::from(value));
    }
    spec.models.push(aicoin_primitives::registry::ListedModel {
        id: "tiny".into(),
        units: 1,
        context_length: aicoin_inference::testing::TINY_CONTEXT as u64,
        ..Default::default()
    });
    let path = home.join("chain.json");
    std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
    path
}

/// `call` sent by `signer` as a signed transaction, mined.
pub(crate) async fn send(
    rpc: &Rpc,
    signer: &PrivateKeySigner,
    data: Vec<u8>,
    value: U256,
) -> Value {
    let nonce = rpc.nonce(signer.address()).await;
    let tx = TxLegacy {
        chain_id: Some(2108),
        nonce,
        gas_price: 0,
        gas_limit: 500_000,
        to: TxKind::Call(API_ACCESS_ADDRESS),
        value,
        input: data.into(),
    };
    let raw: Bytes = aicoin_primitives::sign_transaction(signer, tx)
        .unwrap()
        .encoded_2718()
        .into();
    let hash = rpc.send_raw(&raw).await.unwrap();
    let receipt = rpc.receipt(hash).await;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    receipt
}

async fn view<C: SolCall>(rpc: &Rpc, to: Address, call: C, block: u64) -> C::Return {
    let out: Bytes = rpc
        .ok(
            "eth_call",
            vec![
                json!({"to": to, "data": Bytes::from(call.abi_encode())}),
                format!("{block:#x}").into(),
            ],
        )
        .await;
    C::abi_decode_returns(&out).unwrap()
}

/// A key for `signer`'s account, valid for an hour.
pub(crate) fn key_of(signer: &PrivateKeySigner, chain_id: u64) -> String {
    ApiKey {
        account: signer.address(),
        expires: aicoin_api::signed::unix_now() + 3_600,
        generation: 0,
        chainId: chain_id,
    }
    .sign(signer)
    .unwrap()
}

/// What a client got for one request.
#[derive(Debug)]
struct Answer {
    status: u16,
    provider: Option<Address>,
    body: Value,
    /// For a stream: whether a token arrived, and whether it ended with `[DONE]`.
    streamed_token: bool,
    done: bool,
}

async fn post(gateway: &str, key: &str, path: &str, body: Value) -> Answer {
    let response = reqwest::Client::new()
        .post(format!("{gateway}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let provider = response
        .headers()
        .get(PROVIDER_HEADER)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    if body["stream"] != true || status != 200 {
        let body = response.json().await.unwrap_or(Value::Null);
        return Answer {
            status,
            provider,
            body,
            streamed_token: false,
            done: false,
        };
    }
    // The stream's chunks: the last data chunk before [DONE] carries the usage.
    let mut response = response;
    let (mut text, mut streamed_token, mut usage) = (String::new(), false, Value::Null);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(None) | Err(_) => break,
        }
        for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
            if let Ok(event) = serde_json::from_str::<Value>(line) {
                let piece = &event["choices"][0]["delta"]["content"];
                streamed_token |= piece.as_str().is_some_and(|t| !t.is_empty());
                if !event["usage"].is_null() {
                    usage = event["usage"].clone();
                }
            }
        }
    }
    Answer {
        status,
        provider,
        body: json!({ "usage": usage }),
        streamed_token,
        done: text.contains("data: [DONE]"),
    }
}

/// A validator at `dir` on `spec` running the gateway (on a free port), counting prompts with
/// the models in `models`: the node, the gateway's `/v1` URL, and its sync URL for full nodes.
pub(crate) async fn start_gateway(
    home: &Path,
    spec: &str,
    dir: &Path,
    models: &Path,
) -> (NodeProcess, String, String) {
    let sync_port = free_port().to_string();
    let args = [
        "node",
        "--chain",
        spec,
        "--data-dir",
        dir.to_str().unwrap(),
        "--rpc-port",
        "0",
        "--no-api",
        "--block-interval",
        "0.5",
        "--sync-port",
        &sync_port,
        "--models-dir",
        models.to_str().unwrap(),
        "--gateway",
        "--gateway-port",
        "0",
    ];
    let node = NodeProcess::start(aicoin(home, &args)).await;
    let gateway = node.banner_value("Gateway");
    let gateway = gateway.split_whitespace().next().unwrap().to_string();
    (node, gateway, format!("http://127.0.0.1:{sync_port}"))
}

/// A full node at `dir` on `spec`, synced from `bootnode`, serving the models in `models` as a
/// provider (`--provide`) on a free port, with `extra` arguments.
pub(crate) async fn start_provider(
    home: &Path,
    spec: &str,
    dir: &Path,
    bootnode: &str,
    models: &Path,
    extra: &[&str],
) -> NodeProcess {
    let api_port = free_port().to_string();
    let mut args = vec![
        "node",
        "--chain",
        spec,
        "--data-dir",
        dir.to_str().unwrap(),
        "--role",
        "full",
        "--bootnodes",
        bootnode,
        "--rpc-port",
        "0",
        "--api-port",
        &api_port,
        "--block-interval",
        "0.5",
        "--provide",
        "--models-dir",
        models.to_str().unwrap(),
    ];
    args.extend(extra);
    NodeProcess::start(aicoin(home, &args)).await
}

fn chat(stream: bool, max_tokens: u64) -> Value {
    json!({"model": "tiny", "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": max_tokens, "stream": stream, "ignore_eos": true, "temperature": 0})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_sells_routes_falls_back_and_splits_the_revenue() {
    let _cluster = one_cluster_at_a_time().await;
    let home = tempfile::tempdir().unwrap();
    let models = models_dir(&home.path().join("models"), 3);
    let validator_dir = home.path().join("validator");
    let validator = aicoin_node::load_or_create_validator_key(&validator_dir)
        .unwrap()
        .0
        .address();
    let provider_dirs: Vec<PathBuf> = (1..=2)
        .map(|i| home.path().join(format!("provider-{i}")))
        .collect();
    let providers: Vec<Address> = provider_dirs
        .iter()
        .map(|dir| {
            aicoin_node::load_or_create_validator_key(dir)
                .unwrap()
                .0
                .address()
        })
        .collect();
    let per_request = request_tokens(&models);
    let mut funded = providers.clone();
    funded.extend((0..3).map(|i| dev_key(i).address()));
    let spec = chain_spec(home.path(), validator, &funded, per_request);
    let spec = spec.to_str().unwrap();
    let (node, gateway, bootnode) = start_gateway(home.path(), spec, &validator_dir, &models).await;
    let root = home.path().to_path_buf();
    let start_provider = |dir: &Path| {
        let (root, dir, bootnode) = (root.clone(), dir.to_path_buf(), bootnode.clone());
        let models = models.clone();
        async move { start_provider(&root, spec, &dir, &bootnode, &models, &[]).await }
    };
    let mut provider_nodes = Vec::new();
    for dir in &provider_dirs {
        provider_nodes.push(start_provider(dir).await);
    }
    for p in &providers {
        registered(&node, *p).await;
    }
    // The gateway registered itself and offers the model of both providers.
    eventually("the gateway offers tiny from both providers", || async {
        let models: Value = reqwest::get(format!("{gateway}/models"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let tiny = models["data"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == "tiny")?
            .clone();
        (tiny["providers"] == 2).then_some(tiny)
    })
    .await;
    let head = node.block_number().await;
    assert!(
        view(
            &node,
            API_ACCESS_ADDRESS,
            IApiAccess::isGatewayCall { account: validator },
            head
        )
        .await
    );

    // No tier: 402. A key of another chain, or signed by someone else: 401.
    let fresh = dev_key(2);
    let answer = post(
        &gateway,
        &key_of(&fresh, 2108),
        "/chat/completions",
        chat(false, 2),
    )
    .await;
    assert_eq!(answer.status, 402, "{:?}", answer.body);
    assert_eq!(answer.body["error"]["code"], "insufficient_quota");
    let buyer = dev_key(0);
    let other_chain = post(
        &gateway,
        &key_of(&buyer, 1),
        "/chat/completions",
        chat(false, 2),
    )
    .await;
    assert_eq!(other_chain.status, 401, "{:?}", other_chain.body);
    let forged = aicoin_gateway::keys::encode(
        &ApiKey::decode(&key_of(&buyer, 2108)).unwrap(),
        &alloy_signer::SignerSync::sign_hash_sync(
            &fresh,
            &ApiKey::decode(&key_of(&buyer, 2108))
                .unwrap()
                .signing_hash(),
        )
        .unwrap(),
    );
    let forged = post(&gateway, &forged, "/chat/completions", chat(false, 2)).await;
    assert_eq!(forged.status, 401, "{:?}", forged.body);

    // Standard bought: answers with usage, named by their provider.
    let standard = AIC * U256::from(5u64);
    send(
        &node,
        &buyer,
        IApiAccess::buyCall { tier: 2 }.abi_encode(),
        standard,
    )
    .await;
    let key = key_of(&buyer, 2108);
    let whole = post(&gateway, &key, "/chat/completions", chat(false, 3)).await;
    assert_eq!(whole.status, 200, "{:?}", whole.body);
    assert!(providers.contains(&whole.provider.unwrap()));
    assert_eq!(
        whole.body["usage"]["completion_tokens"], 3,
        "{:?}",
        whole.body
    );
    let streamed = post(&gateway, &key, "/chat/completions", chat(true, 3)).await;
    assert!(streamed.streamed_token && streamed.done, "{streamed:?}");
    assert_eq!(
        streamed.body["usage"]["completion_tokens"], 3,
        "{streamed:?}"
    );
    assert!(streamed.provider.is_some());
    // Refused at the gateway: an unknown model, a bad parameter, a prompt over the context.
    let unknown = post(
        &gateway,
        &key,
        "/chat/completions",
        json!({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(
        (unknown.status, &unknown.body["error"]["code"]),
        (404, &json!("model_not_found"))
    );
    let mut hot = chat(false, 2);
    hot["temperature"] = json!(7);
    assert_eq!(
        post(&gateway, &key, "/chat/completions", hot).await.status,
        400
    );
    let long =
        json!({"model": "tiny", "messages": [{"role": "user", "content": "colour ".repeat(400)}]});
    let long = post(&gateway, &key, "/chat/completions", long).await;
    assert_eq!(
        long.body["error"]["code"], "context_length_exceeded",
        "{:?}",
        long.body
    );

    // Load over both providers, one of them killed mid-load: no request fails before its
    // first token, and every answer names who served it.
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (gateway, key, stop) = (gateway.clone(), key.clone(), stop.clone());
        let answers = answers.clone();
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let answer = post(&gateway, &key, "/chat/completions", chat(true, 8)).await;
                answers.lock().unwrap().push(answer);
            }
        }));
    }
    let served_by =
        |answers: &[Answer], p: Address| answers.iter().filter(|a| a.provider == Some(p)).count();
    eventually("both providers served the load", || async {
        // Peek at the served-token counts the gateway reports: both providers have some.
        let done = reqwest::Client::new()
            .get(format!("{gateway}/account"))
            .bearer_auth(&key)
            .send()
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()?;
        (done["quota"]["tokens_used_today"].as_u64()? > 40 * per_request).then_some(())
    })
    .await;
    let killed = provider_nodes.remove(0);
    killed.kill9();
    // Enough answers after the kill that the breaker has opened and only the survivor serves.
    let at_kill = answers.lock().unwrap().len();
    eventually("answers keep coming after the kill", || async {
        (answers.lock().unwrap().len() >= at_kill + 24).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let before = std::mem::take(&mut *answers.lock().unwrap());
    for answer in &before {
        assert!(
            answer.provider.is_some(),
            "an answer without its provider: {answer:?}"
        );
        if answer.status != 200 || !answer.done {
            assert!(
                answer.streamed_token,
                "a request failed before its first token: {answer:?}"
            );
        }
    }
    assert!(served_by(&before, providers[0]) > 0 && served_by(&before, providers[1]) > 0);
    let tail = &before[before.len().saturating_sub(4)..];
    assert!(
        tail.iter().all(|a| a.provider == Some(providers[1])),
        "{tail:?}"
    );

    // 50 parallel requests against a Basic budget that fits 10: exactly 10 are served.
    let thrifty = dev_key(1);
    send(
        &node,
        &thrifty,
        IApiAccess::buyCall { tier: 1 }.abi_encode(),
        AIC,
    )
    .await;
    let thrifty_key = key_of(&thrifty, 2108);
    let racing: Vec<_> = (0..50)
        .map(|_| {
            let (gateway, key) = (gateway.clone(), thrifty_key.clone());
            tokio::spawn(async move {
                post(&gateway, &key, "/chat/completions", chat(false, MAX_TOKENS)).await
            })
        })
        .collect();
    let mut served = 0;
    for task in racing {
        let answer = task.await.unwrap();
        match answer.status {
            200 => {
                served += 1;
                assert_eq!(
                    answer.body["usage"]["total_tokens"], per_request,
                    "{:?}",
                    answer.body
                );
            }
            402 => assert_eq!(answer.body["error"]["code"], "insufficient_quota"),
            other => panic!("HTTP {other}: {:?}", answer.body),
        }
    }
    assert_eq!(served, 10);
    let account: Value = reqwest::Client::new()
        .get(format!("{gateway}/account"))
        .bearer_auth(&thrifty_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["tier_name"], "basic");
    assert_eq!(account["quota"]["tokens_used_today"], 10 * per_request);
    assert_eq!(account["quota"]["tokens_left_today"], per_request / 2);

    // Revoked keys: 401.
    send(
        &node,
        &buyer,
        IApiAccess::revokeKeysCall {}.abi_encode(),
        U256::ZERO,
    )
    .await;
    let revoked = post(&gateway, &key, "/chat/completions", chat(false, 2)).await;
    assert_eq!(revoked.status, 401, "{:?}", revoked.body);

    check_revenue(&node, &providers).await;
}

/// Every epoch up to the last with revenue, once settled: each provider's payout rose by its
/// registry reward plus the epoch's providers' part (80% of its revenue and what earlier epochs
/// carried) pro rata to the tokens it served, the treasury by the block's 10 AIC and the other
/// 20%, all recomputed from the chain's views to the wei.
async fn check_revenue(rpc: &Rpc, providers: &[Address]) {
    let epoch_of = |e: Value| e["epoch"].as_u64().unwrap();
    let current = epoch_of(rpc.ok("aic_epoch", vec![]).await);
    let head = rpc.block_number().await;
    let revenue_at = |e| {
        view(
            rpc,
            API_ACCESS_ADDRESS,
            IApiAccess::revenueCall { epoch: e },
            head,
        )
    };
    let mut last = 0;
    for e in 0..=current {
        if !revenue_at(e).await.is_zero() {
            last = e;
        }
    }
    eventually("the last epoch with revenue is settled", || async {
        (epoch_of(rpc.ok("aic_epoch", vec![]).await) >= last + 2).then_some(())
    })
    .await;
    let registry = aicoin_primitives::modules::REGISTRY_ADDRESS;
    let head = rpc.block_number().await;
    let mut carried = U256::ZERO;
    let mut checked = 0;
    for e in 0..=last {
        let revenue = view(
            rpc,
            API_ACCESS_ADDRESS,
            IApiAccess::revenueCall { epoch: e },
            head,
        )
        .await;
        let pool = revenue * U256::from(8_000u64) / U256::from(10_000u64) + carried;
        if pool.is_zero() {
            continue;
        }
        // Epoch e settles at the last block of epoch e + 1.
        let settled_at = (e + 2) * EPOCH_BLOCKS;
        let mut served = Vec::new();
        for p in providers {
            let record = view(
                rpc,
                registry,
                IComputeRegistry::epochRecordCall {
                    account: *p,
                    epoch: e,
                },
                settled_at,
            )
            .await;
            let tokens = view(
                rpc,
                API_ACCESS_ADDRESS,
                IApiAccess::servedCall {
                    epoch: e,
                    provider: *p,
                },
                settled_at,
            )
            .await;
            let tokens = if record.auditFailed { 0 } else { tokens };
            served.push((*p, record, tokens));
        }
        let total: u64 = served.iter().map(|s| s.2).sum();
        let mut paid = U256::ZERO;
        for (p, record, tokens) in &served {
            let share = match total {
                0 => U256::ZERO,
                _ => pool * U256::from(*tokens) / U256::from(total),
            };
            paid += share;
            let before = rpc.balance(*p, &format!("{:#x}", settled_at - 1)).await;
            let after = rpc.balance(*p, &format!("{settled_at:#x}")).await;
            assert_eq!(
                after - before,
                record.reward + share,
                "epoch {e}: what {p} was paid"
            );
        }
        let before = rpc
            .balance(TREASURY_ADDRESS, &format!("{:#x}", settled_at - 1))
            .await;
        let after = rpc
            .balance(TREASURY_ADDRESS, &format!("{settled_at:#x}"))
            .await;
        let to_treasury = revenue - revenue * U256::from(8_000u64) / U256::from(10_000u64);
        assert_eq!(
            after - before,
            AIC * U256::from(10u64) + to_treasury,
            "epoch {e}: the treasury"
        );
        carried = pool - paid;
        checked += usize::from(total > 0);
    }
    assert!(checked > 0, "no epoch with revenue had traffic");
}
