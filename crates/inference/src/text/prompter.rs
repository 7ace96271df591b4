//! How a model turns text and chats into prompt tokens: its tokenizer, its own chat template and
//! its beginning-of-sequence rules. A [`TextModel`](super::TextModel) holds one; the paid gateway
//! loads one alone ([`Prompter::load`], the file's metadata without its weights) to count a
//! request's prompt tokens exactly as the provider will.

use std::{path::Path, sync::Arc};

use tokenizers::Tokenizer;

use crate::{ChatTemplate, InferenceError, Message, Result};

pub struct Prompter {
    pub(super) tokenizer: Arc<Tokenizer>,
    pub(super) template: Option<ChatTemplate>,
    /// The beginning-of-sequence token, if the vocabulary has one.
    pub(super) bos: Option<u32>,
    /// Prepend `bos` to every prompt (GGUF models that want it).
    pub(super) prepend_bos: bool,
    /// Let the tokenizer's post-processor add special tokens (Hugging Face tokenizers).
    pub(super) tokenizer_adds_special: bool,
}

impl std::fmt::Debug for Prompter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompter")
            .field("chat_template", &self.template.is_some())
            .field("bos", &self.bos)
            .finish_non_exhaustive()
    }
}

impl Prompter {
    /// The prompter of the GGUF model at `path`, with its context length, reading only the
    /// file's metadata. (A Hugging Face directory's is read with its weights: load the model.)
    pub fn load(path: &Path) -> Result<(Self, usize)> {
        super::gguf::prompter(path)
    }

    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    /// The prompt's tokens. Special tokens written in the text (e.g. from a chat template) are
    /// recognised; the model's beginning-of-sequence token is prepended when it wants one.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, self.tokenizer_adds_special)
            .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
        let mut ids = Vec::with_capacity(encoding.len() + 1);
        if self.prepend_bos {
            ids.extend(self.bos);
        }
        ids.extend_from_slice(encoding.get_ids());
        // A chat template that writes the BOS itself would otherwise give two.
        if let Some(bos) = self.bos
            && ids.len() >= 2
            && ids[0] == bos
            && ids[1] == bos
        {
            ids.remove(0);
        }
        Ok(ids)
    }

    /// The prompt the model's chat template makes of `messages`, ready for the assistant's turn.
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<String> {
        self.template
            .as_ref()
            .ok_or(InferenceError::NoChatTemplate)?
            .render(messages, true)
    }

    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }
}
