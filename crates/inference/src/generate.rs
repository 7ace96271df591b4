//! One sequence's generation: the prompt fed in chunks (prefill), then one token per step, each
//! sampled, checked against the end-of-turn tokens, decoded incrementally (a multi-byte
//! character split over tokens is released only once whole) and passed through the stop
//! sequences.

use std::sync::Arc;

use candle_core::Tensor;

use crate::{
    InferenceError, Result, Sampler, SamplingParams, StopMatcher,
    text::{SequenceState, TextModel},
};

/// Prompt tokens fed to the model per step. Bounds the attention matrix of a long prompt
/// (chunk × context, not prompt × prompt), and lets a scheduler interleave other sequences'
/// decoding with a long prefill. (Per-token cost does not depend on the chunk size on CPU:
/// candle's quantized matmul costs the same per row at any row count.)
pub const PREFILL_CHUNK: usize = 128;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GenerateParams {
    /// Most tokens to generate; `None` lets the sequence run to the end of the context.
    pub max_tokens: Option<usize>,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    /// Generate past end-of-sequence tokens, to `max_tokens` (benchmarks want a fixed length).
    pub ignore_eos: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-turn token or a stop sequence.
    Stop,
    /// `max_tokens` or the end of the context.
    Length,
}

impl FinishReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// What one step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The sampled token (`None` while the prompt is still being read, or once finished).
    pub token: Option<u32>,
    /// Text released by this step (possibly empty: a partial character or a possible stop
    /// sequence is held back).
    pub text: String,
    pub finished: Option<FinishReason>,
}

/// Incremental detokenization (tokenizers' `DecodeStream`, its state kept here so a sequence
/// can own it): text is released only once it is whole UTF-8, so a character whose bytes span
/// several tokens comes out in one piece.
#[derive(Debug, Default)]
struct Detokenizer {
    ids: Vec<u32>,
    prefix: String,
    prefix_index: usize,
}

impl Detokenizer {
    fn step(&mut self, tokenizer: &tokenizers::Tokenizer, token: u32) -> Result<String> {
        let piece = tokenizers::tokenizer::step_decode_stream(
            tokenizer,
            vec![token],
            true,
            &mut self.ids,
            &mut self.prefix,
            &mut self.prefix_index,
        )
        .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
        Ok(piece.unwrap_or_default())
    }
}

pub struct Sequence {
    model: Arc<TextModel>,
    state: SequenceState,
    tokens: Vec<u32>,
    prompt_len: usize,
    /// Tokens already in the KV cache.
    fed: usize,
    max_tokens: usize,
    sampler: Sampler,
    stop: StopMatcher,
    ignore_eos: bool,
    detokenizer: Detokenizer,
    finished: Option<FinishReason>,
}

impl Sequence {
    /// Checks the request against the model's context and prepares the sequence.
    pub fn new(model: Arc<TextModel>, prompt: Vec<u32>, params: GenerateParams) -> Result<Self> {
        params.sampling.validate()?;
        if prompt.is_empty() {
            return Err(InferenceError::InvalidRequest("the prompt is empty".into()));
        }
        let room = model.context_length.saturating_sub(prompt.len());
        let max_tokens = match params.max_tokens {
            Some(0) => {
                return Err(InferenceError::InvalidRequest(
                    "max_tokens must be at least 1".into(),
                ));
            }
            Some(n) if n > room => {
                return Err(InferenceError::ContextOverflow {
                    prompt: prompt.len(),
                    max_tokens: n,
                    context: model.context_length,
                });
            }
            Some(n) => n,
            None if room == 0 => {
                return Err(InferenceError::ContextOverflow {
                    prompt: prompt.len(),
                    max_tokens: 1,
                    context: model.context_length,
                });
            }
            None => room,
        };
        Ok(Self {
            state: model.new_state_for(prompt.len() + max_tokens),
            prompt_len: prompt.len(),
            tokens: prompt,
            fed: 0,
            max_tokens,
            sampler: Sampler::new(params.sampling),
            stop: StopMatcher::new(params.stop),
            ignore_eos: params.ignore_eos,
            detokenizer: Detokenizer::default(),
            finished: None,
            model,
        })
    }

    pub fn prompt_tokens(&self) -> usize {
        self.prompt_len
    }

    pub fn completion_tokens(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    pub fn finished(&self) -> Option<FinishReason> {
        self.finished
    }

    /// Whether the next step processes the prompt.
    pub fn in_prefill(&self) -> bool {
        self.fed == 0
    }

    /// Whether the next step feeds just the last sampled token: the step
    /// [`Sequence::step_batch`] runs for many sequences in one pass.
    pub fn decoding(&self) -> bool {
        self.finished.is_none() && self.fed > 0 && self.fed + 1 == self.tokens.len()
    }

    /// Runs the model over the next chunk of what it has not seen; once the prompt is in,
    /// samples the next token (a step that only advances the prefill returns no token).
    pub fn step(&mut self) -> Result<Step> {
        if self.finished.is_some() {
            return Ok(self.idle());
        }
        let end = (self.fed + PREFILL_CHUNK).min(self.tokens.len());
        let input = Tensor::new(&self.tokens[self.fed..end], self.model.device())?.unsqueeze(0)?;
        let logits = self.state.forward(&input, self.fed)?;
        self.fed = end;
        if self.fed < self.tokens.len() {
            // More of the prompt to go: the next step continues the prefill.
            return Ok(self.idle());
        }
        self.sample(&logits)
    }

    /// One decode step of each of `sequences` (of one model, each [`Sequence::decoding`]),
    /// in one forward pass where the model batches ([`TextModel::decode_batch`]), else one
    /// after another. Each gets exactly the step its own [`Sequence::step`] would give:
    /// batching changes no answer. A failed batched pass fails every sequence in it.
    pub fn step_batch(sequences: &mut [&mut Sequence]) -> Vec<Result<Step>> {
        let batchable = sequences.len() > 1
            && sequences
                .iter()
                .all(|s| s.decoding() && Arc::ptr_eq(&s.model, &sequences[0].model));
        if !batchable {
            return sequences.iter_mut().map(|s| s.step()).collect();
        }
        let model = sequences[0].model.clone();
        let tokens: Vec<u32> = sequences.iter().map(|s| s.tokens[s.fed]).collect();
        let mut states: Vec<&mut SequenceState> =
            sequences.iter_mut().map(|s| &mut s.state).collect();
        match model.decode_batch(&mut states, &tokens) {
            None => sequences.iter_mut().map(|s| s.step()).collect(),
            Some(Err(e)) => {
                let reason = e.to_string();
                sequences
                    .iter()
                    .map(|_| Err(InferenceError::Crashed(reason.clone())))
                    .collect()
            }
            Some(Ok(logits)) => sequences
                .iter_mut()
                .enumerate()
                .map(|(i, s)| {
                    s.fed += 1;
                    s.sample(&logits.get(i)?)
                })
                .collect(),
        }
    }

    /// A step that produced nothing (the prompt is still going in, or the sequence is done).
    fn idle(&self) -> Step {
        Step {
            token: None,
            text: String::new(),
            finished: self.finished,
        }
    }

    /// Samples the next token from the logits after everything fed so far.
    fn sample(&mut self, logits: &Tensor) -> Result<Step> {
        let token = self.sampler.sample(logits, &self.tokens)?;
        self.tokens.push(token);

        let (text, finished) = if !self.ignore_eos && self.model.is_end(token) {
            (self.stop.finish(), Some(FinishReason::Stop))
        } else {
            let piece = self.decode(token)?;
            let (mut text, stopped) = self.stop.push(&piece);
            if stopped {
                (text, Some(FinishReason::Stop))
            } else if self.completion_tokens() >= self.max_tokens {
                text.push_str(&self.stop.finish());
                (text, Some(FinishReason::Length))
            } else {
                (text, None)
            }
        };
        self.finished = finished;
        Ok(Step {
            token: Some(token),
            text,
            finished,
        })
    }

    fn decode(&mut self, token: u32) -> Result<String> {
        self.detokenizer.step(self.model.tokenizer(), token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{WeightFormat, testing::write_tiny_llama};

    #[test]
    fn characters_split_over_tokens_are_released_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        write_tiny_llama(&path, 1).unwrap();
        let model = TextModel::load(
            &path,
            "tiny",
            &candle_core::Device::Cpu,
            WeightFormat::AsShipped,
        )
        .unwrap();
        // "é😀" is 2 + 4 bytes: six byte-level tokens.
        let ids = model.encode("aé😀b").unwrap();
        assert_eq!(ids.len(), 8);
        let mut detokenizer = Detokenizer::default();
        let pieces: Vec<String> = ids
            .iter()
            .map(|&id| detokenizer.step(model.tokenizer(), id).unwrap())
            .collect();
        assert_eq!(pieces, ["a", "", "é", "", "", "", "😀", "b"]);
    }
}
