//! Counting a request's prompt tokens at the gateway, as the provider will count them: a text
//! model's own tokenizer and chat template (read from the GGUF file's metadata, no weights), an
//! embedding model's `tokenizer.json` (without the padding and truncation the file ships with).
//! For a model the gateway has no files of, the prompt's bytes, plus room for a template's or
//! special tokens around each message or input, bound its tokens from above (a byte-level
//! tokenizer makes no more tokens than bytes), which is safe for the budget, but too loose to
//! refuse a prompt as longer than the context.

use std::collections::HashMap;

use aicoin_api::{ApiError, inspect::Prompt};
use aicoin_inference::{LocalModel, ModelKind, Prompter};
use tokenizers::Tokenizer;

/// How the prompt of one model is counted.
pub enum Counter {
    Text(Box<Prompter>),
    Embedding(Box<Tokenizer>),
}

/// A prompt's token count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Exact(usize),
    /// At most this many.
    AtMost(usize),
}

impl Count {
    pub fn tokens(self) -> usize {
        match self {
            Self::Exact(n) | Self::AtMost(n) => n,
        }
    }
}

/// The counters of the models the gateway found locally, by id.
#[derive(Default)]
pub struct Counters(HashMap<String, Counter>);

impl Counters {
    /// Loads what each model needs to count prompts; a model whose files do not load is
    /// counted by bytes.
    pub fn load(models: &[LocalModel]) -> Self {
        let mut counters = HashMap::new();
        for model in models {
            let counter = match model.kind {
                ModelKind::Text => Prompter::load(&model.path)
                    .map(|(prompter, _)| Counter::Text(Box::new(prompter)))
                    .map_err(|e| e.to_string()),
                ModelKind::Embedding => Tokenizer::from_file(model.path.join("tokenizer.json"))
                    .and_then(|mut tokenizer| {
                        tokenizer.with_padding(None).with_truncation(None)?;
                        Ok(Counter::Embedding(Box::new(tokenizer)))
                    })
                    .map_err(|e| e.to_string()),
            };
            match counter {
                Ok(counter) => {
                    counters.insert(model.id.clone(), counter);
                }
                Err(error) => {
                    tracing::warn!(model = %model.id, %error, "counting this model's prompts by bytes")
                }
            }
        }
        Self(counters)
    }

    pub fn ids(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// `prompt`'s tokens for `model`.
    pub fn count(&self, model: &str, prompt: &Prompt) -> Result<Count, ApiError> {
        let failed = |e: String| ApiError::invalid(e, Some("messages"));
        let Some(counter) = self.0.get(model) else {
            return Ok(bound(prompt));
        };
        let n = match (counter, prompt) {
            (_, Prompt::Tokens(n)) => *n,
            (Counter::Text(prompter), Prompt::Chat(messages)) => {
                let text = prompter
                    .chat_prompt(messages)
                    .map_err(|e| failed(e.to_string()))?;
                prompter
                    .encode(&text)
                    .map_err(|e| failed(e.to_string()))?
                    .len()
            }
            (Counter::Text(prompter), Prompt::Text(text)) => prompter
                .encode(text)
                .map_err(|e| failed(e.to_string()))?
                .len(),
            (Counter::Embedding(tokenizer), Prompt::Inputs(inputs)) => {
                let mut total = 0;
                for input in inputs {
                    total += tokenizer
                        .encode(input.as_str(), true)
                        .map_err(|e| failed(e.to_string()))?
                        .len();
                }
                total
            }
            // An endpoint the model does not serve: the provider refuses it with its own error.
            _ => return Ok(bound(prompt)),
        };
        Ok(Count::Exact(n))
    }
}

/// Tokens a template or special tokens may add around each message or input, and in all.
const TOKENS_PER_PIECE: usize = 8;
const TOKENS_AROUND: usize = 16;

/// An upper bound of `prompt`'s tokens without its model's tokenizer.
fn bound(prompt: &Prompt) -> Count {
    Count::AtMost(prompt.bytes() + TOKENS_PER_PIECE * prompt.pieces() + TOKENS_AROUND)
}
