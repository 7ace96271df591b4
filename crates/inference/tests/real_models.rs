//! Known answers from the real models, as shipped: SmolLM2-135M-Instruct (GGUF Q4_1) and
//! all-minilm-l6-v2 (BERT safetensors). They need the model files, which `aicoin model fetch`
//! puts in a data dir: these tests are `#[ignore]`d and `scripts/test.sh` runs them with
//! `AICOIN_MODELS_DIR=<data dir>/models` after fetching, where a missing file fails them.

use std::{path::PathBuf, sync::Arc};

use aicoin_inference::{
    EmbeddingModel, FinishReason, GenerateParams, Message, SamplingParams, Sequence, TextModel,
    WeightFormat,
};
use candle_core::Device;

fn models_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("AICOIN_MODELS_DIR").expect("set AICOIN_MODELS_DIR to the fetched models"),
    )
}

fn smollm2(weights: WeightFormat) -> Arc<TextModel> {
    let path = models_dir().join("smollm2-135m-instruct/model.gguf");
    Arc::new(TextModel::load(&path, "smollm2-135m-instruct", &Device::Cpu, weights).unwrap())
}

fn greedy(max_tokens: usize) -> GenerateParams {
    GenerateParams {
        max_tokens: Some(max_tokens),
        sampling: SamplingParams {
            temperature: 0.0,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Runs a sequence to its end; returns the generated ids and text.
fn run(sequence: &mut Sequence) -> (Vec<u32>, String, FinishReason) {
    let (mut ids, mut text) = (Vec::new(), String::new());
    loop {
        let step = sequence.step().unwrap();
        ids.extend(step.token);
        text.push_str(&step.text);
        if let Some(reason) = step.finished {
            return (ids, text, reason);
        }
    }
}

#[test]
#[ignore = "needs the fetched models (AICOIN_MODELS_DIR)"]
fn smollm2_greedy_known_answer() {
    // The reference ids were measured on the file as shipped.
    let model = smollm2(WeightFormat::AsShipped);
    let prompt = model
        .encode("Once upon a time, there was a little robot who")
        .unwrap();
    let mut sequence = Sequence::new(model, prompt, greedy(12)).unwrap();
    let (ids, text, _) = run(&mut sequence);
    assert_eq!(
        &ids[..9],
        &[761, 253, 1767, 2470, 288, 919, 1495, 12396, 30],
        "{text:?}"
    );
}

#[test]
#[ignore = "needs the fetched models (AICOIN_MODELS_DIR)"]
fn smollm2_chat_knows_the_capital_of_france() {
    // The default (re-quantized) weights still answer right.
    let model = smollm2(WeightFormat::FastKernels);
    let messages = [Message {
        role: "user".into(),
        content: "What is the capital of France? Answer in one sentence.".into(),
    }];
    let prompt = model
        .encode(&model.chat_prompt(&messages).unwrap())
        .unwrap();
    let mut sequence = Sequence::new(model, prompt, greedy(60)).unwrap();
    let (_, text, reason) = run(&mut sequence);
    assert!(text.contains("Paris"), "{text:?}");
    assert_eq!(reason, FinishReason::Stop, "{text:?}");
    assert!(!text.contains("<|im_end|>"));
}

#[test]
#[ignore = "needs the fetched models (AICOIN_MODELS_DIR)"]
fn minilm_similarity_known_answer() {
    let dir = models_dir().join("all-minilm-l6-v2");
    let model = EmbeddingModel::load_dir(&dir, "all-minilm-l6-v2", &Device::Cpu).unwrap();
    let inputs = [
        "A man is eating food.".to_string(),
        "A man is eating a piece of bread.".to_string(),
    ];
    let (vectors, tokens) = model.embed(&inputs).unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[0].len(), 384);
    assert!(tokens > 10);
    let cosine: f32 = vectors[0].iter().zip(&vectors[1]).map(|(a, b)| a * b).sum();
    assert!((cosine - 0.755).abs() <= 0.005, "cosine {cosine}");
    // Batched and alone give the same vector (padding is masked out).
    let (alone, _) = model.embed(&inputs[..1]).unwrap();
    let diff: f32 = alone[0]
        .iter()
        .zip(&vectors[0])
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(diff < 1e-4, "padding changed the embedding by {diff}");
}
