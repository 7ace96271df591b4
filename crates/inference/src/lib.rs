//! Running transformer models on candle: GGUF chat/completion models and BERT embedding models,
//! their tokenizers and chat templates, sampling, and generation with a KV cache per sequence.

mod embed;
mod error;
mod generate;
mod sampling;
mod stop;
mod template;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod text;
mod tokenizer;

pub use embed::EmbeddingModel;
pub use error::{InferenceError, Result};
pub use generate::{FinishReason, GenerateParams, Sequence, Step};
pub use sampling::{Sampler, SamplingParams};
pub use stop::StopMatcher;
pub use template::{ChatTemplate, Message};
pub use text::{Architecture, SequenceState, TextModel, WeightFormat};
pub use tokenizer::from_gguf as tokenizer_from_gguf;
