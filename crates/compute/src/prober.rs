//! A validator's measurement of every provider, epoch by epoch: when an epoch starts, it draws
//! `probeJobs` challenge jobs per active provider (from its key and the block hash), sends each
//! at a random moment of the first 40% of the epoch, gives it until 90% of the epoch has passed
//! (at least 10 s, at most 60 s), and records what came back; it audits a
//! sample of the answers (`auditSampleBps`, at least one per provider) on its own copy of the
//! model; once the epoch has ended it submits its report transaction (`submitReport`).
//!
//! A job counts as answered when a well-formed stream of token ids came back in time; an answer
//! whose audit fails still counts as answered, and the failure is reported.

use std::{collections::HashMap, sync::Arc, time::Duration};

use aicoin_inference::TextModel;
use aicoin_modules::registry::{IComputeRegistry, state::Provider};
use aicoin_primitives::{NewBlock, modules::REGISTRY_ADDRESS};
use aicoin_storage::Store;
use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolCall;
use rand::{Rng, seq::SliceRandom};
use tokio::sync::{broadcast, watch};

use crate::{
    audit,
    client::{self, Answer},
    jobs::{Job, JobGenerator},
    tx::TxSender,
    view::{RegistryView, Status, ViewError},
};

/// The longest a job may take, whatever the epoch's length.
const MAX_JOB_TIME: Duration = Duration::from_secs(60);
/// The shortest time a job is given (a short epoch on a loaded machine still gets answers).
const MIN_JOB_TIME: Duration = Duration::from_secs(10);

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

type Plan = (u64, u64, Vec<Provider>, Settings);

fn plan(store: &Store, _block: &NewBlock) -> Result<Plan, ViewError> {
    let reader = store.reader()?;
    let view = RegistryView::new(&reader)?;
    let epoch = view.epoch()?;
    // Models a provider serves as a pipeline shard answer no request alone: probed are the
    // models it serves whole.
    let mut providers: Vec<Provider> = view
        .providers()?
        .into_iter()
        .filter(|p| p.status == Status::Active)
        .collect();
    for provider in &mut providers {
        let shards = view.shards(provider)?;
        provider
            .models
            .retain(|model| !shards.iter().any(|(m, _)| m == model));
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

/// One job's outcome.
struct Outcome {
    job: Job,
    model: String,
    answer: Result<Answer, client::JobError>,
}

async fn measure_epoch(
    ctx: Arc<Ctx>,
    epoch: u64,
    providers: Vec<Provider>,
    settings: Settings,
    seed: B256,
    duration: Duration,
    mut epochs: watch::Receiver<u64>,
) {
    let started = std::time::Instant::now();
    let mut generator = JobGenerator::new(seed.0, settings.max_tokens);
    // Jobs go out in the first 40% of the epoch; each may take until 90% of it has passed.
    let deadline = duration.mul_f64(0.9);
    let mut tasks = Vec::new();
    for provider in &providers {
        let mut outcomes = Vec::new();
        let text: Vec<&String> = provider
            .models
            .iter()
            .filter(|m| settings.text.contains(m))
            .collect();
        if text.is_empty() {
            continue;
        }
        for _ in 0..settings.jobs {
            let model = text[generator.rng().random_range(0..text.len())].clone();
            let job = fitting_job(&mut generator, ctx.config.models.get(&model));
            let delay = duration.mul_f64(generator.rng().random_range(0.0..0.4));
            let timeout = deadline
                .saturating_sub(delay)
                .clamp(MIN_JOB_TIME, MAX_JOB_TIME);
            let ctx = ctx.clone();
            let (url, address) = (provider.api_url.clone(), provider.address);
            outcomes.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let to = client::To {
                    address,
                    api_url: &url,
                };
                let answer =
                    client::run_job(&ctx.http, &ctx.config.key, to, &model, &job, timeout).await;
                Outcome { job, model, answer }
            }));
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
    let jobs = results.len() as u32;
    let mut answered: Vec<(Job, String, Answer)> = Vec::new();
    for outcome in results {
        match outcome.answer {
            Ok(answer) if !answer.token_ids.is_empty() => {
                answered.push((outcome.job, outcome.model, answer))
            }
            Ok(_) => tracing::debug!(%provider, "answer without token ids"),
            Err(e) => tracing::info!(%provider, error = %e, "a probe failed"),
        }
    }
    let mut ttfts: Vec<u64> = answered
        .iter()
        .map(|(_, _, a)| a.ttft.as_millis() as u64)
        .collect();
    let ttft = aicoin_modules::registry::score::median(&mut ttfts) as u32;
    let tokens: u64 = answered
        .iter()
        .map(|(_, _, a)| a.token_ids.len() as u64)
        .sum();
    // Model-adjusted throughput: tokens/s x the model's units, x 1,000.
    let seconds: f64 = answered
        .iter()
        .map(|(_, _, a)| a.token_ids.len() as f64 / a.tokens_per_second().max(1e-6))
        .sum();
    let unit_tokens: f64 = answered
        .iter()
        .map(|(_, model, a)| {
            a.token_ids.len() as f64 * settings.units.get(model).copied().unwrap_or(1) as f64
        })
        .sum();
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
    for &i in &auditable[..sample] {
        let (job, model_id, answer) = &answered[i];
        let Some(model) = ctx.config.models.get(model_id).cloned() else {
            continue;
        };
        let (messages, claimed, finish) = (
            job.chat_messages(),
            answer.token_ids.clone(),
            answer.finish_reason.clone(),
        );
        let (max_tokens, margin) = (job.max_tokens, settings.margin);
        let verdict = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let prompt = model
                .chat_prompt(&messages)
                .and_then(|p| model.encode(&p))?;
            let verdict = audit::audit(&model, &prompt, &claimed, &finish, max_tokens, margin);
            verdict.map(|v| (v, started.elapsed()))
        })
        .await;
        match verdict {
            Ok(Ok((verdict, took))) => {
                spent += took;
                audited += 1;
                if !verdict.passed {
                    failed += 1;
                    tracing::warn!(%provider, reason = ?verdict.failure, "an answer failed its audit");
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
        tokens,
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
