//! A tiny llama-architecture GGUF with random weights, a byte-level BPE vocabulary and a ChatML
//! template, for tests that exercise the whole path (loading, tokenizing, templating, sampling,
//! streaming, scheduling, HTTP) in milliseconds instead of with a real model.

use std::path::Path;

use candle_core::{
    Device, Tensor,
    quantized::{GgmlDType, QTensor, gguf_file},
};

use crate::Result;

const EMBEDDING: usize = 64;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const FEED_FORWARD: usize = 128;
/// Small enough for tests to reach it.
pub const TINY_CONTEXT: usize = 320;

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

fn string(s: &str) -> gguf_file::Value {
    gguf_file::Value::String(s.to_string())
}

/// The tiny model's vocabulary: GPT-2's byte alphabet, a few merges, the chat special tokens.
fn vocabulary() -> (Vec<String>, Vec<&'static str>) {
    let mut alphabet: Vec<char> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
        .into_iter()
        .collect();
    alphabet.sort();
    let mut tokens: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
    tokens.extend(["Ġt", "he", "Ġthe", "Ġa", "in"].map(String::from));
    tokens.extend(["<|endoftext|>", "<|im_start|>", "<|im_end|>"].map(String::from));
    (tokens, vec!["Ġ t", "h e", "Ġt he", "Ġ a", "i n"])
}

/// Random weights under their Hugging Face names, for `vocab` tokens.
fn weights(vocab: usize, seed: u64, layers: usize) -> Result<Vec<(String, Tensor)>> {
    use rand::Rng;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut random = |shape: &[usize]| -> Result<Tensor> {
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    };
    let ones = |n: usize| Tensor::ones(n, candle_core::DType::F32, &Device::Cpu);
    let kv = KV_HEADS * (EMBEDDING / HEADS);
    let mut weights = vec![
        (
            "model.embed_tokens.weight".into(),
            random(&[vocab, EMBEDDING])?,
        ),
        ("model.norm.weight".into(), ones(EMBEDDING)?),
        ("lm_head.weight".into(), random(&[vocab, EMBEDDING])?),
    ];
    for i in 0..layers {
        let name = |n: &str| format!("model.layers.{i}.{n}.weight");
        weights.extend([
            (name("self_attn.q_proj"), random(&[EMBEDDING, EMBEDDING])?),
            (name("self_attn.k_proj"), random(&[kv, EMBEDDING])?),
            (name("self_attn.v_proj"), random(&[kv, EMBEDDING])?),
            (name("self_attn.o_proj"), random(&[EMBEDDING, EMBEDDING])?),
            (name("input_layernorm"), ones(EMBEDDING)?),
            (name("mlp.gate_proj"), random(&[FEED_FORWARD, EMBEDDING])?),
            (name("mlp.up_proj"), random(&[FEED_FORWARD, EMBEDDING])?),
            (name("mlp.down_proj"), random(&[EMBEDDING, FEED_FORWARD])?),
            (name("post_attention_layernorm"), ones(EMBEDDING)?),
        ]);
    }
    Ok(weights)
}

/// The tensors a Qwen family model has beyond llama's, from their own random stream (so the
/// shared weights stay the llama model's).
fn family_weights(arch: &str, seed: u64, layers: usize) -> Result<Vec<(String, Tensor)>> {
    use rand::Rng;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed ^ 0x9e37);
    let mut random = |n: usize, low: f32, high: f32| -> Result<Tensor> {
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(low..high)).collect();
        Ok(Tensor::from_vec(values, n, &Device::Cpu)?)
    };
    let head = EMBEDDING / HEADS;
    let kv = KV_HEADS * head;
    let mut extra = Vec::new();
    for i in 0..layers {
        let name = |n: &str| format!("model.layers.{i}.self_attn.{n}");
        match arch {
            "qwen2" => extra.extend([
                (name("q_proj.bias"), random(EMBEDDING, -0.5, 0.5)?),
                (name("k_proj.bias"), random(kv, -0.5, 0.5)?),
                (name("v_proj.bias"), random(kv, -0.5, 0.5)?),
            ]),
            "qwen3" => extra.extend([
                (name("q_norm.weight"), random(head, 0.5, 1.5)?),
                (name("k_norm.weight"), random(head, 0.5, 1.5)?),
            ]),
            _ => {}
        }
    }
    Ok(extra)
}

/// The GGUF name of a Hugging Face llama tensor.
fn gguf_name(hf: &str) -> String {
    let renames = [
        ("model.embed_tokens", "token_embd"),
        ("model.norm", "output_norm"),
        ("lm_head", "output"),
        ("model.layers.", "blk."),
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("self_attn.q_norm", "attn_q_norm"),
        ("self_attn.k_norm", "attn_k_norm"),
        ("input_layernorm", "attn_norm"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
        ("post_attention_layernorm", "ffn_norm"),
    ];
    renames
        .iter()
        .fold(hf.to_string(), |name, (from, to)| name.replace(from, to))
}

/// llama.cpp's conversion of query/key rows: GGUF llama rotates interleaved pairs, Hugging
/// Face the two halves of each head.
fn permute_for_gguf(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    Ok(w.reshape((heads, 2, rows / heads / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// Writes the tiny model to `path` as GGUF, matrices in Q8_0. `seed` varies the weights (and
/// so what it says).
pub fn write_tiny_llama(path: &Path, seed: u64) -> Result<()> {
    write_tiny_llama_gguf(path, seed, GgmlDType::Q8_0)
}

/// Writes the tiny model to `path` as GGUF with its matrices in `matrices`.
pub fn write_tiny_llama_gguf(path: &Path, seed: u64, matrices: GgmlDType) -> Result<()> {
    write_tiny_gguf(path, seed, matrices, "llama", LAYERS)
}

/// Writes the tiny model with `layers` layers (Q8_0), the first two of them the 2-layer
/// model's: enough layers to split across several pipeline shards.
pub fn write_tiny_llama_layers(path: &Path, seed: u64, layers: usize) -> Result<()> {
    write_tiny_gguf(path, seed, GgmlDType::Q8_0, "llama", layers)
}

/// Writes a tiny model of the Qwen family (`arch` "qwen2": biased Q, K and V projections;
/// "qwen3": RMS-normed query and key heads), matrices in `matrices`, with the llama model's
/// weights for `seed` and the family's own tensors beside them ([`tiny_hf_weights`]).
pub fn write_tiny_qwen(path: &Path, seed: u64, arch: &str, matrices: GgmlDType) -> Result<()> {
    write_tiny_gguf(path, seed, matrices, arch, LAYERS)
}

/// The weights [`write_tiny_qwen`] writes, under their Hugging Face names.
pub fn tiny_hf_weights(arch: &str, seed: u64) -> Result<Vec<(String, Tensor)>> {
    let mut all = weights(vocabulary().0.len(), seed, LAYERS)?;
    all.extend(family_weights(arch, seed, LAYERS)?);
    Ok(all)
}

fn write_tiny_gguf(
    path: &Path,
    seed: u64,
    matrices: GgmlDType,
    arch: &str,
    layers: usize,
) -> Result<()> {
    let key = |k: &str| format!("{arch}.{k}");
    let (tokens, merges) = vocabulary();
    let vocab = tokens.len();
    let mut types = vec![gguf_file::Value::I32(1); vocab];
    for t in &mut types[vocab - 3..] {
        *t = gguf_file::Value::I32(3);
    }
    let u32v = gguf_file::Value::U32;
    let shape: Vec<(String, gguf_file::Value)> = vec![
        (key("block_count"), u32v(layers as u32)),
        (key("context_length"), u32v(TINY_CONTEXT as u32)),
        (key("embedding_length"), u32v(EMBEDDING as u32)),
        (key("feed_forward_length"), u32v(FEED_FORWARD as u32)),
        (key("attention.head_count"), u32v(HEADS as u32)),
        (key("attention.head_count_kv"), u32v(KV_HEADS as u32)),
        (
            key("attention.key_length"),
            u32v((EMBEDDING / HEADS) as u32),
        ),
        (
            key("rope.dimension_count"),
            u32v((EMBEDDING / HEADS) as u32),
        ),
        (key("rope.freq_base"), gguf_file::Value::F32(10_000.0)),
        (
            key("attention.layer_norm_rms_epsilon"),
            gguf_file::Value::F32(1e-5),
        ),
    ];
    let metadata: Vec<(&str, gguf_file::Value)> = vec![
        ("general.architecture", string(arch)),
        ("tokenizer.ggml.model", string("gpt2")),
        ("tokenizer.ggml.pre", string("smollm")),
        (
            "tokenizer.ggml.tokens",
            gguf_file::Value::Array(tokens.iter().map(|t| string(t)).collect()),
        ),
        (
            "tokenizer.ggml.merges",
            gguf_file::Value::Array(merges.iter().map(|m| string(m)).collect()),
        ),
        ("tokenizer.ggml.token_type", gguf_file::Value::Array(types)),
        ("tokenizer.ggml.bos_token_id", u32v(vocab as u32 - 2)),
        ("tokenizer.ggml.eos_token_id", u32v(vocab as u32 - 1)),
        (
            "tokenizer.ggml.add_bos_token",
            gguf_file::Value::Bool(false),
        ),
        ("tokenizer.chat_template", string(CHATML)),
    ];
    let mut tensors = Vec::new();
    let mut all = weights(vocab, seed, layers)?;
    all.extend(family_weights(arch, seed, layers)?);
    // llama.cpp permutes llama's query and key rows for its interleaved rotary pairs; the Qwen
    // family rotates halves and keeps them as they are.
    let permute = arch == "llama";
    for (name, w) in all {
        let w = if !permute {
            w
        } else if name.ends_with("q_proj.weight") {
            permute_for_gguf(&w, HEADS)?
        } else if name.ends_with("k_proj.weight") {
            permute_for_gguf(&w, KV_HEADS)?
        } else {
            w
        };
        // Norms and the embedding table stay f32, as llama.cpp writes them.
        let dtype = match w.rank() == 1 || name.contains("embed_tokens") {
            true => GgmlDType::F32,
            false => matrices,
        };
        tensors.push((gguf_name(&name), QTensor::quantize(&w, dtype)?));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = shape
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .chain(metadata.iter().map(|(k, v)| (*k, v)))
        .collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).map_err(crate::InferenceError::io(path))?;
    gguf_file::write(&mut file, &metadata, &tensors)?;
    Ok(())
}

/// Writes the same tiny model (same `seed`, same weights) as a Hugging Face directory:
/// `config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`.
pub fn write_tiny_llama_hf(dir: &Path, seed: u64) -> Result<()> {
    let io = |path: &Path| crate::InferenceError::io(path.to_path_buf());
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let gguf = dir.join(".tiny.gguf");
    write_tiny_llama_gguf(&gguf, seed, GgmlDType::F32)?;
    let mut file = std::fs::File::open(&gguf).map_err(io(&gguf))?;
    let content = gguf_file::Content::read(&mut file)?;
    let tokenizer = crate::tokenizer::from_gguf(&content.metadata)?;
    std::fs::remove_file(&gguf).map_err(io(&gguf))?;
    let vocab = tokenizer.get_vocab_size(true);
    tokenizer
        .save(dir.join("tokenizer.json"), false)
        .map_err(|e| crate::InferenceError::Tokenizer(e.to_string()))?;
    let tensors: std::collections::HashMap<String, Tensor> =
        weights(vocab, seed, LAYERS)?.into_iter().collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": EMBEDDING,
        "intermediate_size": FEED_FORWARD,
        "vocab_size": vocab,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": TINY_CONTEXT,
        "bos_token_id": vocab - 2,
        "eos_token_id": vocab - 1,
        "tie_word_embeddings": false,
    });
    let tokenizer_config = serde_json::json!({
        "chat_template": CHATML,
        "bos_token": "<|im_start|>",
        "eos_token": {"content": "<|im_end|>", "special": true},
    });
    for (name, value) in [
        ("config.json", config),
        ("tokenizer_config.json", tokenizer_config),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, value.to_string()).map_err(io(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{GenerateParams, Message, SamplingParams, Sequence, TextModel, WeightFormat};

    fn tiny() -> (tempfile::TempDir, Arc<TextModel>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        write_tiny_llama(&path, 7).unwrap();
        let model = TextModel::load(&path, "tiny", &Device::Cpu, WeightFormat::AsShipped).unwrap();
        (dir, Arc::new(model))
    }

    fn greedy(max_tokens: Option<usize>) -> GenerateParams {
        GenerateParams {
            max_tokens,
            sampling: SamplingParams {
                temperature: 0.0,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The generated ids and why generation ended.
    fn generate_full(
        model: &Arc<TextModel>,
        prompt: &str,
        params: GenerateParams,
    ) -> (Vec<u32>, crate::FinishReason) {
        let prompt = model.encode(prompt).unwrap();
        let mut seq = Sequence::new(model.clone(), prompt, params).unwrap();
        let mut ids = Vec::new();
        loop {
            let step = seq.step().unwrap();
            ids.extend(step.token);
            if let Some(reason) = step.finished {
                return (ids, reason);
            }
        }
    }

    fn generate(
        model: &Arc<TextModel>,
        prompt: &str,
        params: GenerateParams,
    ) -> (Vec<u32>, String) {
        let prompt = model.encode(prompt).unwrap();
        let mut seq = Sequence::new(model.clone(), prompt, params).unwrap();
        let (mut ids, mut text) = (Vec::new(), String::new());
        loop {
            let step = seq.step().unwrap();
            ids.extend(step.token);
            text.push_str(&step.text);
            if step.finished.is_some() {
                return (ids, text);
            }
        }
    }

    #[test]
    fn greedy_generation_is_deterministic_and_bounded() {
        let (_dir, model) = tiny();
        let (a, _) = generate(&model, "the cat in the hat", greedy(Some(10)));
        let (b, _) = generate(&model, "the cat in the hat", greedy(Some(10)));
        assert_eq!(a, b);
        assert!(!a.is_empty() && a.len() <= 10);
    }

    #[test]
    fn ignore_eos_generates_exactly_max_tokens_past_end_tokens() {
        let (_dir, model) = tiny();
        let run = |prompt: &str, ignore_eos| {
            let params = GenerateParams {
                ignore_eos,
                ..greedy(Some(40))
            };
            generate_full(&model, prompt, params)
        };
        // A prompt whose greedy continuation meets an end token before max_tokens.
        let (prompt, stopped) = (0..200)
            .map(|i| format!("the {i} in a hat"))
            .find_map(|p| {
                let (ids, reason) = run(&p, false);
                (reason == crate::FinishReason::Stop).then_some((p, ids))
            })
            .expect("some prompt ends early");
        assert!(model.is_end(*stopped.last().unwrap()));
        let (ids, reason) = run(&prompt, true);
        assert_eq!(reason, crate::FinishReason::Length);
        assert_eq!(ids.len(), 40);
        assert_eq!(ids[..stopped.len()], stopped[..]);
    }

    #[test]
    fn long_prompts_prefill_in_chunks_and_context_is_enforced() {
        let (_dir, model) = tiny();
        // Three byte-level tokens per repetition: 240 tokens, two prefill chunks.
        let prompt = "xy ".repeat(80);
        let ids = model.encode(&prompt).unwrap();
        assert_eq!(ids.len(), 240);
        let too_many = GenerateParams {
            max_tokens: Some(TINY_CONTEXT),
            ..greedy(None)
        };
        assert!(matches!(
            Sequence::new(model.clone(), ids.clone(), too_many),
            Err(crate::InferenceError::ContextOverflow { .. })
        ));
        // Without max_tokens the sequence may run to the end of the context, and no further.
        let (generated, _) = generate(&model, &prompt, greedy(None));
        assert!(ids.len() + generated.len() <= TINY_CONTEXT);
    }

    /// Feeding the prompt in chunks gives the logits one pass over all of it gives.
    #[test]
    fn chunked_prefill_matches_a_single_pass() {
        let (_dir, model) = tiny();
        let ids = model.encode(&"the cat ".repeat(30)).unwrap();
        let input = |range: std::ops::Range<usize>| {
            Tensor::new(&ids[range], &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap()
        };
        let whole = model.new_state().forward(&input(0..ids.len()), 0).unwrap();
        let mut state = model.new_state();
        state.forward(&input(0..100), 0).unwrap();
        let chunked = state.forward(&input(100..ids.len()), 100).unwrap();
        let diff: f32 = (whole - chunked)
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-3, "chunked prefill differs by {diff}");
    }

    /// The same weights as GGUF (f32, query/key rows permuted as llama.cpp converts them) and
    /// as a Hugging Face directory give the same logits and the same greedy text: both loaders
    /// read what the model is.
    #[test]
    fn gguf_and_safetensors_of_the_same_model_agree() {
        let dir = tempfile::tempdir().unwrap();
        let (gguf, hf) = (dir.path().join("tiny.gguf"), dir.path().join("tiny-hf"));
        write_tiny_llama_gguf(&gguf, 11, GgmlDType::F32).unwrap();
        write_tiny_llama_hf(&hf, 11).unwrap();
        let found = crate::identify(&hf, None).unwrap();
        assert_eq!(found.kind, crate::ModelKind::Text);
        let load = |path: &Path| {
            Arc::new(TextModel::load(path, "tiny", &Device::Cpu, WeightFormat::AsShipped).unwrap())
        };
        let (a, b) = (load(&gguf), load(&found.path));
        assert_eq!(b.architecture, crate::Architecture::Llama);
        let prompt = "the cat in the hat";
        assert_eq!(a.encode(prompt).unwrap(), b.encode(prompt).unwrap());
        let ids = a.encode(prompt).unwrap();
        let input = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = |m: &TextModel| m.new_state().forward(&input, 0).unwrap();
        let diff: f32 = (logits(&a) - logits(&b))
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-3, "the loaders' logits differ by {diff}");
        assert_eq!(
            generate(&a, prompt, greedy(Some(12))),
            generate(&b, prompt, greedy(Some(12)))
        );
        let chat = [Message {
            role: "user".into(),
            content: "hi".into(),
        }];
        assert_eq!(a.chat_prompt(&chat).unwrap(), b.chat_prompt(&chat).unwrap());
        assert!(b.is_end(b.tokenizer().token_to_id("<|im_end|>").unwrap()));
    }

    /// A Hugging Face tokenizer gets the BOS its post-processor adds, or, when
    /// `tokenizer_config.json` has `add_bos_token`, what that says; never two.
    #[test]
    fn hf_prompts_get_the_bos_their_tokenizer_config_asks_for_once() {
        let dir = tempfile::tempdir().unwrap();
        let hf = dir.path().join("hf");
        write_tiny_llama_hf(&hf, 5).unwrap();
        let load = || TextModel::load(&hf, "t", &Device::Cpu, WeightFormat::AsShipped).unwrap();
        let bos = load().tokenizer().token_to_id("<|im_start|>").unwrap();
        let first_two = |m: &TextModel, text: &str| m.encode(text).unwrap()[..2].to_vec();
        assert_ne!(first_two(&load(), "the cat")[0], bos);

        // A post-processor that adds the BOS, as Llama 3's tokenizer.json has.
        let path = hf.join("tokenizer.json");
        let mut tokenizer = tokenizers::Tokenizer::from_file(&path).unwrap();
        let template = tokenizers::processors::template::TemplateProcessing::builder()
            .try_single("<|im_start|> $A")
            .unwrap()
            .special_tokens(vec![("<|im_start|>", bos)])
            .build()
            .unwrap();
        tokenizer.with_post_processor(Some(template));
        tokenizer.save(&path, false).unwrap();
        let model = load();
        assert_eq!(first_two(&model, "the cat")[0], bos);
        assert_ne!(first_two(&model, "the cat")[1], bos);
        // A chat template that writes the BOS itself still gives one.
        let ids = first_two(&model, "<|im_start|>the cat");
        assert_eq!(ids[0], bos);
        assert_ne!(ids[1], bos);

        // tokenizer_config.json's flags win over the post-processor, as in transformers.
        let config = hf.join("tokenizer_config.json");
        let with_flag = |add: bool| {
            let mut c: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
            c["add_bos_token"] = add.into();
            std::fs::write(&config, c.to_string()).unwrap();
            load()
        };
        assert_ne!(first_two(&with_flag(false), "the cat")[0], bos);
        let ids = first_two(&with_flag(true), "the cat");
        assert_eq!(ids[0], bos);
        assert_ne!(ids[1], bos);
    }

    #[test]
    fn chat_template_and_special_tokens() {
        let (_dir, model) = tiny();
        let prompt = model
            .chat_prompt(&[Message {
                role: "user".into(),
                content: "hi".into(),
            }])
            .unwrap();
        assert_eq!(
            prompt,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        let ids = model.encode(&prompt).unwrap();
        let start = model.tokenizer().token_to_id("<|im_start|>").unwrap();
        assert_eq!(ids[0], start);
        assert!(model.is_end(model.tokenizer().token_to_id("<|im_end|>").unwrap()));
    }
}
