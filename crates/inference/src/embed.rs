//! Sentence embeddings from a BERT model directory (sentence-transformers layout:
//! `config.json`, `model.safetensors`, `tokenizer.json`): token states mean-pooled over the
//! attention mask, then L2-normalised, as sentence-transformers' `Pooling` + `Normalize` do.
//! A request's inputs run in batches, each padded to its longest input.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{PaddingParams, Tokenizer};

use crate::{InferenceError, Result};

/// Inputs run through the model at once.
const BATCH: usize = 32;

/// Most tokens one request may embed, all inputs together (OpenAI's limit).
pub const MAX_REQUEST_TOKENS: usize = 300_000;

pub struct EmbeddingModel {
    pub id: String,
    model: BertModel,
    tokenizer: Tokenizer,
    /// Longest input, in tokens (the model's position embeddings).
    pub max_tokens: usize,
    pub dimensions: usize,
    device: Device,
}

impl std::fmt::Debug for EmbeddingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingModel")
            .field("id", &self.id)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

impl EmbeddingModel {
    pub fn load_dir(dir: &Path, id: &str, device: &Device) -> Result<Self> {
        let bad = |reason: String| InferenceError::BadModel {
            path: dir.to_path_buf(),
            reason,
        };
        let read =
            |name: &str| std::fs::read(dir.join(name)).map_err(InferenceError::io(dir.join(name)));
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| bad(format!("config.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
        // The shipped tokenizer pads every input to a fixed length and truncates silently; pad
        // to the batch's longest input instead (the attention mask hides the padding) and
        // refuse inputs that are too long rather than embed a prefix.
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(None)
            .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
        let weights = read("model.safetensors")?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DTYPE, device)
            .map_err(|e| bad(format!("model.safetensors: {e}")))?;
        let model =
            BertModel::load(vb, &config).map_err(|e| bad(format!("cannot load BERT: {e}")))?;
        Ok(Self {
            id: id.to_string(),
            model,
            tokenizer,
            max_tokens: config.max_position_embeddings,
            dimensions: config.hidden_size,
            device: device.clone(),
        })
    }

    /// One unit vector per input, and how many tokens they were in all. Inputs run in batches
    /// of [`BATCH`] (padded to the batch's longest), so memory stays flat however many come.
    pub fn embed(&self, inputs: &[String]) -> Result<(Vec<Vec<f32>>, usize)> {
        if inputs.is_empty() {
            return Err(InferenceError::InvalidRequest("input is empty".into()));
        }
        // Tokenize and check everything before any of it runs.
        let mut batches = Vec::new();
        let mut tokens = 0;
        for (b, chunk) in inputs.chunks(BATCH).enumerate() {
            let encodings = self
                .tokenizer
                .encode_batch(chunk.to_vec(), true)
                .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
            for (i, encoding) in encodings.iter().enumerate() {
                let real = encoding
                    .get_attention_mask()
                    .iter()
                    .filter(|&&m| m == 1)
                    .count();
                if real > self.max_tokens {
                    return Err(InferenceError::InvalidRequest(format!(
                        "input {} is {real} tokens; this model takes at most {}",
                        b * BATCH + i,
                        self.max_tokens
                    )));
                }
                tokens += real;
            }
            if tokens > MAX_REQUEST_TOKENS {
                return Err(InferenceError::InvalidRequest(format!(
                    "the inputs are more than {MAX_REQUEST_TOKENS} tokens in all; split them \
                     over several requests"
                )));
            }
            batches.push(encodings);
        }
        let mut vectors = Vec::with_capacity(inputs.len());
        for encodings in &batches {
            vectors.extend(self.run(encodings)?);
        }
        Ok((vectors, tokens))
    }

    /// Mean-pooled, normalized states of one padded batch.
    fn run(&self, encodings: &[tokenizers::Encoding]) -> Result<Vec<Vec<f32>>> {
        let stack = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor> {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(f(e), &self.device))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Tensor::stack(&rows, 0)?)
        };
        let ids = stack(&|e| e.get_ids())?;
        let type_ids = stack(&|e| e.get_type_ids())?;
        let mask = stack(&|e| e.get_attention_mask())?;
        let states = self.model.forward(&ids, &type_ids, Some(&mask))?;
        // Mean over the real tokens: sum(states * mask) / sum(mask).
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = states.broadcast_mul(&mask)?.sum(1)?;
        let pooled = summed.broadcast_div(&mask.sum(1)?)?;
        let norms = pooled.sqr()?.sum_keepdim(1)?.sqrt()?;
        let normalized = pooled.broadcast_div(&norms)?;
        Ok(normalized.to_vec2::<f32>()?)
    }
}
