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

/// Writes the tiny model to `path`. `seed` varies the weights (and so what it says).
pub fn write_tiny_llama(path: &Path, seed: u64) -> Result<()> {
    let device = Device::Cpu;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    // GPT-2's byte alphabet, then a few merges, then the chat special tokens.
    let mut tokens: Vec<String> = {
        let mut alphabet: Vec<char> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
            .into_iter()
            .collect();
        alphabet.sort();
        alphabet.iter().map(|c| c.to_string()).collect()
    };
    let merges = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n"];
    tokens.extend(["Ġt", "he", "Ġthe", "Ġa", "in"].map(String::from));
    tokens.extend(["<|endoftext|>", "<|im_start|>", "<|im_end|>"].map(String::from));
    let vocab = tokens.len();
    let mut types = vec![gguf_file::Value::I32(1); vocab];
    for t in &mut types[vocab - 3..] {
        *t = gguf_file::Value::I32(3);
    }
    let u32v = gguf_file::Value::U32;
    let metadata: Vec<(&str, gguf_file::Value)> = vec![
        ("general.architecture", string("llama")),
        ("llama.block_count", u32v(LAYERS as u32)),
        ("llama.context_length", u32v(TINY_CONTEXT as u32)),
        ("llama.embedding_length", u32v(EMBEDDING as u32)),
        ("llama.feed_forward_length", u32v(FEED_FORWARD as u32)),
        ("llama.attention.head_count", u32v(HEADS as u32)),
        ("llama.attention.head_count_kv", u32v(KV_HEADS as u32)),
        (
            "llama.rope.dimension_count",
            u32v((EMBEDDING / HEADS) as u32),
        ),
        ("llama.rope.freq_base", gguf_file::Value::F32(10_000.0)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            gguf_file::Value::F32(1e-5),
        ),
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
    let mut random = |shape: &[usize], dtype: GgmlDType| -> Result<QTensor> {
        use rand::Rng;
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let t = Tensor::from_vec(values, shape, &device)?;
        Ok(QTensor::quantize(&t, dtype)?)
    };
    let ones = |n: usize| -> Result<QTensor> {
        Ok(QTensor::quantize(
            &Tensor::ones(n, candle_core::DType::F32, &device)?,
            GgmlDType::F32,
        )?)
    };
    let head_dim = EMBEDDING / HEADS;
    let mut tensors: Vec<(String, QTensor)> = vec![
        (
            "token_embd.weight".into(),
            random(&[vocab, EMBEDDING], GgmlDType::F32)?,
        ),
        ("output_norm.weight".into(), ones(EMBEDDING)?),
        (
            "output.weight".into(),
            random(&[vocab, EMBEDDING], GgmlDType::Q8_0)?,
        ),
    ];
    for i in 0..LAYERS {
        let layer = |name: &str| format!("blk.{i}.{name}.weight");
        tensors.push((
            layer("attn_q"),
            random(&[EMBEDDING, EMBEDDING], GgmlDType::Q8_0)?,
        ));
        tensors.push((
            layer("attn_k"),
            random(&[KV_HEADS * head_dim, EMBEDDING], GgmlDType::Q8_0)?,
        ));
        tensors.push((
            layer("attn_v"),
            random(&[KV_HEADS * head_dim, EMBEDDING], GgmlDType::Q8_0)?,
        ));
        tensors.push((
            layer("attn_output"),
            random(&[EMBEDDING, EMBEDDING], GgmlDType::Q8_0)?,
        ));
        tensors.push((layer("attn_norm"), ones(EMBEDDING)?));
        tensors.push((
            layer("ffn_gate"),
            random(&[FEED_FORWARD, EMBEDDING], GgmlDType::Q8_0)?,
        ));
        tensors.push((
            layer("ffn_up"),
            random(&[FEED_FORWARD, EMBEDDING], GgmlDType::Q8_0)?,
        ));
        tensors.push((
            layer("ffn_down"),
            random(&[EMBEDDING, FEED_FORWARD], GgmlDType::Q8_0)?,
        ));
        tensors.push((layer("ffn_norm"), ones(EMBEDDING)?));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).map_err(crate::InferenceError::io(path))?;
    gguf_file::write(&mut file, &metadata, &tensors)?;
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
        let model =
            TextModel::load_gguf(&path, "tiny", &Device::Cpu, WeightFormat::AsShipped).unwrap();
        (dir, Arc::new(model))
    }

    fn greedy(max_tokens: Option<usize>) -> GenerateParams {
        GenerateParams {
            max_tokens,
            sampling: SamplingParams {
                temperature: 0.0,
                ..Default::default()
            },
            stop: Vec::new(),
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
