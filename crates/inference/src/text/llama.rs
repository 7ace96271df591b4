//! Our llama-family forward over GGUF weights (candle tensors and quantized matmuls), in three
//! steps a pipeline shard can run apart: [`Llama::embed`] (token ids to hidden states, on the
//! first shard), [`Llama::run_layers`] (the shard's `layers[a..b]`), and [`Llama::head`] (the
//! final norm and the logits of every position, on the last shard). A shard loads only its
//! layers' tensors, and runs of `[0, k)` then `[k, n)` give the whole model's logits bit for
//! bit: each layer is the same computation wherever it runs.
//!
//! Beside candle-transformers' `quantized_llama`, which grows each KV cache with `Tensor::cat`
//! every step and materializes repeated K/V heads:
//! - a sequence's KV cache ([`Cache`], candle-nn's `KvCache`) is written in place, allocated in
//!   blocks of [`KV_BLOCK`] positions (the whole context up front would hold 377 MB per
//!   sequence for SmolLM2's 8,192 tokens);
//! - [`Llama::score`] returns the logits of every position of a sequence in one prefill, the
//!   teacher-forced pass a proof-of-compute audit needs.

use std::ops::Range;

use candle_core::{
    D, DType, Device, Module, Tensor,
    quantized::{QMatMul, gguf_file},
};
use candle_nn::{Embedding, kv_cache::KvCache};

use super::gguf::metadata_string;
use crate::{InferenceError, Result};

/// Positions a KV cache allocates at a time.
pub const KV_BLOCK: usize = 512;

/// The shape of a llama-family model, from its GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rms_eps: f64,
    pub rope_base: f32,
    /// Rotary pairs are (i, i + d/2) rather than (2i, 2i + 1).
    pub rope_neox: bool,
    pub context_length: usize,
    pub vocab: usize,
}

impl Config {
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let arch = metadata_string(content, "general.architecture")
            .ok_or_else(|| bad("no general.architecture"))?;
        let get = |key: &str| {
            content
                .metadata
                .get(&format!("{arch}.{key}"))
                .ok_or_else(|| bad(&format!("no {arch}.{key}")))
        };
        let int = |key: &str| -> Result<usize> {
            Ok(get(key)?.to_u32().map_err(|e| bad(&e.to_string()))? as usize)
        };
        let heads = int("attention.head_count")?;
        let hidden = int("embedding_length")?;
        let vocab = content
            .metadata
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .map_or(0, Vec::len);
        Ok(Self {
            layers: int("block_count")?,
            hidden,
            heads,
            kv_heads: int("attention.head_count_kv").unwrap_or(heads),
            head_dim: int("rope.dimension_count").unwrap_or(hidden / heads),
            rms_eps: get("attention.layer_norm_rms_epsilon")?
                .to_f32()
                .map_err(|e| bad(&e.to_string()))? as f64,
            rope_base: get("rope.freq_base")
                .and_then(|v| v.to_f32().map_err(|e| bad(&e.to_string())))
                .unwrap_or(10_000.0),
            // llama.cpp's mapping (llama_model_rope_type): the Qwen family rotates halves.
            rope_neox: matches!(arch.as_str(), "qwen2" | "qwen3" | "qwen2moe" | "qwen3moe"),
            context_length: int("context_length").unwrap_or(4096),
            vocab,
        })
    }
}

fn bad(reason: &str) -> InferenceError {
    InferenceError::BadModel {
        path: Default::default(),
        reason: reason.to_string(),
    }
}

/// RMS normalization with a learned scale.
#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(x, &self.weight, self.eps)?)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    attn_norm: RmsNorm,
    q: QMatMul,
    k: QMatMul,
    v: QMatMul,
    out: QMatMul,
    ffn_norm: RmsNorm,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
}

/// One sequence's KV cache over an instance's layers.
#[derive(Debug, Clone)]
pub struct Cache {
    layers: Vec<KvCache>,
    /// Positions run so far.
    len: usize,
}

impl Cache {
    /// Tokens it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A llama-family model, or the layer range of one a shard serves.
#[derive(Debug, Clone)]
pub struct Llama {
    pub config: Config,
    /// The layers this instance runs.
    pub range: Range<usize>,
    embedding: Option<Embedding>,
    layers: Vec<Layer>,
    head: Option<(RmsNorm, QMatMul)>,
    cos: Tensor,
    sin: Tensor,
}

impl Llama {
    /// Loads `range` of the model's layers from `content`, with the embedding when the range
    /// starts at 0 and the head when it ends at the last layer.
    pub fn from_gguf<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        device: &Device,
        range: Range<usize>,
    ) -> Result<Self> {
        let config = Config::from_gguf(content)?;
        if range.start > range.end || range.end > config.layers {
            return Err(bad(&format!(
                "layers {range:?} are not within the model's {}",
                config.layers
            )));
        }
        let mut tensor =
            |name: &str| Ok::<_, InferenceError>(content.tensor(reader, name, device)?);
        let norm = |t: candle_core::quantized::QTensor, eps: f64| -> Result<RmsNorm> {
            Ok(RmsNorm {
                weight: t.dequantize(device)?,
                eps: eps as f32,
            })
        };
        let embedding = match range.start {
            0 => Some(Embedding::new(
                tensor("token_embd.weight")?.dequantize(device)?,
                config.hidden,
            )),
            _ => None,
        };
        let mut layers = Vec::with_capacity(range.len());
        for i in range.clone() {
            let mut w = |part: &str| tensor(&format!("blk.{i}.{part}.weight"));
            layers.push(Layer {
                attn_norm: norm(w("attn_norm")?, config.rms_eps)?,
                q: QMatMul::from_qtensor(w("attn_q")?)?,
                k: QMatMul::from_qtensor(w("attn_k")?)?,
                v: QMatMul::from_qtensor(w("attn_v")?)?,
                out: QMatMul::from_qtensor(w("attn_output")?)?,
                ffn_norm: norm(w("ffn_norm")?, config.rms_eps)?,
                gate: QMatMul::from_qtensor(w("ffn_gate")?)?,
                up: QMatMul::from_qtensor(w("ffn_up")?)?,
                down: QMatMul::from_qtensor(w("ffn_down")?)?,
            });
        }
        let head = match range.end == config.layers {
            true => {
                let output = match tensor("output.weight") {
                    Ok(output) => output,
                    // Tied embeddings.
                    Err(_) => tensor("token_embd.weight")?,
                };
                Some((
                    norm(tensor("output_norm.weight")?, config.rms_eps)?,
                    QMatMul::from_qtensor(output)?,
                ))
            }
            false => None,
        };
        let (cos, sin) = rotary(&config, device)?;
        Ok(Self {
            config,
            range,
            embedding,
            layers,
            head,
            cos,
            sin,
        })
    }

    /// A fresh cache for a new sequence (its memory is taken on first use).
    pub fn new_cache(&self) -> Cache {
        Cache {
            layers: (0..self.layers.len())
                .map(|_| KvCache::new(2, KV_BLOCK.min(self.config.context_length)))
                .collect(),
            len: 0,
        }
    }

    /// Hidden states `[1, seq, hidden]` of `tokens` (`[1, seq]`); the first shard's step.
    pub fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        let embedding = self
            .embedding
            .as_ref()
            .ok_or_else(|| bad("this shard does not start at layer 0: it has no embedding"))?;
        Ok(embedding.forward(tokens)?)
    }

    /// This instance's layers over `hidden` (`[1, seq, hidden]`), the tokens at positions
    /// `pos..pos + seq` of the sequence whose cache is `cache` (position 0 starts it afresh).
    pub fn run_layers(&self, hidden: &Tensor, pos: usize, cache: &mut Cache) -> Result<Tensor> {
        let (_, seq, _) = hidden.dims3()?;
        if pos == 0 {
            cache.layers.iter_mut().for_each(KvCache::reset);
            cache.len = 0;
        }
        if pos != cache.len() {
            return Err(InferenceError::InvalidRequest(format!(
                "position {pos} does not follow the {} cached tokens",
                cache.len()
            )));
        }
        let mask = match seq {
            1 => None,
            _ => Some(self.mask(seq, pos, hidden.device())?),
        };
        let mut x = hidden.clone();
        for (layer, kv) in self.layers.iter().zip(&mut cache.layers) {
            let attended =
                self.attention(layer, &layer.attn_norm.forward(&x)?, pos, mask.as_ref(), kv)?;
            x = (x + attended)?;
            let h = layer.ffn_norm.forward(&x)?;
            let mlp = layer.down.forward(
                &(candle_nn::ops::silu(&layer.gate.forward(&h)?)? * layer.up.forward(&h)?)?,
            )?;
            x = (x + mlp)?;
        }
        cache.len = pos + seq;
        Ok(x)
    }

    /// The logits `[1, seq, vocab]` of every position of `hidden`; the last shard's step.
    pub fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        let (norm, output) = self
            .head
            .as_ref()
            .ok_or_else(|| bad("this shard does not end at the last layer: it has no head"))?;
        Ok(output.forward(&norm.forward(hidden)?)?)
    }

    /// The whole model's logits `[vocab]` after `tokens` (`[1, seq]`) at `pos`.
    pub fn forward(&self, tokens: &Tensor, pos: usize, cache: &mut Cache) -> Result<Tensor> {
        let hidden = self.run_layers(&self.embed(tokens)?, pos, cache)?;
        let (_, seq, _) = hidden.dims3()?;
        Ok(self.head(&hidden.narrow(1, seq - 1, 1)?)?.flatten_all()?)
    }

    /// The logits `[n - from, vocab]` at positions `from..n` of `tokens` in one prefill from an
    /// empty cache: row i scores the token that follows `tokens[..=from + i]` (teacher forcing).
    /// Only those rows go through the head (for SmolLM2 the vocabulary projection costs a
    /// quarter of a layer stack per row).
    pub fn score(&self, tokens: &[u32], from: usize, device: &Device) -> Result<Tensor> {
        let mut cache = self.new_cache();
        let input = Tensor::new(tokens, device)?.unsqueeze(0)?;
        let hidden = self.run_layers(&self.embed(&input)?, 0, &mut cache)?;
        let from = from.min(tokens.len().saturating_sub(1));
        let rows = hidden.narrow(1, from, tokens.len() - from)?;
        Ok(self.head(&rows)?.squeeze(0)?)
    }

    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        pos: usize,
        mask: Option<&Tensor>,
        kv: &mut KvCache,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (b, seq, _) = x.dims3()?;
        let split = |t: Tensor, heads: usize| -> Result<Tensor> {
            Ok(t.reshape((b, seq, heads, c.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = self.rope(&split(layer.q.forward(x)?, c.heads)?, pos)?;
        let k = self.rope(&split(layer.k.forward(x)?, c.kv_heads)?, pos)?;
        let v = split(layer.v.forward(x)?, c.kv_heads)?;
        let (k, v) = kv.append(&k, &v)?;
        // Grouped-query attention with each KV head repeated for its query heads, as candle's
        // models do. Multiplying a KV head with its group of query heads as rows of one matrix
        // (no copy) was tried: exact on the tiny model, but its other rounding, through the
        // next layer's re-quantized activations, changed SmolLM2's greedy answer at the 7th
        // token, and answers must not change.
        let group = c.heads / c.kv_heads;
        let (_, _, kv_len, _) = k.dims4()?;
        let k = Tensor::cat(&vec![&k; group], 2)?.reshape((b, c.heads, kv_len, c.head_dim))?;
        let v = Tensor::cat(&vec![&v; group], 2)?.reshape((b, c.heads, kv_len, c.head_dim))?;
        let scores = (q.matmul(&k.t()?)? / (c.head_dim as f64).sqrt())?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = weights
            .matmul(&v.contiguous()?)?
            .transpose(1, 2)?
            .reshape((b, seq, c.heads * c.head_dim))?;
        Ok(layer.out.forward(&y)?)
    }

    fn rope(&self, x: &Tensor, pos: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let (cos, sin) = (self.cos.narrow(0, pos, seq)?, self.sin.narrow(0, pos, seq)?);
        Ok(match self.config.rope_neox {
            true => candle_nn::rotary_emb::rope(x, &cos, &sin)?,
            false => candle_nn::rotary_emb::rope_i(x, &cos, &sin)?,
        })
    }

    /// `[seq, pos + seq]`: 0 where query i may see key j (j ≤ pos + i), −∞ elsewhere.
    fn mask(&self, seq: usize, pos: usize, device: &Device) -> Result<Tensor> {
        let keys = pos + seq;
        let values: Vec<f32> = (0..seq)
            .flat_map(|i| (0..keys).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        Ok(Tensor::from_vec(values, (seq, keys), device)?)
    }
}

/// The rotary tables `[context, head_dim / 2]`.
fn rotary(c: &Config, device: &Device) -> Result<(Tensor, Tensor)> {
    let inverse: Vec<f32> = (0..c.head_dim)
        .step_by(2)
        .map(|i| 1.0 / c.rope_base.powf(i as f32 / c.head_dim as f32))
        .collect();
    let inverse = Tensor::new(inverse.as_slice(), device)?.unsqueeze(0)?;
    let positions = Tensor::arange(0u32, c.context_length as u32, device)?
        .to_dtype(DType::F32)?
        .unsqueeze(1)?;
    let angles = positions.matmul(&inverse)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// The index of each row's largest logit.
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}

#[cfg(test)]
mod tests {
    use candle_transformers::models::quantized_llama;

    use super::*;

    fn tiny() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        crate::testing::write_tiny_llama(&path, 11).unwrap();
        (dir, path)
    }

    fn load(path: &std::path::Path, range: Range<usize>) -> Llama {
        let mut file = std::fs::File::open(path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        Llama::from_gguf(&content, &mut file, &Device::Cpu, range).unwrap()
    }

    const PROMPT: [u32; 7] = [40, 71, 12, 99, 5, 230, 17];

    fn ids(tokens: &[u32]) -> Tensor {
        Tensor::new(tokens, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
    }

    /// Prefill, then three decode steps feeding back the argmax: the logits after each.
    fn run(step: &mut dyn FnMut(&[u32], usize) -> Tensor) -> Vec<Vec<f32>> {
        let mut all = vec![step(&PROMPT, 0).to_vec1::<f32>().unwrap()];
        for pos in PROMPT.len()..PROMPT.len() + 3 {
            let last = all.last().unwrap();
            let next = (0..last.len())
                .max_by(|&a, &b| last[a].total_cmp(&last[b]))
                .unwrap() as u32;
            all.push(step(&[next], pos).to_vec1::<f32>().unwrap());
        }
        all
    }

    #[test]
    fn it_computes_exactly_what_candle_transformers_quantized_llama_computes() {
        let (_dir, path) = tiny();
        let ours = load(&path, 0..2);
        let mut cache = ours.new_cache();
        let mine = run(&mut |t, pos| ours.forward(&ids(t), pos, &mut cache).unwrap());
        let mut file = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        let mut theirs =
            quantized_llama::ModelWeights::from_gguf(content, &mut file, &Device::Cpu).unwrap();
        let reference =
            run(&mut |t, pos| theirs.forward(&ids(t), pos).unwrap().flatten_all().unwrap());
        for (step, (a, b)) in mine.iter().zip(&reference).enumerate() {
            assert_eq!(a, b, "step {step}");
        }
    }

    #[test]
    fn two_shards_give_the_whole_models_logits_bit_for_bit() {
        let (_dir, path) = tiny();
        let whole = load(&path, 0..2);
        let mut cache = whole.new_cache();
        let expected = run(&mut |t, pos| whole.forward(&ids(t), pos, &mut cache).unwrap());
        for k in 0..=2 {
            let (first, second) = (load(&path, 0..k), load(&path, k..2));
            let (mut a, mut b) = (first.new_cache(), second.new_cache());
            let got = run(&mut |t, pos| {
                let hidden = first
                    .run_layers(&first.embed(&ids(t)).unwrap(), pos, &mut a)
                    .unwrap();
                let hidden = second.run_layers(&hidden, pos, &mut b).unwrap();
                let seq = hidden.dim(1).unwrap();
                second
                    .head(&hidden.narrow(1, seq - 1, 1).unwrap())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
            });
            assert_eq!(got, expected, "split at layer {k}");
        }
        assert!(
            load(&path, 1..2).embed(&ids(&PROMPT)).is_err(),
            "a later shard has no embedding"
        );
        assert!(
            load(&path, 0..1)
                .head(&Tensor::zeros((1, 1, 64), DType::F32, &Device::Cpu).unwrap())
                .is_err()
        );
    }

    #[test]
    fn one_scoring_prefill_agrees_with_greedy_generation_at_every_position() {
        let (_dir, path) = tiny();
        let model = load(&path, 0..2);
        // Greedy generation, one token at a time.
        let mut cache = model.new_cache();
        let mut sequence = PROMPT.to_vec();
        let mut logits = model.forward(&ids(&PROMPT), 0, &mut cache).unwrap();
        let mut greedy = Vec::new();
        for _ in 0..6 {
            let next = argmax_rows(&logits.unsqueeze(0).unwrap()).unwrap()[0];
            greedy.push(next);
            logits = model
                .forward(&ids(&[next]), sequence.len(), &mut cache)
                .unwrap();
            sequence.push(next);
        }
        assert_eq!(cache.len(), sequence.len());
        // The scoring pass over prompt + answer: each answer position's argmax is greedy's.
        let scored = argmax_rows(&model.score(&sequence, 0, &Device::Cpu).unwrap()).unwrap();
        assert_eq!(&scored[PROMPT.len() - 1..sequence.len() - 1], &greedy[..]);
    }
}
