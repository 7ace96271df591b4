//! One job of a validator's epoch: a chat request to a model a provider serves whole, or hidden
//! states to a layer range it serves as a pipeline shard ([`shard_probe`]); what came back, and
//! the work it stands for in tokens of the whole model.

use std::{ops::Range, sync::Arc, time::Duration};

use aicoin_inference::{TextModel, llama::Llama};
use alloy_primitives::Address;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::Ctx;
use crate::{
    client::{self, Answer},
    jobs::Job,
    shard_probe::{self, ShardAnswer, ShardJob, ShardProbeError},
};

/// The longest a job may take, whatever the epoch's length.
const MAX_JOB_TIME: Duration = Duration::from_secs(60);
/// The shortest time a job is given (a short epoch on a loaded machine still gets answers).
const MIN_JOB_TIME: Duration = Duration::from_secs(10);

/// What a provider answered to one job.
pub(super) enum Reply {
    /// A chat answer of a model it serves whole.
    Whole(Answer),
    /// The hidden states of a shard: `share` of the model's layers, audited on `whole`.
    Shard {
        job: ShardJob,
        answer: ShardAnswer,
        share: f64,
        whole: Arc<Llama>,
    },
}

impl Reply {
    pub(super) fn ttft(&self) -> Duration {
        match self {
            Self::Whole(answer) => answer.ttft,
            Self::Shard { answer, .. } => answer.ttft,
        }
    }

    /// The work done, in tokens of the whole model, and the seconds it took at the answer's
    /// decode rate.
    pub(super) fn work(&self) -> (f64, f64) {
        match self {
            Self::Whole(answer) => {
                let tokens = answer.token_ids.len() as f64;
                (tokens, tokens / answer.tokens_per_second().max(1e-6))
            }
            Self::Shard { answer, share, .. } => {
                let steps = answer.decoded.max(1) as f64;
                (steps * share, steps / answer.tokens_per_second().max(1e-6))
            }
        }
    }
}

/// Why a job got no answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum ProbeError {
    #[error(transparent)]
    Whole(#[from] client::JobError),
    #[error(transparent)]
    Shard(#[from] ShardProbeError),
    #[error("the probe's task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ProbeError {
    /// The validator failed, not the provider: the job does not count.
    pub(super) fn is_ours(&self) -> bool {
        matches!(self, Self::Shard(ShardProbeError::Model(_)) | Self::Task(_))
    }
}

/// One job's outcome.
pub(super) struct Outcome {
    pub job: Job,
    pub model: String,
    pub reply: Result<Reply, ProbeError>,
}

/// What one job asks of a provider.
#[derive(Clone)]
pub(super) enum Ask {
    Whole(String),
    /// A shard's layers of a model, and this validator's whole copy of it.
    Shard {
        model: String,
        layers: Range<usize>,
        text: Arc<TextModel>,
        llama: Arc<Llama>,
    },
}

impl Ask {
    pub(super) fn model(&self) -> &str {
        match self {
            Self::Whole(model) | Self::Shard { model, .. } => model,
        }
    }
}

/// The time a job sent now has: until `until`, within [`MIN_JOB_TIME`] and [`MAX_JOB_TIME`].
fn time_left(until: Instant) -> Duration {
    until
        .saturating_duration_since(Instant::now())
        .clamp(MIN_JOB_TIME, MAX_JOB_TIME)
}

/// Runs `job` as `ask` on provider `to` after `delay`, with the time left until `until`.
pub(super) async fn probe(
    ctx: Arc<Ctx>,
    (address, api_url): (Address, String),
    ask: Ask,
    (job, mut rng): (Job, StdRng),
    delay: Duration,
    until: Instant,
) -> Outcome {
    let to = client::To {
        address,
        api_url: &api_url,
    };
    let model = ask.model().to_string();
    let reply = match ask {
        Ask::Whole(model) => {
            tokio::time::sleep(delay).await;
            let timeout = time_left(until);
            client::run_job(&ctx.http, &ctx.config.key, to, &model, &job, timeout)
                .await
                .map(Reply::Whole)
                .map_err(ProbeError::from)
        }
        Ask::Shard {
            model,
            layers,
            text,
            llama,
        } => {
            tokio::time::sleep(delay).await;
            let (messages, max_tokens) = (job.chat_messages(), job.max_tokens);
            let share = layers.len() as f64 / llama.config.layers.max(1) as f64;
            let auditor = llama.clone();
            // The semaphore is never closed: a turn always comes.
            let turn = ctx.preparing.acquire().await.ok();
            let prepared = tokio::task::spawn_blocking(move || {
                let prompt = text
                    .chat_prompt(&messages)
                    .and_then(|prompt| text.encode(&prompt))?;
                ShardJob::prepare(&llama, layers, &prompt, max_tokens, &mut rng)
            })
            .await;
            drop(turn);
            match prepared {
                Ok(Ok(shard_job)) => {
                    let timeout = time_left(until);
                    shard_probe::run(&ctx.config.key, to, &model, &shard_job, timeout)
                        .await
                        .map(|answer| Reply::Shard {
                            job: shard_job,
                            answer,
                            share,
                            whole: auditor,
                        })
                        .map_err(ProbeError::from)
                }
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(e.into()),
            }
        }
    };
    Outcome { job, model, reply }
}
