//! Text models from Hugging Face directories: `config.json` (its `model_type` picks the
//! architecture), `model.safetensors` or the shards its index names, `tokenizer.json`, and the
//! chat template from `chat_template.jinja` or `tokenizer_config.json`, whose `add_bos_token`
//! decides the BOS as transformers does. Weights are converted to f32 on the CPU (candle's CPU
//! kernels are fastest there) and to bf16 on a GPU; `--weights` does not apply to them.

use std::{
    collections::HashMap,
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    sync::Arc,
};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{gemma3, llama, mistral, phi3, qwen2, qwen3};
use serde::Deserialize;
use serde_json::Value;
use tokenizers::Tokenizer;

use super::{Architecture, Prompter, TextModel, Weights};
use crate::{ChatTemplate, InferenceError, Result};

/// Shared weights, one variant per architecture. The models that keep their KV cache inside
/// are never run themselves: each sequence runs a clone (tensors shared, cache its own).
pub(super) enum HfWeights {
    /// Llama keeps its KV cache outside the model.
    Llama(Arc<LlamaWeights>),
    Qwen2(qwen2::ModelForCausalLM),
    Qwen3(qwen3::ModelForCausalLM),
    Mistral(mistral::Model),
    Phi3(phi3::Model),
    Gemma3(gemma3::Model),
}

pub(super) struct LlamaWeights {
    model: llama::Llama,
    /// An empty cache (its rotary tables computed once), cloned for each sequence.
    empty_cache: llama::Cache,
}

/// One sequence's state.
pub(super) enum HfState {
    Llama(Arc<LlamaWeights>, Box<llama::Cache>),
    Qwen2(qwen2::ModelForCausalLM),
    Qwen3(qwen3::ModelForCausalLM),
    Mistral(mistral::Model),
    Phi3(phi3::Model),
    Gemma3(gemma3::Model),
}

impl HfWeights {
    pub(super) fn new_state(&self) -> HfState {
        match self {
            Self::Llama(w) => HfState::Llama(w.clone(), Box::new(w.empty_cache.clone())),
            Self::Qwen2(m) => HfState::Qwen2(m.clone()),
            Self::Qwen3(m) => HfState::Qwen3(m.clone()),
            Self::Mistral(m) => HfState::Mistral(m.clone()),
            Self::Phi3(m) => HfState::Phi3(m.clone()),
            Self::Gemma3(m) => HfState::Gemma3(m.clone()),
        }
    }
}

impl HfState {
    /// Logits of the last position, whatever shape the architecture returns them in.
    pub(super) fn forward(&mut self, tokens: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        let logits = match self {
            Self::Llama(w, cache) => w.model.forward(tokens, pos, cache)?,
            Self::Qwen2(m) => m.forward(tokens, pos)?,
            Self::Qwen3(m) => m.forward(tokens, pos)?,
            Self::Mistral(m) => m.forward(tokens, pos)?,
            Self::Phi3(m) => m.forward(tokens, pos)?,
            Self::Gemma3(m) => m.forward(tokens, pos)?,
        };
        logits.to_dtype(DType::F32)
    }
}

fn architecture(model_type: &str) -> Result<Architecture> {
    Ok(match model_type {
        "llama" => Architecture::Llama,
        "mistral" => Architecture::Mistral,
        "qwen2" => Architecture::Qwen2,
        "qwen3" => Architecture::Qwen3,
        "phi3" => Architecture::Phi3,
        "gemma3_text" => Architecture::Gemma3,
        other => return Err(InferenceError::UnsupportedArchitecture(other.to_string())),
    })
}

/// A token given as text, or as `tokenizer_config.json`'s added-token object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenText {
    Text(String),
    Added { content: String },
}

impl TokenText {
    fn text(self) -> String {
        match self {
            Self::Text(t) | Self::Added { content: t } => t,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TemplateField {
    One(String),
    /// Several named templates; the one named `default` is the chat template.
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    chat_template: Option<TemplateField>,
    bos_token: Option<TokenText>,
    eos_token: Option<TokenText>,
    /// Llama and Gemma tokenizers: transformers rebuilds the post-processor from these.
    add_bos_token: Option<bool>,
    add_eos_token: Option<bool>,
}

/// Token ids given as one number or a list (`eos_token_id` in `config.json`).
fn token_ids(value: Option<&Value>) -> Vec<u32> {
    match value {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .into_iter()
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect(),
        _ => Vec::new(),
    }
}

/// The weight files: the shards `model.safetensors.index.json` maps the tensors to, else
/// `model.safetensors` (other `*.safetensors` files, such as adapters or a repository's
/// consolidated copy, are not the model's weights).
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    #[derive(Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let bytes = std::fs::read(&index).map_err(InferenceError::io(&index))?;
        let index: Index =
            serde_json::from_slice(&bytes).map_err(|e| InferenceError::BadModel {
                path: dir.to_path_buf(),
                reason: format!("model.safetensors.index.json: {e}"),
            })?;
        let mut files: Vec<PathBuf> = index
            .weight_map
            .into_values()
            .map(|f| dir.join(f))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    Ok(vec![dir.join("model.safetensors")])
}

/// Loads a Hugging Face model directory.
pub(super) fn load(dir: &Path, id: &str, device: &Device) -> Result<TextModel> {
    let bad = |reason: String| InferenceError::BadModel {
        path: dir.to_path_buf(),
        reason,
    };
    let read =
        |name: &str| std::fs::read(dir.join(name)).map_err(InferenceError::io(dir.join(name)));
    let config_bytes = read("config.json")?;
    let config: Value =
        serde_json::from_slice(&config_bytes).map_err(|e| bad(format!("config.json: {e}")))?;
    let model_type = config
        .get("model_type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("config.json has no model_type".into()))?;
    let architecture = architecture(model_type)?;
    let typed = |what: &str| {
        let what = what.to_string();
        move |e: serde_json::Error| bad(format!("config.json is not a {what} config: {e}"))
    };

    let files = weight_files(dir)?;
    let dtype = if device.is_cuda() {
        DType::BF16
    } else {
        DType::F32
    };
    // Read, not memory-mapped: a mapped file changed underneath would be undefined behaviour.
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for file in &files {
        let loaded = candle_core::safetensors::load(file, &Device::Cpu)
            .map_err(|e| bad(format!("{}: {e}", file.display())))?;
        tensors.extend(loaded);
    }
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    let load = |e: candle_core::Error| bad(format!("cannot load the weights: {e}"));
    // Some of candle's loaders panic on a missing tensor instead of returning the error.
    let build = || -> Result<HfWeights> {
        Ok(match architecture {
            Architecture::Llama => {
                let c: llama::LlamaConfig =
                    serde_json::from_slice(&config_bytes).map_err(typed("llama"))?;
                let c = c.into_config(false);
                HfWeights::Llama(Arc::new(LlamaWeights {
                    model: llama::Llama::load(vb, &c).map_err(load)?,
                    empty_cache: llama::Cache::new(true, dtype, &c, device).map_err(load)?,
                }))
            }
            Architecture::Mistral => {
                let c: mistral::Config =
                    serde_json::from_slice(&config_bytes).map_err(typed("mistral"))?;
                HfWeights::Mistral(mistral::Model::new(&c, vb).map_err(load)?)
            }
            Architecture::Qwen2 => {
                let c: qwen2::Config =
                    serde_json::from_slice(&config_bytes).map_err(typed("qwen2"))?;
                HfWeights::Qwen2(qwen2::ModelForCausalLM::new(&c, vb).map_err(load)?)
            }
            Architecture::Qwen3 => {
                let c: qwen3::Config =
                    serde_json::from_slice(&config_bytes).map_err(typed("qwen3"))?;
                HfWeights::Qwen3(qwen3::ModelForCausalLM::new(&c, vb).map_err(load)?)
            }
            Architecture::Phi3 => {
                let c: phi3::Config =
                    serde_json::from_slice(&config_bytes).map_err(typed("phi3"))?;
                HfWeights::Phi3(phi3::Model::new(&c, vb).map_err(load)?)
            }
            Architecture::Gemma3 => {
                let c: gemma3::Config =
                    serde_json::from_slice(&config_bytes).map_err(typed("gemma3"))?;
                HfWeights::Gemma3(gemma3::Model::new(false, &c, vb).map_err(load)?)
            }
        })
    };
    let weights = catch_unwind(AssertUnwindSafe(build)).map_err(|_| {
        bad("the weights do not match config.json (a tensor is missing or misshapen)".into())
    })??;

    let tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
        .map_err(|e| InferenceError::Tokenizer(format!("tokenizer.json: {e}")))?;
    let tokenizer_config: TokenizerConfig = match read("tokenizer_config.json") {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("tokenizer_config.json: {e}")))?,
        Err(_) => TokenizerConfig::default(),
    };
    // transformers prefers a separate chat_template.jinja when a model ships one.
    let template_source = match std::fs::read_to_string(dir.join("chat_template.jinja")) {
        Ok(source) => Some(source),
        Err(_) => match tokenizer_config.chat_template {
            Some(TemplateField::One(source)) => Some(source),
            Some(TemplateField::Named(named)) => named
                .into_iter()
                .find(|t| t.name == "default")
                .map(|t| t.template),
            None => None,
        },
    };
    // With explicit flags, transformers adds exactly what they say (and a prompt never wants
    // a trailing EOS); without them, the tokenizer's own post-processor decides.
    let explicit =
        tokenizer_config.add_bos_token.is_some() || tokenizer_config.add_eos_token.is_some();
    let prepend_bos = tokenizer_config.add_bos_token.unwrap_or(false);
    let bos_text = tokenizer_config.bos_token.map(TokenText::text);
    let eos_text = tokenizer_config.eos_token.map(TokenText::text);
    let template = template_source
        .map(|source| {
            ChatTemplate::new(
                source,
                bos_text.clone().unwrap_or_default(),
                eos_text.clone().unwrap_or_default(),
            )
        })
        .transpose()?;

    let mut declared_eos = token_ids(config.get("eos_token_id"));
    if let Ok(bytes) = read("generation_config.json")
        && let Ok(generation) = serde_json::from_slice::<Value>(&bytes)
    {
        declared_eos.extend(token_ids(generation.get("eos_token_id")));
    }
    declared_eos.extend(eos_text.as_deref().and_then(|t| tokenizer.token_to_id(t)));
    let bos = token_ids(config.get("bos_token_id"))
        .first()
        .copied()
        .or_else(|| bos_text.as_deref().and_then(|t| tokenizer.token_to_id(t)));
    let context_length = config
        .get("max_position_embeddings")
        .and_then(Value::as_u64)
        .map_or(4096, |n| n as usize);
    Ok(TextModel {
        id: id.to_string(),
        architecture,
        weights: Weights::Hf(weights),
        eos: super::end_tokens(&tokenizer, declared_eos),
        prompter: Prompter {
            tokenizer: Arc::new(tokenizer),
            template,
            bos,
            prepend_bos,
            tokenizer_adds_special: !explicit,
        },
        context_length,
        device: device.clone(),
    })
}
