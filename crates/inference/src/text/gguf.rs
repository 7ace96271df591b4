//! Text models from GGUF files: the architecture from `general.architecture`, the weights
//! (optionally re-quantized to formats with fast kernels) on our own forward for the llama and
//! Qwen families and through candle-transformers' quantized models for the others, the
//! tokenizer rebuilt from the metadata, and the chat template it carries.

use std::{path::Path, sync::Arc};

use candle_core::{
    Device, Tensor,
    quantized::{GgmlDType, QTensor, gguf_file},
};
use candle_transformers::models::{quantized_gemma3 as gemma3, quantized_phi3 as phi3};

use super::{Architecture, Prompter, TextModel, WeightFormat, Weights};
use crate::{ChatTemplate, InferenceError, Result, tokenizer};

/// A quantized model, one variant per architecture. The loaded one is never run: each sequence
/// runs a clone, which shares the tensors and owns its KV cache.
pub(super) enum GgufModel {
    /// Our own forward (`super::llama`, the llama and Qwen families): shared weights, and this
    /// sequence's cache.
    Llama(Arc<super::llama::Llama>, super::llama::Cache),
    Gemma3(gemma3::ModelWeights),
    Phi3(phi3::ModelWeights),
}

impl GgufModel {
    pub(super) fn new_state(&self) -> Self {
        match self {
            Self::Llama(m, _) => Self::Llama(m.clone(), m.new_cache()),
            Self::Gemma3(m) => Self::Gemma3(m.clone()),
            Self::Phi3(m) => Self::Phi3(m.clone()),
        }
    }

    pub(super) fn forward(&mut self, tokens: &Tensor, pos: usize) -> Result<Tensor> {
        Ok(match self {
            Self::Llama(m, cache) => return m.forward(tokens, pos, cache),
            Self::Gemma3(m) => m.forward(tokens, pos)?,
            Self::Phi3(m) => m.forward(tokens, pos)?,
        })
    }

    /// Every position's logits for `tokens` in one prefill, where the architecture runs on our
    /// own forward.
    pub(super) fn score(
        &self,
        tokens: &[u32],
        from: usize,
        device: &Device,
    ) -> Option<Result<Tensor>> {
        match self {
            Self::Llama(m, _) => Some(m.score(tokens, from, device)),
            _ => None,
        }
    }
}

fn architecture(name: &str) -> Result<Architecture> {
    Ok(match name {
        // Mistral and SmolLM GGUFs declare llama.
        "llama" | "mistral" => Architecture::Llama,
        "qwen2" => Architecture::Qwen2,
        "qwen3" => Architecture::Qwen3,
        "gemma3" => Architecture::Gemma3,
        "phi3" => Architecture::Phi3,
        other => return Err(InferenceError::UnsupportedArchitecture(other.to_string())),
    })
}

/// Rewrites the slow-kernel tensors of a GGUF file as Q8_0, into an anonymous temporary file
/// (in memory, the rewritten copy would raise the peak by its whole size while the model
/// loads from it).
fn requantize<R: std::io::Read + std::io::Seek>(
    content: gguf_file::Content,
    file: &mut R,
) -> candle_core::Result<(gguf_file::Content, std::fs::File)> {
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
    let mut rewritten = tempfile::tempfile()?;
    {
        let mut writer = std::io::BufWriter::new(&mut rewritten);
        gguf_file::write(&mut writer, &metadata, &tensors)?;
        std::io::Write::flush(&mut writer)?;
    }
    drop(tensors);
    std::io::Seek::rewind(&mut rewritten)?;
    let content = gguf_file::Content::read(&mut std::io::BufReader::new(&mut rewritten))?;
    Ok((content, rewritten))
}

pub(super) fn metadata_string(content: &gguf_file::Content, key: &str) -> Option<String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
}

fn metadata_u32(content: &gguf_file::Content, key: &str) -> Option<u32> {
    content.metadata.get(key).and_then(|v| v.to_u32().ok())
}

/// The prompter of a GGUF file's metadata, and its declared end-of-sequence token.
fn prompter_of(content: &gguf_file::Content) -> Result<(Prompter, Option<u32>)> {
    let tokenizer = tokenizer::from_gguf(&content.metadata)?;
    let token_text = |id: Option<u32>| {
        id.and_then(|id| tokenizer.id_to_token(id))
            .unwrap_or_default()
    };
    let eos_id = metadata_u32(content, "tokenizer.ggml.eos_token_id");
    let bos_id = metadata_u32(content, "tokenizer.ggml.bos_token_id");
    // llama.cpp's default: SentencePiece vocabularies want a BOS, byte-level BPE ones do not.
    let add_bos = content
        .metadata
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(metadata_string(content, "tokenizer.ggml.model").as_deref() == Some("llama"));
    let template = metadata_string(content, "tokenizer.chat_template")
        .map(|source| ChatTemplate::new(source, token_text(bos_id), token_text(eos_id)))
        .transpose()?;
    let prompter = Prompter {
        tokenizer: Arc::new(tokenizer),
        template,
        bos: bos_id,
        prepend_bos: add_bos,
        tokenizer_adds_special: false,
    };
    Ok((prompter, eos_id))
}

/// The context length a GGUF file declares.
fn context_length_of(content: &gguf_file::Content) -> usize {
    metadata_string(content, "general.architecture")
        .and_then(|arch| metadata_u32(content, &format!("{arch}.context_length")))
        .map_or(4096, |n| n as usize)
}

/// Why the file at `path` is not a model it could load.
fn bad_model(path: &Path, reason: String) -> InferenceError {
    InferenceError::BadModel {
        path: path.to_path_buf(),
        reason,
    }
}

/// The GGUF file at `path`: its header, and the file to read its tensors from.
pub(super) fn open(path: &Path) -> Result<(gguf_file::Content, std::fs::File)> {
    let mut file = std::fs::File::open(path).map_err(InferenceError::io(path))?;
    let content = gguf_file::Content::read(&mut std::io::BufReader::new(&mut file))
        .map_err(|e| bad_model(path, format!("not a GGUF file: {e}")))?;
    Ok((content, file))
}

/// Whether an architecture runs on our own forward ([`super::llama`]).
fn on_our_forward(architecture: Architecture) -> bool {
    matches!(
        architecture,
        Architecture::Llama | Architecture::Mistral | Architecture::Qwen2 | Architecture::Qwen3
    )
}

/// A GGUF file's prompter and context length, from its metadata alone.
pub(super) fn prompter(path: &Path) -> Result<(Prompter, usize)> {
    let (content, _) = open(path)?;
    let (prompter, _) = prompter_of(&content)?;
    Ok((prompter, context_length_of(&content)))
}

/// Loads a GGUF model file, re-quantizing as `weights` says.
pub(super) fn load(
    path: &Path,
    id: &str,
    device: &Device,
    weights: WeightFormat,
) -> Result<TextModel> {
    let (content, mut file) = open(path)?;
    // Only candle's CPU kernels lack the formats worth re-quantizing; our own forward has its
    // own Q4_1 kernel (`super::q4_1`), faster than candle's Q8_0.
    let on_our_forward = metadata_string(&content, "general.architecture")
        .and_then(|name| architecture(&name).ok())
        .is_some_and(on_our_forward);
    let slow = |info: &gguf_file::TensorInfo| match info.ggml_dtype {
        GgmlDType::Q5_0 | GgmlDType::Q5_1 => true,
        GgmlDType::Q4_1 => !on_our_forward,
        _ => false,
    };
    let requantize_worth_it = weights == WeightFormat::FastKernels
        && device.is_cpu()
        && content.tensor_infos.values().any(slow);
    match requantize_worth_it {
        false => from_content(path, id, device, content, &mut file),
        true => {
            let (content, mut rewritten) = requantize(content, &mut file)
                .map_err(|e| bad_model(path, format!("cannot re-quantize: {e}")))?;
            from_content(path, id, device, content, &mut rewritten)
        }
    }
}

/// A GGUF model of the llama family with only its embedding and head loaded here, its layers
/// in `layers`.
pub(super) fn load_split(
    path: &Path,
    id: &str,
    device: &Device,
    layers: Arc<dyn super::RemoteLayers>,
) -> Result<TextModel> {
    let (content, mut file) = open(path)?;
    let arch_name = metadata_string(&content, "general.architecture")
        .ok_or_else(|| bad_model(path, "no general.architecture".into()))?;
    let architecture = architecture(&arch_name)?;
    if !on_our_forward(architecture) {
        return Err(bad_model(
            path,
            format!(
                "{arch_name} models run whole: only the llama and qwen families run split into shards"
            ),
        ));
    }
    let (prompter, eos_id) = prompter_of(&content)?;
    let ends = super::llama::Llama::ends_from_gguf(&content, &mut file, device)?;
    Ok(TextModel {
        id: id.to_string(),
        architecture,
        weights: Weights::Split(super::split::SplitModel {
            ends: Arc::new(ends),
            layers,
        }),
        eos: super::end_tokens(&prompter.tokenizer, eos_id),
        prompter,
        context_length: context_length_of(&content),
        device: device.clone(),
    })
}

fn from_content<R: std::io::Read + std::io::Seek>(
    path: &Path,
    id: &str,
    device: &Device,
    content: gguf_file::Content,
    file: &mut R,
) -> Result<TextModel> {
    let bad = |reason: String| InferenceError::BadModel {
        path: path.to_path_buf(),
        reason,
    };
    let arch_name = metadata_string(&content, "general.architecture")
        .ok_or_else(|| bad("no general.architecture".into()))?;
    let architecture = architecture(&arch_name)?;
    let context_length = context_length_of(&content);
    let (prompter, eos_id) = prompter_of(&content)?;
    let load = |e: candle_core::Error| bad(format!("cannot load the weights: {e}"));
    let weights = match architecture {
        Architecture::Llama | Architecture::Mistral | Architecture::Qwen2 | Architecture::Qwen3 => {
            let layers = super::llama::Config::from_gguf(&content)?.layers;
            let model = super::llama::Llama::from_gguf(&content, file, device, 0..layers)?;
            let cache = model.new_cache();
            GgufModel::Llama(Arc::new(model), cache)
        }
        Architecture::Gemma3 => {
            GgufModel::Gemma3(gemma3::ModelWeights::from_gguf(content, file, device).map_err(load)?)
        }
        Architecture::Phi3 => GgufModel::Phi3(
            phi3::ModelWeights::from_gguf(false, content, file, device).map_err(load)?,
        ),
    };
    Ok(TextModel {
        id: id.to_string(),
        architecture,
        weights: Weights::Gguf(weights),
        eos: super::end_tokens(&prompter.tokenizer, eos_id),
        prompter,
        context_length,
        device: device.clone(),
    })
}
