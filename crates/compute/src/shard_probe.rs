//! A validator's probe of a pipeline shard: the layers `a..b` of a model that a provider serves
//! as a shard, measured and audited as a whole model's answers are ([`client`](crate::client),
//! [`audit`](crate::audit)).
//!
//! - **The job.** The validator holds the whole model. It turns the job's prompt and a
//!   continuation into the hidden states entering layer `a` (its own embedding and layers
//!   `0..a`, [`ShardJob::prepare`]). The continuation's tokens are drawn at random from the
//!   vocabulary: a shard sees hidden states only, and its work on them does not depend on which
//!   tokens they came from.
//! - **The run.** It opens a session on the provider's shard as a gateway's coordinator does
//!   ([`aicoin_shard::link`]), sends the prompt in generation's prefill chunks
//!   ([`PREFILL_CHUNK`]), then the continuation a token per step ([`run`]). The time from
//!   opening the session to the prompt's last chunk is the answer's TTFT (shown, not scored);
//!   the steps after it give its decode rate. Each step is a round trip, as it is in a
//!   pipeline, where the next token needs the last one's logits.
//! - **The audit.** It recomputes layers `a..b` on the same input, and runs the rest of the
//!   model (layers `b..n` and the head) over its own output and over the shard's ([`audit`]).
//!   At every position, the token the shard's hidden states lead to must be the validator's
//!   own argmax there, or trail its best logit by at most the margin: the whole-model audit's
//!   rule. A shard that skips layers, runs other weights or sends noise changes what its hidden
//!   states lead to. The head runs [`HEAD_ROWS`] positions at a time, and the audit stops at the
//!   first failure.

use std::{
    ops::Range,
    sync::Arc,
    time::{Duration, Instant},
};

use aicoin_inference::{
    InferenceError, PREFILL_CHUNK,
    llama::{Llama, argmax_rows},
};
use aicoin_shard::link::{Link, LinkError};
use alloy_signer_local::PrivateKeySigner;
use candle_core::{DType, Tensor};
use rand::Rng;

use crate::{
    audit::{self, Verdict},
    client::To,
};

/// Positions the audit's head runs at a time: its logits are this many rows of the vocabulary
/// (49,152 floats each for SmolLM2), not the whole answer's.
const HEAD_ROWS: usize = 32;

/// Why a shard probe got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ShardProbeError {
    #[error("the registry lists layers {layers:?} of a model of {model_layers}")]
    NoSuchLayers {
        layers: Range<usize>,
        model_layers: usize,
    },
    #[error("the shard failed: {0}")]
    Link(#[from] LinkError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the auditor's model failed: {0}")]
    Model(#[from] InferenceError),
}

/// One probe of a shard: the tokens' hidden states entering its first layer.
#[derive(Debug, Clone)]
pub struct ShardJob {
    pub layers: Range<usize>,
    /// How many of the tokens are the prompt (sent in prefill chunks); the rest are sent one
    /// per step.
    pub prompt: usize,
    /// The model's hidden size.
    width: usize,
    /// A row of `width` floats per token.
    input: Vec<f32>,
}

impl ShardJob {
    /// The job of `prompt` and `continuation` random tokens for the shard of `layers` of
    /// `model` (the validator's whole copy). Blocking: it runs layers `0..layers.start`.
    pub fn prepare(
        model: &Llama,
        layers: Range<usize>,
        prompt: &[u32],
        continuation: usize,
        rng: &mut impl Rng,
    ) -> Result<Self, ShardProbeError> {
        let config = &model.config;
        if layers.is_empty() || layers.end > config.layers {
            return Err(ShardProbeError::NoSuchLayers {
                layers,
                model_layers: config.layers,
            });
        }
        let mut tokens = prompt.to_vec();
        tokens.extend((0..continuation).map(|_| rng.random_range(0..config.vocab as u32)));
        let input = (|| {
            let ids = Tensor::new(tokens.as_slice(), model.device())?.unsqueeze(0)?;
            let hidden = model.prefill_span(&model.embed(&ids)?, 0..layers.start)?;
            Ok::<_, InferenceError>(hidden.flatten_all()?.to_vec1::<f32>()?)
        })()?;
        Ok(Self {
            layers,
            prompt: prompt.len(),
            width: config.hidden,
            input,
        })
    }

    /// Tokens the job sends.
    fn tokens(&self) -> usize {
        self.input.len() / self.width.max(1)
    }
}

/// What a shard answered to a [`ShardJob`].
#[derive(Debug, Clone)]
pub struct ShardAnswer {
    /// From opening the session to the answer to the prompt's last chunk.
    pub ttft: Duration,
    /// The continuation's steps, one token each.
    pub decode: Duration,
    /// Tokens of the continuation.
    pub decoded: usize,
    /// The hidden states leaving the shard's last layer, a row per token.
    pub output: Vec<f32>,
}

impl ShardAnswer {
    /// The shard's decode steps per second, round trips included.
    pub fn tokens_per_second(&self) -> f64 {
        self.decoded as f64 / self.decode.as_secs_f64().max(1e-6)
    }
}

/// Runs `job` on the shard of `model` that provider `to` serves, signed with `key`, within
/// `timeout`.
pub async fn run(
    key: &PrivateKeySigner,
    to: To<'_>,
    model: &str,
    job: &ShardJob,
    timeout: Duration,
) -> Result<ShardAnswer, ShardProbeError> {
    let (tokens, width, input) = (job.tokens(), job.width, &job.input);
    let exchange = async {
        let opened = Instant::now();
        let session = rand::random::<u64>();
        let mut link = Link::open(
            key,
            (to.address, to.api_url),
            model,
            (session, tokens),
            width,
            timeout,
        )
        .await?;
        let mut output = Vec::with_capacity(input.len());
        let steps = (0..job.prompt)
            .step_by(PREFILL_CHUNK)
            .map(|start| (start, PREFILL_CHUNK.min(job.prompt - start)))
            .chain((job.prompt..tokens).map(|start| (start, 1)));
        let mut ttft = None;
        for (start, count) in steps {
            let rows = &input[start * width..(start + count) * width];
            output.extend(link.step(rows, start, count, timeout).await?);
            if start + count == job.prompt {
                ttft = Some(opened.elapsed());
            }
        }
        let ttft = ttft.unwrap_or_default();
        Ok::<_, ShardProbeError>(ShardAnswer {
            ttft,
            decode: opened.elapsed().saturating_sub(ttft),
            decoded: tokens - job.prompt,
            output,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ShardProbeError::Timeout(timeout))?
}

/// Audits `answer` to `job` against `model` (the validator's whole copy), with a tolerance of
/// `margin` logits at every position. Blocking: it runs the whole model about twice.
pub fn audit(
    model: &Arc<Llama>,
    job: &ShardJob,
    answer: &ShardAnswer,
    margin: f32,
) -> Result<Verdict, InferenceError> {
    let (tokens, width) = (job.tokens(), job.width);
    if answer.output.len() != tokens * width {
        return Ok(Verdict::fail(
            0,
            0.0,
            format!(
                "{} floats of hidden states for {tokens} tokens of {width}",
                answer.output.len()
            ),
        ));
    }
    if let Some(at) = answer.output.iter().position(|x| !x.is_finite()) {
        return Ok(Verdict::fail(
            0,
            0.0,
            format!("hidden state {at} is not a finite number"),
        ));
    }
    let device = model.device();
    let rest = job.layers.end..model.config.layers;
    let input = Tensor::from_slice(&job.input, (1, tokens, width), device)?;
    let own = model.prefill_span(&input, job.layers.clone())?;
    let own = model.prefill_span(&own, rest.clone())?;
    let claimed = Tensor::from_slice(&answer.output, (1, tokens, width), device)?;
    let claimed = model.prefill_span(&claimed, rest)?;
    let chunks = (0..tokens)
        .step_by(HEAD_ROWS)
        .map(move |start| (start, HEAD_ROWS.min(tokens - start)));
    let logits =
        |hidden: &Tensor, (start, rows): (usize, usize)| -> Result<Tensor, InferenceError> {
            let hidden = hidden.narrow(1, start, rows)?;
            Ok(model.head(&hidden)?.squeeze(0)?.to_dtype(DType::F32)?)
        };
    let mut led_to = Vec::with_capacity(tokens);
    for chunk in chunks.clone() {
        led_to.extend(argmax_rows(&logits(&claimed, chunk)?)?);
    }
    // The validator's own logits, a chunk at a time, as the check asks for them.
    let own_rows =
        chunks.flat_map(
            |chunk| match logits(&own, chunk).and_then(|l| Ok(l.to_vec2::<f32>()?)) {
                Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            },
        );
    audit::check(&led_to, own_rows, margin)
}

#[cfg(test)]
mod tests {
    use aicoin_inference::testing::write_tiny_llama;
    use aicoin_shard::{ShardConfig, local::LocalShard};
    use alloy_primitives::Address;
    use candle_core::Device;
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    /// The chain's default `auditMarginMilli`.
    const MARGIN: f32 = 1.0;

    const PROMPT: [u32; 9] = [40, 71, 12, 99, 5, 230, 17, 8, 64];

    struct Fixture {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        whole: Arc<Llama>,
        runtime: tokio::runtime::Runtime,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tiny.gguf");
            write_tiny_llama(&path, 5).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            Self {
                whole: Arc::new(whole(&path)),
                path,
                _dir: dir,
                runtime,
            }
        }

        /// A provider serving `layers` of the model in the GGUF at `path`.
        fn shard(&self, path: &std::path::Path, layers: Range<usize>) -> LocalShard {
            let layers = Llama::layers_from_file(path, &Device::Cpu, layers).unwrap();
            let provider = Address::repeat_byte(7);
            LocalShard::start("tiny", Arc::new(layers), provider, ShardConfig::default()).unwrap()
        }

        fn job(&self, layers: Range<usize>) -> ShardJob {
            let mut rng = StdRng::seed_from_u64(1);
            ShardJob::prepare(&self.whole, layers, &PROMPT, 6, &mut rng).unwrap()
        }

        fn run(&self, shard: &LocalShard, job: &ShardJob) -> ShardAnswer {
            let key = PrivateKeySigner::random();
            let to = To {
                address: shard.shard.provider,
                api_url: &shard.shard.api_url,
            };
            let probe = run(&key, to, "tiny", job, Duration::from_secs(30));
            self.runtime.block_on(probe).unwrap()
        }
    }

    /// The whole model with its embedding and head, as a validator loads it.
    fn whole(path: &std::path::Path) -> Llama {
        let mut file = std::fs::File::open(path).unwrap();
        let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
        Llama::from_gguf(&content, &mut file, &Device::Cpu, 0..2).unwrap()
    }

    #[test]
    fn an_honest_shard_passes_at_every_position_of_every_split() {
        let fixture = Fixture::new();
        for layers in [0..1, 1..2, 0..2] {
            let shard = fixture.shard(&fixture.path, layers.clone());
            let job = fixture.job(layers.clone());
            let answer = fixture.run(&shard, &job);
            assert_eq!(answer.decoded, 6);
            assert_eq!(
                answer.output.len(),
                (PROMPT.len() + 6) * fixture.whole.config.hidden
            );
            assert!(answer.tokens_per_second() > 0.0);
            let verdict = audit(&fixture.whole, &job, &answer, 0.05).unwrap();
            assert!(verdict.passed, "layers {layers:?}: {verdict:?}");
            assert_eq!(verdict.checked, PROMPT.len() + 6);
            assert!(verdict.worst_gap < 1e-3, "{verdict:?}");
        }
    }

    #[test]
    fn a_shard_that_skips_its_layers_or_runs_other_weights_fails() {
        let fixture = Fixture::new();
        let job = fixture.job(0..1);
        let honest = fixture.run(&fixture.shard(&fixture.path, 0..1), &job);

        let mut lazy = honest.clone();
        lazy.output = job.input.clone();
        let verdict = audit(&fixture.whole, &job, &lazy, MARGIN).unwrap();
        assert!(!verdict.passed, "a shard returning its input passed");

        let other = fixture._dir.path().join("other.gguf");
        write_tiny_llama(&other, 6).unwrap();
        let forged = fixture.run(&fixture.shard(&other, 0..1), &job);
        let verdict = audit(&fixture.whole, &job, &forged, MARGIN).unwrap();
        assert!(!verdict.passed, "another model's layer passed");

        let mut noise = honest.clone();
        noise.output[3] = f32::NAN;
        assert!(!audit(&fixture.whole, &job, &noise, MARGIN).unwrap().passed);
        noise.output.pop();
        assert!(!audit(&fixture.whole, &job, &noise, MARGIN).unwrap().passed);
    }

    #[test]
    fn layers_the_model_does_not_have_are_no_job() {
        let fixture = Fixture::new();
        let mut rng = StdRng::seed_from_u64(1);
        for layers in [1..3, 1..1] {
            assert!(matches!(
                ShardJob::prepare(&fixture.whole, layers, &PROMPT, 2, &mut rng),
                Err(ShardProbeError::NoSuchLayers { .. })
            ));
        }
    }

    #[test]
    fn a_dead_shard_is_a_failed_probe_not_a_hang() {
        let fixture = Fixture::new();
        let job = fixture.job(0..1);
        let mut shard = fixture.shard(&fixture.path, 0..1);
        shard.kill();
        let key = PrivateKeySigner::random();
        let to = To {
            address: shard.shard.provider,
            api_url: &shard.shard.api_url,
        };
        let probe = run(&key, to, "tiny", &job, Duration::from_secs(5));
        assert!(fixture.runtime.block_on(probe).is_err());
    }
}

/// On SmolLM2-135M from `$AICOIN_MODELS_DIR` (`scripts/test.sh` runs them), at the chain's
/// default margin.
#[cfg(test)]
mod real {
    use aicoin_inference::{Message, TextModel, WeightFormat};
    use aicoin_shard::{ShardConfig, local::LocalShard};
    use alloy_primitives::Address;
    use candle_core::Device;
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    const MARGIN: f32 = 1.0;

    fn model_path() -> std::path::PathBuf {
        let models =
            std::env::var("AICOIN_MODELS_DIR").expect("AICOIN_MODELS_DIR names the models");
        std::path::Path::new(&models).join("smollm2-135m-instruct/model.gguf")
    }

    /// The verdict on what a provider serving `served` answers for a job on `claimed`.
    fn verdict(whole: &TextModel, claimed: Range<usize>, served: Range<usize>) -> Verdict {
        let llama = whole.llama().unwrap().clone();
        let messages = [Message {
            role: "user".into(),
            content: "Explain in two sentences why the sky is blue.".into(),
        }];
        let prompt = whole
            .encode(&whole.chat_prompt(&messages).unwrap())
            .unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        let job = ShardJob::prepare(&llama, claimed, &prompt, 16, &mut rng).unwrap();
        let layers = Llama::layers_from_file(&model_path(), &Device::Cpu, served).unwrap();
        let provider = Address::repeat_byte(3);
        let shard = LocalShard::start(
            "smollm2",
            Arc::new(layers),
            provider,
            ShardConfig::default(),
        )
        .unwrap();
        let to = To {
            address: provider,
            api_url: &shard.shard.api_url,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let key = PrivateKeySigner::random();
        let answer = runtime
            .block_on(run(&key, to, "smollm2", &job, Duration::from_secs(60)))
            .unwrap();
        audit(&llama, &job, &answer, MARGIN).unwrap()
    }

    #[test]
    #[ignore = "needs the fetched SmolLM2 model (scripts/test.sh runs it)"]
    fn real_smollm2_honest_shards_pass_and_one_missing_a_layer_fails() {
        let whole = TextModel::load(
            &model_path(),
            "smollm2",
            &Device::Cpu,
            WeightFormat::default(),
        )
        .unwrap();
        for layers in [0..10, 10..20, 20..30] {
            let honest = verdict(&whole, layers.clone(), layers.clone());
            assert!(honest.passed, "layers {layers:?}: {honest:?}");
        }
        for (claimed, served) in [(10..20, 10..19), (10..20, 11..20), (20..30, 20..29)] {
            let short = verdict(&whole, claimed.clone(), served.clone());
            assert!(
                !short.passed,
                "{served:?} passed for {claimed:?}: {short:?}"
            );
        }
    }
}
