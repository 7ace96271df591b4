//! What can go wrong loading or running a model, worded for the person who asked. Errors that
//! come from a request (not from the model or the machine) are marked as such, so an API can
//! answer them with a 4xx.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable model: {reason}")]
    BadModel { path: PathBuf, reason: String },
    #[error(
        "unsupported architecture {0:?}: AICoin runs GGUF models of the llama (and mistral), \
         qwen2, qwen3, gemma3 and phi3 architectures, and Hugging Face directories \
         (config.json, tokenizer.json, safetensors) of llama, mistral, qwen2, qwen3, phi3 and \
         gemma3_text causal models and BERT embedding models"
    )]
    UnsupportedArchitecture(String),
    #[error("the tokenizer cannot be built: {0}")]
    Tokenizer(String),
    #[error("the chat template failed: {0}")]
    Template(String),
    #[error("this model has no chat template; use completions instead of chat")]
    NoChatTemplate,
    #[error(
        "the prompt is {prompt} tokens and up to {max_tokens} more were asked for, but this \
         model's context is {context} tokens"
    )]
    ContextOverflow {
        prompt: usize,
        max_tokens: usize,
        context: usize,
    },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("model computation failed: {0}")]
    Compute(#[from] candle_core::Error),
    #[error("the model crashed: {0}")]
    Crashed(String),
    /// Part of the model runs elsewhere and no machine can run it now (every provider of a
    /// pipeline shard's layers failed or is away); worth a retry later.
    #[error("the model cannot run now: {0}")]
    Unavailable(String),
}

impl InferenceError {
    /// Whether the request, not the model or the machine, is at fault.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::ContextOverflow { .. } | Self::InvalidRequest(_) | Self::NoChatTemplate
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

pub type Result<T, E = InferenceError> = std::result::Result<T, E>;
