//! Running transformer models on candle: chat/completion models from GGUF files or Hugging Face
//! safetensors directories, BERT embedding models, their tokenizers and chat templates,
//! sampling, generation with a KV cache per sequence, a scheduler that serves many requests on
//! one model, metrics, and the catalog of fetchable models.

mod catalog;
mod device;
mod embed;
mod error;
mod generate;
mod metrics;
mod sampling;
mod scheduler;
mod stop;
mod template;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod text;
mod tokenizer;

pub use catalog::{
    KNOWN_MODELS, KnownModel, LocalModel, ModelKind, PackagedFile, discover, identify, known_model,
};
pub use device::{Device, POOL_SPIN_LIMIT, cpu_threads, device, set_pool_spin_limit};
pub use embed::EmbeddingModel;
pub use error::{InferenceError, Result};
pub use generate::{FinishReason, GenerateParams, PREFILL_CHUNK, Sequence, Step};
pub use metrics::InferenceMetrics;
pub use sampling::{Sampler, SamplingParams};
pub use scheduler::{Event, Scheduler, SchedulerConfig, SubmitError, Usage};
pub use stop::StopMatcher;
pub use template::{ChatTemplate, Message};
pub use text::{
    Architecture, LayerSession, Prompter, RemoteLayers, SequenceState, TextModel, WeightFormat,
    llama,
};
pub use tokenizer::from_gguf as tokenizer_from_gguf;
