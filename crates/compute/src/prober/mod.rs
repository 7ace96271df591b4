//! A validator's measurement of every provider, epoch by epoch: when an epoch starts, it draws
//! `probeJobs` challenge jobs per active provider (from its key and the block hash), sends each
//! at a random moment of the first 40% of the epoch, gives it until 90% of the epoch has passed
//! (at least 10 s, at most 60 s), and records what came back; it audits a
//! sample of the answers (`auditSampleBps`, at least one per provider) on its own copy of the
//! model; once the epoch has ended it submits its report transaction (`submitReport`).
//!
//! A provider's models served whole get chat jobs over its OpenAI API ([`client`]); those it
//! serves a layer range of, as a pipeline shard, get the same jobs as hidden states over the
//! shard protocol ([`shard_probe`]), when this validator holds the model. A shard's tokens and
//! rate count in proportion to its layers (`t` tokens through `l` of `n` layers are `t × l / n`
//! of the model's), as its gateway revenue does.
//!
//! A job counts as answered when a well-formed answer came back in time; an answer whose audit
//! fails still counts as answered, and the failure is reported. One job is [`probe`]'s.

mod probe;

use std::{collections::HashMap, ops::Range, sync::Arc, time::Duration};

use aicoin_inference::{TextModel, llama::Llama};
use aicoin_modules::registry::IComputeRegistry;
use aicoin_primitives::{NewBlock, modules::REGISTRY_ADDRESS};
use aicoin_storage::Store;
use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolCall;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};

use crate::{
    audit,
    jobs::{Job, JobGenerator},
    shard_probe,
    tx::TxSender,
    view::{RegistryView, Status, ViewError},
};
use probe::{Ask, Outcome, Reply, probe};

/// What a validator probes with.
pub struct ProberConfig {
    pub key: PrivateKeySigner,
    /// The node's own JSON-RPC, where reports are sent.
    pub rpc_url: String,
    pub chain_id: u64,
    /// The chain's block interval, to spread jobs over an epoch's wall time.
    pub block_interval: Duration,
    /// The auditor's copies of the models, by id; answers of other models are not audited.
    pub models: HashMap<String, Arc<TextModel>>,
}

/// An epoch's probing settings, read from the chain parameters at its start.
#[derive(Debug, Clone)]
struct Settings {
    jobs: u64,
    max_tokens: usize,
    audit_bps: u64,
    margin: f32,
    units: HashMap<String, u64>,
    /// The listed text models: only these are probed (embedding models are served, not
    /// measured, yet).
    text: Vec<String>,
}

struct Ctx {
    config: ProberConfig,
    http: reqwest::Client,
    sender: TxSender,
    /// Preparing a shard job runs part of the model: one at a time, so an epoch's jobs do not
    /// all take a blocking thread (and wait for candle's pool) at once.
    preparing: tokio::sync::Semaphore,
}

impl Ctx {
    /// This validator's whole copy of `model` on our own forward: what shard probes need.
    fn whole(&self, model: &str) -> Option<(Arc<TextModel>, Arc<Llama>)> {
        let text = self.config.models.get(model)?;
        Some((text.clone(), text.llama()?.clone()))
    }
}

/// An active provider to probe: the models it serves whole, and those it serves a layer range
/// of.
#[derive(Debug, Clone)]
struct Target {
    address: Address,
    api_url: String,
    whole: Vec<String>,
    shards: Vec<(String, Range<usize>)>,
}

/// Runs until `shutdown`, probing every epoch that starts while it runs.
pub async fn run(
    config: ProberConfig,
    store: Store,
    mut blocks: broadcast::Receiver<Arc<NewBlock>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let sender = match TxSender::new(&config.rpc_url, config.key.clone(), config.chain_id) {
        Ok(sender) => sender,
        Err(e) => {
            tracing::error!(error = %e, "the prober cannot send reports; not probing");
            return;
        }
    };
    let ctx = Arc::new(Ctx {
        config,
        http: reqwest::Client::new(),
        sender,
        preparing: tokio::sync::Semaphore::new(1),
    });
    let (epoch_tx, _) = watch::channel(0u64);
    let mut current = None;
    loop {
        let Some(block) = crate::heads::next_block(&mut blocks, &mut shutdown).await else {
            return;
        };
        let plan = match plan(&store, &block) {
            Ok(plan) => plan,
            Err(e) => {
                tracing::warn!(error = %e, "the prober cannot read the registry");
                continue;
            }
        };
        let (epoch, last_block, providers, settings) = plan;
        if current == Some(epoch) {
            continue;
        }
        current = Some(epoch);
        epoch_tx.send_replace(epoch);
        if providers.is_empty() {
            continue;
        }
        let remaining = last_block.saturating_sub(block.header.number).max(1);
        let duration = ctx.config.block_interval * remaining as u32;
        let seed =
            keccak256([ctx.config.key.to_bytes().as_slice(), block.hash.as_slice()].concat());
        tokio::spawn(measure_epoch(
            ctx.clone(),
            epoch,
            providers,
            settings,
            seed,
            duration,
            epoch_tx.subscribe(),
        ));
    }
}

type Plan = (u64, u64, Vec<Target>, Settings);

fn plan(store: &Store, _block: &NewBlock) -> Result<Plan, ViewError> {
    let reader = store.reader()?;
    let view = RegistryView::new(&reader)?;
    let epoch = view.epoch()?;
    let mut providers = Vec::new();
    for provider in view.providers()? {
        if provider.status != Status::Active {
            continue;
        }
        let shards: Vec<(String, Range<usize>)> = view
            .shards(&provider)?
            .into_iter()
            .map(|(model, layers)| (model, layers.start as usize..layers.end as usize))
            .collect();
        let whole = provider
            .models
            .into_iter()
            .filter(|model| !shards.iter().any(|(m, _)| m == model))
            .collect();
        providers.push(Target {
            address: provider.address,
            api_url: provider.api_url,
            whole,
            shards,
        });
    }
    let models = view.models()?;
    let settings = Settings {
        jobs: view.param_u64("probeJobs")?.max(1),
        max_tokens: view.param_u64("probeMaxTokens")?.max(1) as usize,
        audit_bps: view.param_u64("auditSampleBps")?,
        margin: view.param_u64("auditMarginMilli")? as f32 / 1000.0,
        units: models.iter().map(|m| (m.id.clone(), m.units)).collect(),
        text: models
            .into_iter()
            .filter(|m| m.category == aicoin_primitives::registry::ModelCategory::Text)
            .map(|m| m.id)
            .collect(),
    };
    Ok((epoch.number, epoch.last_block, providers, settings))
}

async fn measure_epoch(
    ctx: Arc<Ctx>,
    epoch: u64,
    providers: Vec<Target>,
    settings: Settings,
    seed: B256,
    duration: Duration,
    mut epochs: watch::Receiver<u64>,
) {
    let started = std::time::Instant::now();
    let mut generator = JobGenerator::new(seed.0, settings.max_tokens);
    // Jobs go out in the first 40% of the epoch; each may take until 90% of it has passed.
    let until = Instant::now() + duration.mul_f64(0.9);
    let mut tasks = Vec::new();
    for provider in &providers {
        let mut outcomes = Vec::new();
        // Shards are probed only where this validator holds the whole model: their jobs are
        // hidden states it computes.
        let asks: Vec<Ask> = provider
            .whole
            .iter()
            .filter(|m| settings.text.contains(m))
            .map(|m| Ask::Whole(m.clone()))
            .chain(provider.shards.iter().filter_map(|(m, layers)| {
                let (text, llama) = ctx.whole(m).filter(|_| settings.text.contains(m))?;
                Some(Ask::Shard {
                    model: m.clone(),
                    layers: layers.clone(),
                    text,
                    llama,
                })
            }))
            .collect();
        if asks.is_empty() {
            continue;
        }
        for _ in 0..settings.jobs {
            let ask = asks[generator.rng().random_range(0..asks.len())].clone();
            let job = fitting_job(&mut generator, ctx.config.models.get(ask.model()));
            let rng = StdRng::from_seed(generator.rng().random());
            let delay = duration.mul_f64(generator.rng().random_range(0.0..0.4));
            let to = (provider.address, provider.api_url.clone());
            outcomes.push(tokio::spawn(probe(
                ctx.clone(),
                to,
                ask,
                (job, rng),
                delay,
                until,
            )));
        }
        tasks.push((provider.address, outcomes));
    }
    let mut measurements = Vec::new();
    let mut audit_time = Duration::ZERO;
    for (address, outcomes) in tasks {
        let mut results = Vec::new();
        for task in outcomes {
            if let Ok(outcome) = task.await {
                results.push(outcome);
            }
        }
        let (measurement, spent) = measure(&ctx, address, results, &settings, &mut generator).await;
        audit_time += spent;
        measurements.push(measurement);
    }
    tracing::info!(
        epoch,
        providers = measurements.len(),
        audit_seconds = audit_time.as_secs_f64(),
        seconds = started.elapsed().as_secs_f64(),
        "probed the providers"
    );
    // The report is for a finished epoch: wait for the next one to start.
    if epochs.wait_for(|current| *current > epoch).await.is_err() {
        return;
    }
    submit(&ctx, epoch, measurements).await;
}

/// The next job whose prompt and answer fit the model's context (as the auditor's copy
/// tokenizes it; any job when the auditor lacks the model).
fn fitting_job(generator: &mut JobGenerator, model: Option<&Arc<TextModel>>) -> Job {
    let fits = |job: &Job, model: &TextModel| {
        model
            .chat_prompt(&job.chat_messages())
            .and_then(|prompt| model.encode(&prompt))
            .is_ok_and(|ids| ids.len() + job.max_tokens <= model.context_length)
    };
    let mut job = generator.next_job();
    if let Some(model) = model {
        for _ in 0..32 {
            if fits(&job, model) {
                break;
            }
            job = generator.next_job();
        }
    }
    job
}

/// A provider's measurement from its jobs' outcomes, auditing a sample; returns it with the
/// time the audits took (CPU-bound: about the validator CPU-seconds spent).
async fn measure(
    ctx: &Arc<Ctx>,
    provider: Address,
    results: Vec<Outcome>,
    settings: &Settings,
    generator: &mut JobGenerator,
) -> (IComputeRegistry::Measurement, Duration) {
    let mut jobs = 0u32;
    let mut answered: Vec<(Job, String, Reply)> = Vec::new();
    for outcome in results {
        if let Err(e) = &outcome.reply
            && e.is_ours()
        {
            tracing::warn!(%provider, error = %e, "cannot run a probe; it does not count");
            continue;
        }
        jobs += 1;
        match outcome.reply {
            Ok(Reply::Whole(answer)) if answer.token_ids.is_empty() => {
                tracing::debug!(%provider, "answer without token ids")
            }
            Ok(reply) => answered.push((outcome.job, outcome.model, reply)),
            Err(e) => tracing::info!(%provider, error = %e, "a probe failed"),
        }
    }
    let mut ttfts: Vec<u64> = answered
        .iter()
        .map(|(_, _, reply)| reply.ttft().as_millis() as u64)
        .collect();
    let ttft = aicoin_modules::registry::score::median(&mut ttfts) as u32;
    // Model-adjusted throughput: tokens/s x the model's units, x 1,000.
    let (mut tokens, mut seconds, mut unit_tokens) = (0f64, 0f64, 0f64);
    for (_, model, reply) in &answered {
        let (done, took) = reply.work();
        tokens += done;
        seconds += took;
        unit_tokens += done * settings.units.get(model).copied().unwrap_or(1) as f64;
    }
    let rate = if seconds > 0.0 {
        (unit_tokens / seconds * 1000.0) as u64
    } else {
        0
    };

    // The sample: auditSampleBps of the answers the auditor has the model for, at least one.
    let mut auditable: Vec<usize> = (0..answered.len())
        .filter(|&i| ctx.config.models.contains_key(&answered[i].1))
        .collect();
    auditable.shuffle(generator.rng());
    let sample = ((auditable.len() as u64 * settings.audit_bps).div_ceil(10_000) as usize)
        .max(1)
        .min(auditable.len());
    let (mut audited, mut failed) = (0u32, 0u32);
    let mut spent = Duration::ZERO;
    let mut answered: Vec<Option<(Job, String, Reply)>> = answered.into_iter().map(Some).collect();
    for &i in &auditable[..sample] {
        let Some((job, model_id, reply)) = answered[i].take() else {
            continue;
        };
        let Some(model) = ctx.config.models.get(&model_id).cloned() else {
            continue;
        };
        let margin = settings.margin;
        let verdict = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let verdict = match reply {
                Reply::Whole(answer) => {
                    let prompt = model
                        .chat_prompt(&job.chat_messages())
                        .and_then(|p| model.encode(&p))?;
                    let (claimed, finish) = (&answer.token_ids, &answer.finish_reason);
                    audit::audit(&model, &prompt, claimed, finish, job.max_tokens, margin)
                }
                Reply::Shard {
                    job: shard_job,
                    answer,
                    whole,
                    ..
                } => shard_probe::audit(&whole, &shard_job, &answer, margin),
            };
            verdict.map(|v| (v, started.elapsed()))
        })
        .await;
        match verdict {
            Ok(Ok((verdict, took))) => {
                spent += took;
                audited += 1;
                if !verdict.passed {
                    failed += 1;
                    tracing::warn!(%provider, model = %model_id, reason = ?verdict.failure, "an answer failed its audit");
                }
            }
            Ok(Err(e)) => tracing::warn!(%provider, error = %e, "cannot audit an answer"),
            Err(e) => tracing::warn!(%provider, error = %e, "the audit crashed"),
        }
    }
    let measurement = IComputeRegistry::Measurement {
        provider,
        jobs,
        answered: answered.len() as u32,
        audited,
        auditFailed: failed,
        ttftMs: ttft,
        tokens: tokens.round() as u64,
        rate,
    };
    (measurement, spent)
}

/// Sends the report for `epoch`, retrying a few times (a leader change can drop one send).
async fn submit(ctx: &Ctx, epoch: u64, measurements: Vec<IComputeRegistry::Measurement>) {
    let providers = measurements.len();
    let call = IComputeRegistry::submitReportCall {
        epoch,
        measurements,
    };
    let gas = 200_000 + 80_000 * providers as u64;
    let data = call.abi_encode();
    for attempt in 1..=3 {
        match ctx
            .sender
            .send(REGISTRY_ADDRESS, data.clone().into(), U256::ZERO, gas)
            .await
        {
            Ok(hash) => {
                tracing::info!(epoch, providers, %hash, "submitted the epoch's report");
                return;
            }
            Err(e) => {
                tracing::warn!(epoch, attempt, error = %e, "cannot submit the report");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
