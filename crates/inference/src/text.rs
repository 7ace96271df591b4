//! Text generation models from GGUF files: the architecture from `general.architecture`, the
//! weights through candle-transformers' quantized models, the tokenizer rebuilt from the
//! metadata, and the model's own chat template.
//!
//! Weights are loaded once and shared; every sequence gets its own [`SequenceState`] (a clone
//! of the model whose tensors are reference-counted, holding only that sequence's KV cache).
//! Qwen2's candle model cannot be cloned, so it serves one sequence at a time.

use std::{path::Path, sync::Arc};

use candle_core::{Device, Tensor, quantized::gguf_file};
use candle_transformers::models::{
    quantized_gemma3 as gemma3, quantized_llama as llama, quantized_phi3 as phi3,
    quantized_qwen2 as qwen2, quantized_qwen3 as qwen3,
};
use parking_lot::Mutex;
use tokenizers::Tokenizer;

use crate::{ChatTemplate, InferenceError, Message, Result, tokenizer};

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
    /// Formats without fast x86 kernels in candle (Q4_1, Q5_0, Q5_1) re-quantized to Q8_0 at
    /// load. Measured on SmolLM2-135M (Q4_1, 2 cores, AVX2): prefill 80 -> 190 tokens/s, decode
    /// 34 -> 51 tokens/s, for 46 MB more memory. (Q4_0 gave 145/48; K-quants need rows that are
    /// multiples of 256, which SmolLM2's 576-wide rows are not.)
    #[default]
    FastKernels,
}

/// Rewrites the slow-kernel tensors of a GGUF file as Q8_0, into memory.
fn requantize<R: std::io::Read + std::io::Seek>(
    content: gguf_file::Content,
    file: &mut R,
) -> candle_core::Result<(gguf_file::Content, std::io::Cursor<Vec<u8>>)> {
    use candle_core::quantized::{GgmlDType, QTensor};
    let mut tensors = Vec::with_capacity(content.tensor_infos.len());
    for (name, info) in &content.tensor_infos {
        let tensor = content.tensor(file, name, &Device::Cpu)?;
        let tensor = match info.ggml_dtype {
            GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 => {
                QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)?
            }
            _ => tensor,
        };
        tensors.push((name.clone(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut bytes = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut bytes, &metadata, &tensors)?;
    bytes.set_position(0);
    let content = gguf_file::Content::read(&mut bytes)?;
    Ok((content, bytes))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
    Phi3,
}

impl Architecture {
    fn from_gguf(name: &str) -> Result<Self> {
        Ok(match name {
            // Mistral and SmolLM GGUFs declare llama.
            "llama" | "mistral" => Self::Llama,
            "qwen2" => Self::Qwen2,
            "qwen3" => Self::Qwen3,
            "gemma3" | "gemma2" | "gemma" => Self::Gemma3,
            "phi3" => Self::Phi3,
            other => return Err(InferenceError::UnsupportedArchitecture(other.to_string())),
        })
    }
}

enum Weights {
    Llama(llama::ModelWeights),
    Qwen2(Arc<Mutex<qwen2::ModelWeights>>),
    Qwen3(qwen3::ModelWeights),
    Gemma3(gemma3::ModelWeights),
    Phi3(phi3::ModelWeights),
}

/// One sequence's view of the model: its KV cache over the shared weights.
pub struct SequenceState(State);

enum State {
    Llama(llama::ModelWeights),
    Qwen2(Arc<Mutex<qwen2::ModelWeights>>),
    Qwen3(qwen3::ModelWeights),
    Gemma3(gemma3::ModelWeights),
    Phi3(phi3::ModelWeights),
}

impl SequenceState {
    /// Feeds `tokens` (shape `[1, n]`) at position `pos`; returns the last position's logits.
    pub fn forward(&mut self, tokens: &Tensor, pos: usize) -> Result<Tensor> {
        let logits = match &mut self.0 {
            State::Llama(m) => m.forward(tokens, pos)?,
            State::Qwen2(m) => m.lock().forward(tokens, pos)?,
            State::Qwen3(m) => m.forward(tokens, pos)?,
            State::Gemma3(m) => m.forward(tokens, pos)?,
            State::Phi3(m) => m.forward(tokens, pos)?,
        };
        Ok(logits.squeeze(0)?)
    }
}

/// A loaded chat/completion model.
pub struct TextModel {
    pub id: String,
    pub architecture: Architecture,
    weights: Weights,
    tokenizer: Arc<Tokenizer>,
    template: Option<ChatTemplate>,
    eos: Vec<u32>,
    /// Prepended to prompts when the model wants a beginning-of-sequence token.
    bos: Option<u32>,
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

fn metadata_string(content: &gguf_file::Content, key: &str) -> Option<String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
}

fn metadata_u32(content: &gguf_file::Content, key: &str) -> Option<u32> {
    content.metadata.get(key).and_then(|v| v.to_u32().ok())
}

impl TextModel {
    /// Loads a GGUF model file, re-quantizing as `weights` says.
    pub fn load_gguf(
        path: &Path,
        id: &str,
        device: &Device,
        weights: WeightFormat,
    ) -> Result<Self> {
        let bad = |reason: String| InferenceError::BadModel {
            path: path.to_path_buf(),
            reason,
        };
        let mut file = std::fs::File::open(path).map_err(InferenceError::io(path))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| bad(format!("not a GGUF file: {e}")))?;
        match weights {
            WeightFormat::AsShipped => Self::from_content(path, id, device, content, &mut file),
            WeightFormat::FastKernels => {
                let (content, mut bytes) = requantize(content, &mut file)
                    .map_err(|e| bad(format!("cannot re-quantize: {e}")))?;
                Self::from_content(path, id, device, content, &mut bytes)
            }
        }
    }

    fn from_content<R: std::io::Read + std::io::Seek>(
        path: &Path,
        id: &str,
        device: &Device,
        content: gguf_file::Content,
        file: &mut R,
    ) -> Result<Self> {
        let bad = |reason: String| InferenceError::BadModel {
            path: path.to_path_buf(),
            reason,
        };
        let arch_name = metadata_string(&content, "general.architecture")
            .ok_or_else(|| bad("no general.architecture".into()))?;
        let architecture = Architecture::from_gguf(&arch_name)?;
        let context_length = metadata_u32(&content, &format!("{arch_name}.context_length"))
            .map_or(4096, |n| n as usize);
        let tokenizer = tokenizer::from_gguf(&content.metadata)?;
        let token_text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.id_to_token(id))
                .unwrap_or_default()
        };
        let eos_id = metadata_u32(&content, "tokenizer.ggml.eos_token_id");
        let bos_id = metadata_u32(&content, "tokenizer.ggml.bos_token_id");
        let add_bos = content
            .metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(
                architecture == Architecture::Llama
                    && metadata_string(&content, "tokenizer.ggml.model").as_deref()
                        == Some("llama"),
            );
        let template = match metadata_string(&content, "tokenizer.chat_template") {
            Some(source) => Some(ChatTemplate::new(
                source,
                token_text(bos_id),
                token_text(eos_id),
            )?),
            None => None,
        };
        let mut eos: Vec<u32> = END_OF_TURN
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .chain(eos_id)
            .collect();
        eos.sort_unstable();
        eos.dedup();

        let load = |e: candle_core::Error| bad(format!("cannot load the weights: {e}"));
        let weights = match architecture {
            Architecture::Llama => {
                Weights::Llama(llama::ModelWeights::from_gguf(content, file, device).map_err(load)?)
            }
            Architecture::Qwen2 => Weights::Qwen2(Arc::new(Mutex::new(
                qwen2::ModelWeights::from_gguf(content, file, device).map_err(load)?,
            ))),
            Architecture::Qwen3 => {
                Weights::Qwen3(qwen3::ModelWeights::from_gguf(content, file, device).map_err(load)?)
            }
            Architecture::Gemma3 => Weights::Gemma3(
                gemma3::ModelWeights::from_gguf(content, file, device).map_err(load)?,
            ),
            Architecture::Phi3 => Weights::Phi3(
                phi3::ModelWeights::from_gguf(false, content, file, device).map_err(load)?,
            ),
        };
        Ok(Self {
            id: id.to_string(),
            architecture,
            weights,
            tokenizer: Arc::new(tokenizer),
            template,
            eos,
            bos: add_bos.then_some(bos_id).flatten(),
            context_length,
            device: device.clone(),
        })
    }

    /// A fresh state (empty KV cache) for a new sequence.
    pub fn new_state(&self) -> SequenceState {
        SequenceState(match &self.weights {
            Weights::Llama(m) => State::Llama(m.clone()),
            Weights::Qwen2(m) => State::Qwen2(m.clone()),
            Weights::Qwen3(m) => State::Qwen3(m.clone()),
            Weights::Gemma3(m) => State::Gemma3(m.clone()),
            Weights::Phi3(m) => State::Phi3(m.clone()),
        })
    }

    /// How many sequences can run at once (each with its own KV cache).
    pub fn max_concurrent_sequences(&self) -> usize {
        match self.weights {
            Weights::Qwen2(_) => 1,
            _ => usize::MAX,
        }
    }

    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn is_end(&self, token: u32) -> bool {
        self.eos.contains(&token)
    }

    /// The prompt's tokens. Special tokens written in the text (e.g. from a chat template) are
    /// recognised; the model's beginning-of-sequence token is prepended when it wants one.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
        Ok(self
            .bos
            .into_iter()
            .chain(encoding.get_ids().iter().copied())
            .collect())
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
