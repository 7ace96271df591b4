//! What the paid gateway adds to a request: an in-process dev node serves a text model as a
//! provider and runs the gateway in front of it; the same streamed chat requests go to the
//! provider directly (signed by the validator, as the network's own requests are) and through
//! the gateway (with an API key of a Premium tier), in alternating rounds, at each concurrency.
//! Reports per mode the median time to first token and to the last byte, the added latency
//! (gateway minus direct) and the throughput ratio (gateway requests/s over direct).

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use aicoin_api::ApiConfig;
use aicoin_api::signed;
use aicoin_compute::tx::TxSender;
use aicoin_gateway::{ApiKey, GatewayConfig};
use aicoin_inference::{ModelKind, SchedulerConfig};
use aicoin_modules::access::IApiAccess;
use aicoin_node::{NodeConfig, ProvideConfig};
use aicoin_primitives::{AIC, ChainSpec, dev::dev_signers, modules::API_ACCESS_ADDRESS};
use alloy_primitives::U256;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolCall;
use clap::Args;
use eyre::{bail, eyre};
use serde_json::{Value, json};

use super::{median, ms};
use crate::chat::LocalModelArgs;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    model: LocalModelArgs,
    /// Concurrent streams to measure at, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    streams: Vec<usize>,
    /// Requests per mode at each concurrency.
    #[arg(long, default_value_t = 64)]
    requests: usize,
    /// Tokens each request generates.
    #[arg(long, default_value_t = 8)]
    max_tokens: u64,
}

/// Where requests go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Direct,
    Gateway,
}

/// One request's timings.
struct Timing {
    ttft: Duration,
    total: Duration,
}

struct Target {
    http: reqwest::Client,
    provider: String,
    gateway: String,
    validator: PrivateKeySigner,
    api_key: String,
    body: Vec<u8>,
}

impl Target {
    async fn request(&self, mode: Mode) -> eyre::Result<Timing> {
        let path = "/v1/chat/completions";
        let request = match mode {
            Mode::Direct => {
                let mut request = self.http.post(format!("{}{path}", self.provider));
                for (name, value) in signed::sign(
                    &self.validator,
                    self.validator.address(),
                    "POST",
                    path,
                    &self.body,
                )? {
                    request = request.header(name, value);
                }
                request
            }
            Mode::Gateway => self
                .http
                .post(format!("{}{path}", self.gateway))
                .bearer_auth(&self.api_key),
        };
        let sent = Instant::now();
        let mut response = request
            .header("content-type", "application/json")
            .body(self.body.clone())
            .send()
            .await?;
        if !response.status().is_success() {
            let status = response.status();
            bail!("{mode:?}: HTTP {status}: {}", response.text().await?);
        }
        // The first token: the first chunk with text (the role chunk before it has none).
        let mut ttft = None;
        let mut text = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            text.extend_from_slice(&chunk);
            if ttft.is_none() && has_text(&chunk) {
                ttft = Some(sent.elapsed());
            }
        }
        if !text.ends_with(b"data: [DONE]\n\n") {
            bail!("{mode:?}: the stream did not end with [DONE]");
        }
        Ok(Timing {
            ttft: ttft.unwrap_or_default(),
            total: sent.elapsed(),
        })
    }
}

/// Whether a stream chunk carries generated text (`"content":"` and a character).
fn has_text(chunk: &[u8]) -> bool {
    let needle = br#""content":""#;
    chunk
        .windows(needle.len() + 1)
        .any(|w| w.starts_with(needle) && w[needle.len()] != b'"')
}

/// `requests` requests over `streams` concurrent streams; their timings and the wall time.
async fn round(
    target: &Arc<Target>,
    mode: Mode,
    streams: usize,
    requests: usize,
) -> eyre::Result<(Vec<Timing>, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..streams {
        let target = target.clone();
        let count = requests / streams + usize::from(s < requests % streams);
        tasks.push(tokio::spawn(async move {
            let mut timings = Vec::new();
            for _ in 0..count {
                timings.push(target.request(mode).await?);
            }
            Ok::<_, eyre::Report>(timings)
        }));
    }
    let mut timings = Vec::new();
    for task in tasks {
        timings.extend(task.await??);
    }
    Ok((timings, started.elapsed()))
}

pub async fn run(args: GatewayArgs) -> eyre::Result<()> {
    let dir = crate::model::ModelsDir {
        data_dir: args.model.data_dir.clone(),
        models_dir: args.model.models.models_dir.clone(),
    };
    let model = crate::model::resolve(&dir, &args.model.models.model)?
        .into_iter()
        .find(|m| m.kind == ModelKind::Text)
        .ok_or_else(|| eyre!("no text model: `aicoin model fetch smollm2`, or --model PATH"))?;
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("data");
    let (validator, _) = aicoin_node::load_or_create_validator_key(&data_dir)?;
    let dev = dev_signers()?;
    let mut spec = ChainSpec::local(
        aicoin_primitives::AICOIN_CHAIN_ID,
        validator.address(),
        &dev.iter().map(|s| s.address()).collect::<Vec<_>>(),
    );
    // No rate limit in the way of the measurement.
    spec.params
        .insert("premiumRpm".into(), U256::from(1_000_000u64));
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = NodeConfig::dev(data_dir);
    config.chain_spec = Some(spec);
    config.block_interval = Duration::from_millis(250);
    config.probe.enabled = false;
    config.api = Some(ApiConfig {
        addr: localhost,
        models: vec![model.clone()],
        device: "cpu".into(),
        weights: Default::default(),
        scheduler: SchedulerConfig::default(),
        max_context: None,
        explicit: true,
    });
    config.provide = Some(ProvideConfig::default());
    config.gateway = Some(GatewayConfig {
        addr: localhost,
        public_url: None,
        models: vec![model.clone()],
        pipeline: Default::default(),
    });
    let node = aicoin_node::spawn(config).await?;
    let provider = node
        .api()
        .ok_or_else(|| eyre!("the model did not load"))?
        .url();
    let gateway = node
        .gateway()
        .ok_or_else(|| eyre!("no gateway"))?
        .url()
        .to_string();
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;

    // Wait until the provider registered and the gateway offers its model.
    let offered = Instant::now();
    loop {
        let models: Value = http
            .get(format!("{gateway}/v1/models"))
            .send()
            .await?
            .json()
            .await?;
        if models["data"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["id"] == model.id.as_str()))
        {
            break;
        }
        if offered.elapsed() > Duration::from_secs(120) {
            bail!("the gateway did not offer {} within 2 minutes", model.id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let buyer = dev[0].clone();
    let sender = TxSender::new(&node.rpc_url(), buyer.clone(), node.spec().chain_id)?;
    sender
        .send(
            API_ACCESS_ADDRESS,
            IApiAccess::buyCall { tier: 3 }.abi_encode().into(),
            AIC * U256::from(20u64),
            300_000,
        )
        .await?;
    let api_key = ApiKey {
        account: buyer.address(),
        expires: signed::unix_now() + 86_400,
        generation: 0,
        chainId: node.spec().chain_id,
    }
    .sign(&buyer)?;
    let body = serde_json::to_vec(&json!({
        "model": model.id, "messages": [{"role": "user", "content": "Count from one to twenty."}],
        "max_tokens": args.max_tokens, "temperature": 0, "ignore_eos": true, "stream": true,
    }))?;
    let target = Arc::new(Target {
        http,
        provider,
        gateway,
        validator,
        api_key,
        body,
    });
    // Until the purchase is mined, the gateway answers 402.
    let bought = Instant::now();
    while target.request(Mode::Gateway).await.is_err() {
        if bought.elapsed() > Duration::from_secs(30) {
            bail!("the gateway still refuses the bought tier");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!(
        "Gateway vs direct: {} ({} tokens a request, {} requests per mode and concurrency, \
         streamed; alternating rounds)",
        model.id, args.max_tokens, args.requests
    );
    println!(
        "{:>7}  {:>9} {:>9} {:>9}  {:>9} {:>9} {:>9}  {:>8} {:>8} {:>6}",
        "streams",
        "ttft ms",
        "via gw",
        "added",
        "last ms",
        "via gw",
        "added",
        "req/s d",
        "req/s g",
        "ratio"
    );
    for &streams in &args.streams {
        let streams = streams.max(1);
        // Warm both paths (connections, caches) before timing.
        round(&target, Mode::Direct, streams, streams).await?;
        round(&target, Mode::Gateway, streams, streams).await?;
        let (mut direct, mut via) = ((Vec::new(), Duration::ZERO), (Vec::new(), Duration::ZERO));
        let rounds = 4;
        let per_round = (args.requests / rounds).max(streams);
        for _ in 0..rounds {
            for mode in [Mode::Direct, Mode::Gateway] {
                let (timings, wall) = round(&target, mode, streams, per_round).await?;
                let into = match mode {
                    Mode::Direct => &mut direct,
                    Mode::Gateway => &mut via,
                };
                into.0.extend(timings);
                into.1 += wall;
            }
        }
        let p50 = |timings: &[Timing], f: fn(&Timing) -> Duration| {
            median(timings.iter().map(f).collect())
        };
        let (ttft_d, ttft_g) = (p50(&direct.0, |t| t.ttft), p50(&via.0, |t| t.ttft));
        let (last_d, last_g) = (p50(&direct.0, |t| t.total), p50(&via.0, |t| t.total));
        let rate =
            |(timings, wall): &(Vec<Timing>, Duration)| timings.len() as f64 / wall.as_secs_f64();
        let (rate_d, rate_g) = (rate(&direct), rate(&via));
        let added = |g: Duration, d: Duration| (g.as_secs_f64() - d.as_secs_f64()) * 1000.0;
        println!(
            "{streams:>7}  {:>9.2} {:>9.2} {:>+9.2}  {:>9.2} {:>9.2} {:>+9.2}  {rate_d:>8.1} {rate_g:>8.1} {:>5.3}x",
            ms(ttft_d),
            ms(ttft_g),
            added(ttft_g, ttft_d),
            ms(last_d),
            ms(last_g),
            added(last_g, last_d),
            rate_g / rate_d,
        );
    }
    node.stop().await;
    Ok(())
}
