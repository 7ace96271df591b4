//! Text generation models: GGUF files ([`gguf`]) and Hugging Face safetensors directories
//! ([`hf`]) behind one [`TextModel`], with the tokenizer, the model's own chat template and its
//! end-of-turn tokens.
//!
//! Weights are loaded once and shared; every sequence gets its own [`SequenceState`] (a clone
//! of the model whose tensors are reference-counted, holding only that sequence's KV cache).

mod attention;
mod gguf;
mod hf;
pub mod llama;
mod matmul;
mod prompter;
mod q4_1;
mod q8_0;
mod split;
mod swiglu;

pub use prompter::Prompter;
pub use split::{LayerSession, RemoteLayers};

use std::{path::Path, sync::Arc};

use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;

use crate::{Message, Result};

/// End-of-turn markers of common chat formats; generation stops at any the vocabulary has, as
/// well as at the declared end-of-sequence token.
const END_OF_TURN: [&str; 6] = [
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
];

/// How a model's quantized weights are kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// Exactly as the file has them.
    AsShipped,
    /// Formats without fast x86 kernels (Q5_0, Q5_1, and Q4_1 outside our own forward, which
    /// has its own Q4_1 kernel) re-quantized to Q8_0 at load. Measured on SmolLM2-135M (Q4_1,
    /// 2 threads, `scripts/bench-inference.sh 2`): candle's scalar Q4_1 91.6 / 42.1 tokens/s
    /// prefill / decode, re-quantized to Q8_0 218.6 / 66.9, our Q4_1 kernel 320.3 / 108.4.
    #[default]
    FastKernels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Gemma3,
    Phi3,
}

enum Weights {
    Gguf(gguf::GgufModel),
    Hf(hf::HfWeights),
    /// The embedding and head here, the layers elsewhere.
    Split(split::SplitModel),
}

/// One sequence's view of the model: its KV cache over the shared weights.
pub struct SequenceState(State);

enum State {
    Gguf(gguf::GgufModel),
    Hf(hf::HfState),
    Split(split::SplitState),
}

impl SequenceState {
    /// Feeds `tokens` (shape `[1, n]`) at position `pos`; returns the last position's logits.
    pub fn forward(&mut self, tokens: &Tensor, pos: usize) -> Result<Tensor> {
        let logits = match &mut self.0 {
            State::Gguf(m) => m.forward(tokens, pos)?,
            State::Hf(m) => m.forward(tokens, pos)?,
            State::Split(m) => m.forward(tokens, pos)?,
        };
        Ok(logits.flatten_all()?)
    }
}

/// A loaded chat/completion model.
pub struct TextModel {
    pub id: String,
    pub architecture: Architecture,
    weights: Weights,
    prompter: Prompter,
    /// Tokens that end generation.
    eos: Vec<u32>,
    pub context_length: usize,
    device: Device,
}

impl std::fmt::Debug for TextModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextModel")
            .field("id", &self.id)
            .field("architecture", &self.architecture)
            .field("context_length", &self.context_length)
            .finish_non_exhaustive()
    }
}

/// The model's declared end tokens plus the end-of-turn markers its vocabulary has.
fn end_tokens(tokenizer: &Tokenizer, declared: impl IntoIterator<Item = u32>) -> Vec<u32> {
    let mut eos: Vec<u32> = END_OF_TURN
        .iter()
        .filter_map(|t| tokenizer.token_to_id(t))
        .chain(declared)
        .collect();
    eos.sort_unstable();
    eos.dedup();
    eos
}

impl TextModel {
    /// Loads a model: a GGUF file (re-quantized as `weights` says), or a Hugging Face
    /// directory with `config.json`, safetensors weights and `tokenizer.json`.
    pub fn load(path: &Path, id: &str, device: &Device, weights: WeightFormat) -> Result<Self> {
        if path.is_dir() {
            hf::load(path, id, device)
        } else {
            gguf::load(path, id, device, weights)
        }
    }

    /// Loads the embedding, head, tokenizer and chat template of a GGUF model of the llama
    /// family, whose layers run in `layers` (a pipeline of shards).
    pub fn load_split(
        path: &Path,
        id: &str,
        device: &Device,
        layers: Arc<dyn RemoteLayers>,
    ) -> Result<Self> {
        gguf::load_split(path, id, device, layers)
    }

    /// A fresh state (empty KV cache) for a new sequence.
    pub fn new_state(&self) -> SequenceState {
        self.new_state_for(self.context_length)
    }

    /// A fresh state for a sequence of at most `capacity` tokens (a split model's shards
    /// reserve their caches for that many).
    pub fn new_state_for(&self, capacity: usize) -> SequenceState {
        SequenceState(match &self.weights {
            Weights::Gguf(w) => State::Gguf(w.new_state()),
            Weights::Hf(w) => State::Hf(w.new_state()),
            Weights::Split(w) => State::Split(w.new_state(capacity)),
        })
    }

    /// The logits `[n - from, vocab]` at positions `from..n` of `tokens` in one prefill
    /// (teacher forcing), where the model runs on our own forward; `None` for the others.
    pub fn score(&self, tokens: &[u32], from: usize) -> Option<Result<Tensor>> {
        match &self.weights {
            Weights::Gguf(w) => w.score(tokens, from, &self.device),
            Weights::Hf(_) | Weights::Split(_) => None,
        }
    }

    /// The whole model on our own forward (a GGUF of the llama family), for work a sequence
    /// does not describe: an auditor recomputing the layers a pipeline shard claims to have run.
    pub fn llama(&self) -> Option<&Arc<llama::Llama>> {
        match &self.weights {
            Weights::Gguf(gguf::GgufModel::Llama(model, _)) => Some(model),
            _ => None,
        }
    }

    /// Whether [`TextModel::decode_batch`] runs several sequences in one pass: on our own
    /// forward, where that changes no sequence's logits ([`llama::Llama::batch_invariant`]).
    pub fn batches_decoding(&self) -> bool {
        matches!(&self.weights, Weights::Gguf(gguf::GgufModel::Llama(model, _)) if model.batch_invariant())
    }

    /// One decode step of several sequences in one forward pass, where the model runs on our
    /// own forward: `tokens[i]` follows what `states[i]` holds. The logits `[n, vocab]`, row i
    /// exactly what `states[i].forward` would give; `None` where the model steps one sequence
    /// at a time.
    pub fn decode_batch(
        &self,
        states: &mut [&mut SequenceState],
        tokens: &[u32],
    ) -> Option<Result<Tensor>> {
        let Weights::Gguf(gguf::GgufModel::Llama(model, _)) = &self.weights else {
            return None;
        };
        if !model.batch_invariant() {
            return None;
        }
        let mut caches = states
            .iter_mut()
            .map(|state| match &mut state.0 {
                State::Gguf(gguf::GgufModel::Llama(_, cache)) => Some(cache),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(model.decode(tokens, &mut caches, &self.device))
    }

    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        self.prompter.tokenizer()
    }

    /// How the model turns text and chats into prompt tokens.
    pub fn prompter(&self) -> &Prompter {
        &self.prompter
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn is_end(&self, token: u32) -> bool {
        self.eos.contains(&token)
    }

    /// The prompt's tokens ([`Prompter::encode`]).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.prompter.encode(text)
    }

    /// The prompt the model's chat template makes of `messages` ([`Prompter::chat_prompt`]).
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<String> {
        self.prompter.chat_prompt(messages)
    }

    pub fn has_chat_template(&self) -> bool {
        self.prompter.has_chat_template()
    }
}
