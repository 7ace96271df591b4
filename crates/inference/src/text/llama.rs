//! Our llama-family forward (llama, mistral, qwen2 with its Q/K/V biases, qwen3 with its
//! per-head Q/K norms) over GGUF weights (candle tensors and quantized matmuls), in three
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
//!   sequence for SmolLM2's 8,192 tokens), and a decode step attends to it in place, each
//!   query head to its KV head's rows ([`decode_attention`]), with no repeated K/V;
//! - [`Llama::score`] returns the logits of every position of a sequence in one prefill, the
//!   teacher-forced pass a proof-of-compute audit needs;
//! - [`Llama::run_layers_batch`] runs one decode step of many sequences in one pass, each row
//!   exactly what it would be alone;
//! - Q·K·V and gate·up are one matmul each ([`Projections`]).

use std::{ops::Range, path::Path};

use candle_core::{D, DType, Device, Tensor, quantized::gguf_file};
use candle_nn::kv_cache::KvCache;

use super::{
    attention::{decode_attention, repeated_kv_attention},
    gguf::{metadata_string, open},
    matmul::{Embeddings, Matmul, Projections},
    swiglu::swiglu,
};
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
    /// The shape of the model in the GGUF file at `path`, from its header alone.
    pub fn read(path: &Path) -> Result<Self> {
        Self::from_gguf(&open(path)?.0)
    }

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
        let kv_heads = int("attention.head_count_kv").unwrap_or(heads);
        // A file is anyone's: shapes that would divide by zero or split heads unevenly are
        // refused here, not met as a panic in the forward (found by fuzzing the header).
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || hidden == 0 {
            return Err(bad(&format!(
                "{heads} attention heads, {kv_heads} key/value heads and width {hidden} \
                 are not a model's shape"
            )));
        }
        let vocab = content
            .metadata
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .map_or(0, Vec::len);
        Ok(Self {
            layers: int("block_count")?,
            hidden,
            heads,
            kv_heads,
            // Qwen3's heads are wider than hidden / heads, and say so in key_length.
            head_dim: int("attention.key_length")
                .or_else(|_| int("rope.dimension_count"))
                .unwrap_or(hidden / heads),
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
    /// Q, K and V.
    qkv: Projections,
    /// Qwen2's biases of Q, K and V.
    qkv_bias: Option<[Tensor; 3]>,
    /// Qwen3's RMS norms of each query and key head, before the rotation.
    qk_norm: Option<(RmsNorm, RmsNorm)>,
    out: Matmul,
    ffn_norm: RmsNorm,
    /// The MLP's gate and up projections.
    gate_up: Projections,
    down: Matmul,
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

    /// Forgets every position from `len` on, so a step from `len` can run (again). A pipeline
    /// shard's retried step starts where the failed one did. Each layer is cut to `len` from
    /// whatever it holds (a step that failed part way leaves its first layers longer than the
    /// rest); the kept rows go into a fresh buffer, so only a rewind pays a copy, never a step
    /// that follows the cache.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len > self.len {
            return Err(InferenceError::InvalidRequest(format!(
                "position {len} is past the {} cached tokens",
                self.len
            )));
        }
        for kv in &mut self.layers {
            if kv.current_seq_len() == len {
                continue;
            }
            let keep = |t: Tensor| -> Result<Tensor> { Ok(t.narrow(2, 0, len)?.contiguous()?) };
            let kept = match (kv.k()?, kv.v()?) {
                (Some(k), Some(v)) if len > 0 => Some((keep(k)?, keep(v)?)),
                _ => None,
            };
            kv.reset();
            if let Some((k, v)) = kept {
                kv.append(&k, &v)?;
            }
        }
        self.len = len;
        Ok(())
    }
}

/// A llama-family model, or the layer range of one a shard serves.
#[derive(Debug, Clone)]
pub struct Llama {
    pub config: Config,
    /// The layers this instance runs.
    pub range: Range<usize>,
    embedding: Option<Embeddings>,
    layers: Vec<Layer>,
    head: Option<(RmsNorm, Matmul)>,
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
        let ends = (range.start == 0, range.end == config.layers);
        Self::load(config, content, reader, device, range, ends)
    }

    /// Loads `range` of the layers of the model in the GGUF file at `path`, and neither its
    /// embedding nor its head: what a pipeline shard runs (its coordinator embeds and samples).
    pub fn layers_from_file(path: &Path, device: &Device, range: Range<usize>) -> Result<Self> {
        let (content, mut file) = open(path)?;
        let config = Config::from_gguf(&content)?;
        Self::load(config, &content, &mut file, device, range, (false, false))
    }

    /// Loads the embedding and the head and no layer: what a pipeline's coordinator runs
    /// around the shards that hold the layers.
    pub fn ends_from_gguf<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self> {
        let config = Config::from_gguf(content)?;
        Self::load(config, content, reader, device, 0..0, (true, true))
    }

    fn load<R: std::io::Read + std::io::Seek>(
        config: Config,
        content: &gguf_file::Content,
        reader: &mut R,
        device: &Device,
        range: Range<usize>,
        (with_embedding, with_head): (bool, bool),
    ) -> Result<Self> {
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
        let embedding = match with_embedding {
            true => Some(Embeddings::new(tensor("token_embd.weight")?, device)?),
            false => None,
        };
        let mut layers = Vec::with_capacity(range.len());
        let has = |name: &str| content.tensor_infos.contains_key(name);
        for i in range.clone() {
            let (bias, qk_norm) = (
                has(&format!("blk.{i}.attn_q.bias")),
                has(&format!("blk.{i}.attn_q_norm.weight")),
            );
            let mut w = |part: &str| tensor(&format!("blk.{i}.{part}"));
            layers.push(Layer {
                attn_norm: norm(w("attn_norm.weight")?, config.rms_eps)?,
                qkv: Projections::new(
                    vec![
                        w("attn_q.weight")?,
                        w("attn_k.weight")?,
                        w("attn_v.weight")?,
                    ],
                    device,
                )?,
                qkv_bias: match bias {
                    true => Some([
                        w("attn_q.bias")?.dequantize(device)?,
                        w("attn_k.bias")?.dequantize(device)?,
                        w("attn_v.bias")?.dequantize(device)?,
                    ]),
                    false => None,
                },
                qk_norm: match qk_norm {
                    true => Some((
                        norm(w("attn_q_norm.weight")?, config.rms_eps)?,
                        norm(w("attn_k_norm.weight")?, config.rms_eps)?,
                    )),
                    false => None,
                },
                out: Matmul::new(w("attn_output.weight")?)?,
                ffn_norm: norm(w("ffn_norm.weight")?, config.rms_eps)?,
                gate_up: Projections::new(
                    vec![w("ffn_gate.weight")?, w("ffn_up.weight")?],
                    device,
                )?,
                down: Matmul::new(w("ffn_down.weight")?)?,
            });
        }
        let head = match with_head {
            true => {
                let output = match has("output.weight") {
                    true => Matmul::new(tensor("output.weight")?)?,
                    // Tied embeddings: the table's own bytes where it stays quantized.
                    false => match embedding.as_ref().and_then(Embeddings::as_head) {
                        Some(head) => head,
                        None => Matmul::new(tensor("token_embd.weight")?)?,
                    },
                };
                Some((norm(tensor("output_norm.weight")?, config.rms_eps)?, output))
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

    /// Where its tensors live.
    pub fn device(&self) -> &Device {
        self.cos.device()
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

    /// Whether a sequence's rows come out the same in a decode batch as alone
    /// ([`Llama::run_layers_batch`]): true where every matmul is ([`Matmul::batch_invariant`]),
    /// that is, runs on our Q4_1 and Q8_0 kernels; false for f32, f16 and k-quant weights.
    pub fn batch_invariant(&self) -> bool {
        let layers = self.layers.iter().all(|layer| {
            layer.qkv.batch_invariant()
                && layer.out.batch_invariant()
                && layer.gate_up.batch_invariant()
                && layer.down.batch_invariant()
        });
        layers
            && self
                .head
                .as_ref()
                .is_none_or(|(_, head)| head.batch_invariant())
    }

    /// Hidden states `[1, seq, hidden]` of `tokens` (`[1, seq]`); the first shard's step.
    pub fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        let embedding = self
            .embedding
            .as_ref()
            .ok_or_else(|| bad("this shard does not start at layer 0: it has no embedding"))?;
        embedding.forward(tokens)
    }

    /// This instance's layers over `hidden` (`[1, seq, hidden]`), the tokens at positions
    /// `pos..pos + seq` of the sequence whose cache is `cache`. A step from a position the
    /// cache already holds replaces what follows it ([`Cache::truncate`]): position 0 starts
    /// the sequence afresh, and a retried step gives what it gave the first time.
    pub fn run_layers(&self, hidden: &Tensor, pos: usize, cache: &mut Cache) -> Result<Tensor> {
        self.within_context(pos, hidden.dim(1)?)?;
        cache.truncate(pos)?;
        let x = self.run_through(hidden, pos, self.layers.iter().zip(&mut cache.layers))?;
        cache.len = pos + hidden.dim(1)?;
        Ok(x)
    }

    /// Layers `layers` (model indices inside this instance's range) over `hidden`, the tokens
    /// at positions `0..seq` of a sequence of their own, in one prefill whose cache is dropped
    /// after: what an auditor runs to recompute the span of layers a shard claims to have run.
    /// An empty span gives `hidden` back.
    pub fn prefill_span(&self, hidden: &Tensor, layers: Range<usize>) -> Result<Tensor> {
        if layers.start < self.range.start || layers.end > self.range.end {
            return Err(InferenceError::InvalidRequest(format!(
                "layers {layers:?} are outside the {:?} this instance holds",
                self.range
            )));
        }
        let offset = self.range.start;
        let span = &self.layers[layers.start - offset..layers.end - offset];
        let seq = hidden.dim(1)?;
        self.within_context(0, seq)?;
        let mut caches: Vec<KvCache> = span.iter().map(|_| KvCache::new(2, seq.max(1))).collect();
        self.run_through(hidden, 0, span.iter().zip(&mut caches))
    }

    /// Positions `pos..pos + seq` lie within the model's context.
    fn within_context(&self, pos: usize, seq: usize) -> Result<()> {
        if pos + seq > self.config.context_length {
            return Err(InferenceError::InvalidRequest(format!(
                "positions {pos}..{} are past the model's context of {}",
                pos + seq,
                self.config.context_length
            )));
        }
        Ok(())
    }

    /// `layers`, each with its sequence's KV cache, over `hidden` (`[1, seq, hidden]`), the
    /// tokens at positions `pos..pos + seq` ([`Llama::within_context`] checked).
    fn run_through<'a>(
        &'a self,
        hidden: &Tensor,
        pos: usize,
        layers: impl Iterator<Item = (&'a Layer, &'a mut KvCache)>,
    ) -> Result<Tensor> {
        let (_, seq, _) = hidden.dims3()?;
        let mask = match seq {
            1 => None,
            _ => Some(self.mask(seq, pos, hidden.device())?),
        };
        let mut x = hidden.clone();
        for (layer, kv) in layers {
            x = self.layer(layer, &x, |q, k, v| {
                self.attention(layer, [q, k, v], pos, mask.as_ref(), kv)
            })?;
        }
        Ok(x)
    }

    /// One decode step of several sequences in one pass: row i of `hidden` (`[n, 1, hidden]`)
    /// is the next token of the sequence whose cache is `caches[i]`, at position
    /// `caches[i].len()`. The rows share every matmul, so each weight is read once for all of
    /// them, and attend each to its own cache; where the model is
    /// [`Llama::batch_invariant`], each row comes out bit for bit as that sequence's own
    /// [`Llama::run_layers`] gives it.
    pub fn run_layers_batch(&self, hidden: &Tensor, caches: &mut [&mut Cache]) -> Result<Tensor> {
        let (rows, seq, _) = hidden.dims3()?;
        if rows != caches.len() || seq != 1 {
            return Err(InferenceError::InvalidRequest(format!(
                "a batched decode step takes one token for each of the {} sequences, not \
                 {rows} x {seq}",
                caches.len()
            )));
        }
        if let Some(empty) = caches.iter().position(|c| c.is_empty()) {
            return Err(InferenceError::InvalidRequest(format!(
                "sequence {empty} of the batch has no prompt in its cache"
            )));
        }
        let context = self.config.context_length;
        if let Some(full) = caches.iter().position(|c| c.len >= context) {
            return Err(InferenceError::InvalidRequest(format!(
                "sequence {full} of the batch has filled the model's context of {context}"
            )));
        }
        // Each row's rotation at its own position, gathered once for every layer.
        let positions: Vec<u32> = caches.iter().map(|c| c.len as u32).collect();
        let positions = Tensor::new(positions.as_slice(), hidden.device())?;
        let gather = |table: &Tensor| -> Result<Tensor> {
            Ok(table.index_select(&positions, 0)?.unsqueeze(1)?)
        };
        let (cos, sin) = (gather(&self.cos)?, gather(&self.sin)?);
        let c = &self.config;
        let mut x = hidden.clone();
        for (l, layer) in self.layers.iter().enumerate() {
            x = self.layer(layer, &x, |q, k, v| {
                let [q, k, v] = self.heads(layer, [q, k, v], (&cos, &sin))?;
                let kv = caches
                    .iter_mut()
                    .enumerate()
                    .map(|(i, cache)| {
                        Ok(cache.layers[l].append(&k.narrow(0, i, 1)?, &v.narrow(0, i, 1)?)?)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(decode_attention(&q, &kv)?.reshape((rows, 1, c.heads * c.head_dim))?)
            })?;
        }
        for cache in caches.iter_mut() {
            cache.len += 1;
        }
        Ok(x)
    }

    /// One transformer block over `x` (`[rows, seq, hidden]`); `attend` turns the rows' Q, K
    /// and V projections into their attention outputs.
    fn layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        mut attend: impl FnMut(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let h = layer.attn_norm.forward(x)?;
        let mut qkv = layer.qkv.forward(&h)?;
        if let Some(bias) = &layer.qkv_bias {
            for (projection, bias) in qkv.iter_mut().zip(bias) {
                *projection = projection.broadcast_add(bias)?;
            }
        }
        let attended = attend(&qkv[0], &qkv[1], &qkv[2])?;
        let x = (x + layer.out.forward(&attended)?)?;
        let h = layer.ffn_norm.forward(&x)?;
        let gate_up = layer.gate_up.forward(&h)?;
        let mlp = layer.down.forward(&swiglu(&gate_up[0], &gate_up[1])?)?;
        Ok((x + mlp)?)
    }

    /// The logits `[1, seq, vocab]` of every position of `hidden`; the last shard's step.
    pub fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        let (norm, output) = self
            .head
            .as_ref()
            .ok_or_else(|| bad("this shard does not end at the last layer: it has no head"))?;
        output.forward(&norm.forward(hidden)?)
    }

    /// The whole model's logits `[vocab]` after `tokens` (`[1, seq]`) at `pos`.
    pub fn forward(&self, tokens: &Tensor, pos: usize, cache: &mut Cache) -> Result<Tensor> {
        let hidden = self.run_layers(&self.embed(tokens)?, pos, cache)?;
        let (_, seq, _) = hidden.dims3()?;
        Ok(self.head(&hidden.narrow(1, seq - 1, 1)?)?.flatten_all()?)
    }

    /// One decode step of several whole-model sequences ([`Llama::run_layers_batch`]):
    /// `tokens[i]` follows the tokens in `caches[i]`. The logits `[n, vocab]`.
    pub fn decode(
        &self,
        tokens: &[u32],
        caches: &mut [&mut Cache],
        device: &Device,
    ) -> Result<Tensor> {
        let input = Tensor::new(tokens, device)?.unsqueeze(1)?;
        let hidden = self.run_layers_batch(&self.embed(&input)?, caches)?;
        Ok(self.head(&hidden)?.squeeze(1)?)
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

    /// One sequence's attention in `layer`: `q`, `k`, `v` are its projections (`[1, seq, _]`)
    /// at positions `pos..pos + seq`; the new K/V go into `kv`.
    fn attention(
        &self,
        layer: &Layer,
        [q, k, v]: [&Tensor; 3],
        pos: usize,
        mask: Option<&Tensor>,
        kv: &mut KvCache,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (b, seq, _) = q.dims3()?;
        let rotation = (
            &self.cos.narrow(0, pos, seq)?,
            &self.sin.narrow(0, pos, seq)?,
        );
        let [q, k, v] = self.heads(layer, [q, k, v], rotation)?;
        let (k, v) = kv.append(&k, &v)?;
        let y = match seq {
            // One new token: read K and V in place (the same floats).
            1 => decode_attention(&q, &[(k, v)])?,
            _ => repeated_kv_attention(&q, &k, &v, mask)?.transpose(1, 2)?,
        };
        Ok(y.reshape((b, seq, c.heads * c.head_dim))?)
    }

    /// Q, K and V projections (`[b, seq, _]`) as heads (`[b, heads, seq, head_dim]`), with
    /// Qwen3's per-head norms, and Q and K rotated by `cos` and `sin`: `[seq, head_dim / 2]`
    /// for positions shared by every row, or `[b, seq, head_dim / 2]`, each row's own.
    fn heads(
        &self,
        layer: &Layer,
        [q, k, v]: [&Tensor; 3],
        (cos, sin): (&Tensor, &Tensor),
    ) -> Result<[Tensor; 3]> {
        let c = &self.config;
        let (b, seq, _) = q.dims3()?;
        let split = |t: &Tensor, heads: usize| -> Result<Tensor> {
            Ok(t.reshape((b, seq, heads, c.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (mut q, mut k) = (split(q, c.heads)?, split(k, c.kv_heads)?);
        if let Some((q_norm, k_norm)) = &layer.qk_norm {
            (q, k) = (q_norm.forward(&q)?, k_norm.forward(&k)?);
        }
        let rope = |x: &Tensor| -> Result<Tensor> {
            Ok(match c.rope_neox {
                true => candle_nn::rotary_emb::rope(x, cos, sin)?,
                false => candle_nn::rotary_emb::rope_i(x, cos, sin)?,
            })
        };
        Ok([rope(&q)?, rope(&k)?, split(v, c.kv_heads)?])
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
    use candle_core::quantized::GgmlDType;
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
    fn spans_of_the_whole_model_chain_to_its_prefill_bit_for_bit() {
        let (_dir, path) = tiny();
        let whole = load(&path, 0..2);
        let input = whole.embed(&ids(&PROMPT)).unwrap();
        let expected = whole
            .run_layers(&input, 0, &mut whole.new_cache())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for k in 0..=2 {
            let first = whole.prefill_span(&input, 0..k).unwrap();
            let got = whole.prefill_span(&first, k..2).unwrap();
            let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(got, expected, "split at layer {k}");
        }
        let shard = load(&path, 1..2);
        assert!(
            shard.prefill_span(&input, 0..2).is_err(),
            "a span outside the instance's layers is refused"
        );
    }

    #[test]
    fn a_step_rerun_from_an_earlier_position_gives_what_it_gave_the_first_time() {
        let (_dir, path) = tiny();
        let model = load(&path, 0..2);
        let mut cache = model.new_cache();
        let prefill = model.forward(&ids(&PROMPT), 0, &mut cache).unwrap();
        let step = model.forward(&ids(&[3]), PROMPT.len(), &mut cache).unwrap();
        // The same decode step again (a retry): the same logits, the same cache length.
        let again = model.forward(&ids(&[3]), PROMPT.len(), &mut cache).unwrap();
        assert_eq!(
            again.to_vec1::<f32>().unwrap(),
            step.to_vec1::<f32>().unwrap()
        );
        assert_eq!(cache.len(), PROMPT.len() + 1);
        // Back into the prompt: its tail again gives the prefill's logits.
        let tail = model.forward(&ids(&PROMPT[4..]), 4, &mut cache).unwrap();
        assert_eq!(
            tail.to_vec1::<f32>().unwrap(),
            prefill.to_vec1::<f32>().unwrap()
        );
        assert_eq!(cache.len(), PROMPT.len());
        // Past what it holds is refused.
        assert!(
            model
                .forward(&ids(&[3]), PROMPT.len() + 2, &mut cache)
                .is_err()
        );
    }

    #[test]
    fn the_ends_alone_around_every_layer_elsewhere_give_the_whole_models_logits() {
        let (_dir, path) = tiny();
        let whole = load(&path, 0..2);
        let mut cache = whole.new_cache();
        let expected = run(&mut |t, pos| whole.forward(&ids(t), pos, &mut cache).unwrap());
        let mut file = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        let ends = Llama::ends_from_gguf(&content, &mut file, &Device::Cpu).unwrap();
        assert!(ends.layers.is_empty());
        let (first, second) = (load(&path, 0..1), load(&path, 1..2));
        let (mut a, mut b) = (first.new_cache(), second.new_cache());
        let got = run(&mut |t, pos| {
            let hidden = ends.embed(&ids(t)).unwrap();
            let hidden = first.run_layers(&hidden, pos, &mut a).unwrap();
            let hidden = second.run_layers(&hidden, pos, &mut b).unwrap();
            let seq = hidden.dim(1).unwrap();
            let last = hidden.narrow(1, seq - 1, 1).unwrap();
            ends.head(&last).unwrap().flatten_all().unwrap()
        });
        assert_eq!(got, expected);
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

    /// The logits after each step of a greedy run: the prompt, then `steps` decode steps.
    fn greedy_alone(model: &Llama, prompt: &[u32], steps: usize) -> Vec<Vec<f32>> {
        let mut cache = model.new_cache();
        let mut all = vec![model.forward(&ids(prompt), 0, &mut cache).unwrap()];
        for pos in prompt.len()..prompt.len() + steps {
            let next = argmax_rows(&all.last().unwrap().unsqueeze(0).unwrap()).unwrap()[0];
            all.push(model.forward(&ids(&[next]), pos, &mut cache).unwrap());
        }
        all.iter().map(|l| l.to_vec1::<f32>().unwrap()).collect()
    }

    #[test]
    fn a_batched_decode_step_gives_every_sequence_its_own_logits_bit_for_bit() {
        let (_dir, path) = tiny();
        batched_decoding_changes_nothing(&load(&path, 0..2));
        // The Qwen family: halves rotated, Q/K/V biases (qwen2), per-head Q/K norms (qwen3).
        // Quantized weights: candle's f32 matmul (gemm) blocks its sums by the row count, so
        // an f32 model's rows are not the same floats in another batch, and it says so.
        for arch in ["qwen2", "qwen3"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("qwen.gguf");
            crate::testing::write_tiny_qwen(&path, 11, arch, GgmlDType::Q8_0).unwrap();
            batched_decoding_changes_nothing(&load(&path, 0..2));
            crate::testing::write_tiny_qwen(&path, 11, arch, GgmlDType::F32).unwrap();
            assert!(!load(&path, 0..2).batch_invariant(), "{arch} in f32");
        }
    }

    fn batched_decoding_changes_nothing(model: &Llama) {
        assert!(model.batch_invariant());
        // Eight sequences of different lengths, so each attends over its own cache.
        let prompts: Vec<Vec<u32>> = (0..8u32)
            .map(|i| {
                PROMPT
                    .iter()
                    .map(|t| (t + 29 * i) % 250)
                    .take(1 + i as usize % PROMPT.len())
                    .collect()
            })
            .collect();
        let steps = 5;
        let alone: Vec<_> = prompts
            .iter()
            .map(|p| greedy_alone(model, p, steps))
            .collect();
        let mut caches: Vec<Cache> = prompts.iter().map(|_| model.new_cache()).collect();
        let mut next: Vec<u32> = prompts
            .iter()
            .zip(&mut caches)
            .map(|(p, cache)| {
                let logits = model.forward(&ids(p), 0, cache).unwrap();
                argmax_rows(&logits.unsqueeze(0).unwrap()).unwrap()[0]
            })
            .collect();
        for step in 1..=steps {
            let mut batch: Vec<&mut Cache> = caches.iter_mut().collect();
            let logits = model.decode(&next, &mut batch, &Device::Cpu).unwrap();
            for (i, expected) in alone.iter().enumerate() {
                let row = logits.get(i).unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(row, expected[step], "sequence {i}, step {step}");
            }
            next = argmax_rows(&logits).unwrap();
        }
        for (cache, prompt) in caches.iter().zip(&prompts) {
            assert_eq!(cache.len(), prompt.len() + steps);
        }
        // A sequence with nothing cached cannot join a decode batch.
        let mut fresh = model.new_cache();
        assert!(model.decode(&[1], &mut [&mut fresh], &Device::Cpu).is_err());
    }

    /// Our forward on a tiny Qwen-family model against candle-transformers' own model of it:
    /// every step's logits within `tolerance` of theirs, and the same greedy tokens.
    fn matches_candle(
        arch: &str,
        theirs: &mut dyn FnMut(&Tensor, usize) -> Tensor,
        path: &std::path::Path,
        tolerance: f32,
    ) {
        let ours = load(path, 0..2);
        assert!(ours.config.rope_neox, "the Qwen family rotates halves");
        let mut cache = ours.new_cache();
        let mine = run(&mut |t, pos| ours.forward(&ids(t), pos, &mut cache).unwrap());
        let reference = run(&mut |t, pos| theirs(&ids(t), pos).flatten_all().unwrap());
        for (step, (a, b)) in mine.iter().zip(&reference).enumerate() {
            let worst = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            let scale = b.iter().map(|x| x.abs()).fold(0f32, f32::max);
            assert!(
                worst <= tolerance * scale,
                "{arch} step {step}: off by {worst} of {scale}"
            );
            let top = |l: &[f32]| (0..l.len()).max_by(|&i, &j| l[i].total_cmp(&l[j]));
            assert_eq!(top(a), top(b), "{arch} step {step}: another greedy token");
        }
    }

    #[test]
    fn qwen2_computes_what_candle_transformers_quantized_qwen2_computes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qwen2.gguf");
        crate::testing::write_tiny_qwen(&path, 11, "qwen2", GgmlDType::Q8_0).unwrap();
        let mut file = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        let mut theirs = candle_transformers::models::quantized_qwen2::ModelWeights::from_gguf(
            content,
            &mut file,
            &Device::Cpu,
        )
        .unwrap();
        // The same operations in the same order: exactly their logits.
        matches_candle(
            "qwen2",
            &mut |t, pos| theirs.forward(t, pos).unwrap(),
            &path,
            0.0,
        );
    }

    #[test]
    fn qwen3_computes_what_candle_transformers_qwen3_computes() {
        use candle_transformers::models::qwen3;
        // Against the f32 model (standard attention). Candle's quantized Qwen3 has attention
        // kernels of its own, and its logits on the Q8_0 file were 1-1.5% of the largest off
        // ours, enough to change a greedy token by the third step.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qwen3.gguf");
        crate::testing::write_tiny_qwen(&path, 11, "qwen3", GgmlDType::F32).unwrap();
        let ours = load(&path, 0..2);
        let c = &ours.config;
        let tensors = crate::testing::tiny_hf_weights("qwen3", 11).unwrap();
        let vb = candle_nn::VarBuilder::from_tensors(
            tensors.into_iter().collect(),
            DType::F32,
            &Device::Cpu,
        );
        let config = qwen3::Config {
            vocab_size: c.vocab,
            hidden_size: c.hidden,
            intermediate_size: 128,
            num_hidden_layers: c.layers,
            num_attention_heads: c.heads,
            head_dim: c.head_dim,
            attention_bias: false,
            num_key_value_heads: c.kv_heads,
            max_position_embeddings: c.context_length,
            sliding_window: None,
            max_window_layers: c.layers,
            tie_word_embeddings: false,
            rope_theta: c.rope_base as f64,
            rms_norm_eps: c.rms_eps,
            use_sliding_window: false,
            hidden_act: candle_nn::Activation::Silu,
        };
        let mut theirs = qwen3::ModelForCausalLM::new(&config, vb).unwrap();
        matches_candle(
            "qwen3",
            &mut |t, pos| theirs.forward(t, pos).unwrap(),
            &path,
            1e-5,
        );
    }
}
