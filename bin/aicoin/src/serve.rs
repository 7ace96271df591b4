//! The inference API's flags, shared by `aicoin node` (which serves the API beside the chain
//! when it has models) and `aicoin serve` (the API alone), and `aicoin serve` itself.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
};

use aicoin_api::ApiConfig;
use aicoin_inference::{InferenceMetrics, SchedulerConfig, WeightFormat};
use clap::{Args, ValueEnum};
use eyre::bail;
use prometheus_client::registry::Registry;
use serde::Deserialize;

use crate::model::{ModelsDir, resolve};

/// The API's port when none is given.
pub const DEFAULT_API_PORT: u16 = 8080;

/// The context served when none is given: SmolLM2's whole context, and a KV cache of ~380 MB
/// per sequence for it.
pub const DEFAULT_CONTEXT_LENGTH: usize = 8192;

/// How GGUF weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weights {
    /// Re-quantize to Q8_0 the formats without a fast kernel: Q5_0, Q5_1, and Q4_1 outside the
    /// llama family (which runs Q4_1 on our own kernel, faster than Q8_0 and in less memory).
    Fast,
    /// Exactly as the file has them.
    AsShipped,
}

impl Weights {
    pub fn name(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::AsShipped => "as-shipped",
        }
    }
}

impl From<Weights> for WeightFormat {
    fn from(w: Weights) -> Self {
        match w {
            Weights::Fast => WeightFormat::FastKernels,
            Weights::AsShipped => WeightFormat::AsShipped,
        }
    }
}

/// Which models to run and how (also keys of `aicoin node --config`).
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ModelArgs {
    /// A model to serve: a fetched model's name (`smollm2`, `all-minilm-l6-v2`), a GGUF file or
    /// a model directory; repeat or comma-separate for several [default: every model in the
    /// models directory].
    #[arg(long = "model", env = "AICOIN_MODEL", value_delimiter = ',')]
    #[serde(default)]
    pub model: Vec<String>,
    /// Where fetched models are [default: <--data-dir>/models with --data-dir, else
    /// ~/.local/share/aicoin/models].
    #[arg(long, env = "AICOIN_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// Where models run: cpu, cuda or cuda:N (a build with `--features cuda`) [default: cpu].
    #[arg(long, env = "AICOIN_DEVICE")]
    pub device: Option<String>,
    /// How GGUF weights are held [default: fast].
    #[arg(long, env = "AICOIN_WEIGHTS", value_enum)]
    pub weights: Option<Weights>,
    /// Longest context (prompt and answer, in tokens) run, below a model's own where that is
    /// larger: each running sequence's KV cache can grow to it [default: 8192].
    #[arg(long, env = "AICOIN_CONTEXT_LENGTH")]
    pub context_length: Option<usize>,
}

impl ModelArgs {
    pub fn models_dir(&self, data_dir: Option<&Path>) -> ModelsDir {
        ModelsDir {
            data_dir: data_dir.map(Path::to_path_buf),
            models_dir: self.models_dir.clone(),
        }
    }

    pub fn device(&self) -> &str {
        self.device.as_deref().unwrap_or("cpu")
    }

    pub fn weight_format(&self) -> WeightFormat {
        self.weights.map(Into::into).unwrap_or_default()
    }

    pub fn max_context(&self) -> usize {
        self.context_length.unwrap_or(DEFAULT_CONTEXT_LENGTH)
    }

    /// These arguments, with gaps filled from `file`.
    pub fn or(self, file: Self) -> Self {
        Self {
            model: if self.model.is_empty() {
                file.model
            } else {
                self.model
            },
            models_dir: self.models_dir.or(file.models_dir),
            device: self.device.or(file.device),
            weights: self.weights.or(file.weights),
            context_length: self.context_length.or(file.context_length),
        }
    }
}

/// The inference API's flags (also keys of `aicoin node --config`).
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ApiArgs {
    /// Address the inference API binds [default: 127.0.0.1].
    #[arg(long, env = "AICOIN_API_HOST")]
    pub api_host: Option<IpAddr>,
    /// Inference API port; 0 picks a free one [default: 8080].
    #[arg(long, env = "AICOIN_API_PORT")]
    pub api_port: Option<u16>,
    /// Requests that may wait for a model before more are refused with 429 [default: 64].
    #[arg(long, env = "AICOIN_API_MAX_QUEUE")]
    pub api_max_queue: Option<usize>,
    /// Sequences one model generates at once, their steps interleaved [default: 8].
    #[arg(long, env = "AICOIN_API_MAX_ACTIVE")]
    pub api_max_active: Option<usize>,
}

impl ApiArgs {
    /// These arguments, with gaps filled from `file`.
    pub fn or(self, file: Self) -> Self {
        Self {
            api_host: self.api_host.or(file.api_host),
            api_port: self.api_port.or(file.api_port),
            api_max_queue: self.api_max_queue.or(file.api_max_queue),
            api_max_active: self.api_max_active.or(file.api_max_active),
        }
    }

    /// What to serve: the `--model`s given (each must exist), else every fetched model; `None`
    /// when there is none.
    pub fn config(
        &self,
        models: &ModelArgs,
        data_dir: Option<&Path>,
    ) -> eyre::Result<Option<ApiConfig>> {
        let found = resolve(&models.models_dir(data_dir), &models.model)?;
        if found.is_empty() {
            return Ok(None);
        }
        let defaults = SchedulerConfig::default();
        let scheduler = SchedulerConfig {
            max_queue: self.api_max_queue.unwrap_or(defaults.max_queue),
            max_active: self.api_max_active.unwrap_or(defaults.max_active),
        };
        if scheduler.max_queue == 0 || scheduler.max_active == 0 || models.max_context() == 0 {
            bail!("--api-max-queue, --api-max-active and --context-length must be at least 1");
        }
        Ok(Some(ApiConfig {
            addr: SocketAddr::new(
                self.api_host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                self.api_port.unwrap_or(DEFAULT_API_PORT),
            ),
            models: found,
            device: models.device().to_string(),
            weights: models.weight_format(),
            scheduler,
            max_context: Some(models.max_context()),
            explicit: !models.model.is_empty(),
        }))
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    models: ModelArgs,
    /// Data directory whose `models/` holds the fetched models.
    #[arg(long, env = "AICOIN_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> eyre::Result<()> {
    let Some(config) = args.api.config(&args.models, args.data_dir.as_deref())? else {
        bail!(
            "no models in {}: fetch one with `aicoin model fetch smollm2` or give --model PATH",
            args.models
                .models_dir(args.data_dir.as_deref())
                .path()
                .display()
        );
    };
    let mut registry = Registry::default();
    let metrics = InferenceMetrics::register(&mut registry);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = aicoin_api::start(
        config,
        metrics,
        Arc::new(registry),
        None,
        None,
        async move {
            let _ = stopped.await;
        },
    )
    .await?;
    println!("AICoin inference API v{}", env!("CARGO_PKG_VERSION"));
    print_banner(&server);
    println!();
    crate::node::wait_for_shutdown_signal().await?;
    tracing::info!("shutting down");
    let _ = stop.send(());
    server.stopped().await;
    Ok(())
}

/// The API's address and models, as `aicoin node` and `aicoin serve` print them.
pub fn print_banner(server: &aicoin_api::ApiServer) {
    println!("  AI API:      {}/v1  (OpenAI-compatible)", server.url());
    for card in server.models().cards() {
        println!("    model      {}", card.id);
    }
}
