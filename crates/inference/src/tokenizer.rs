//! A `tokenizers` tokenizer rebuilt from a GGUF file's metadata (GGUF files carry the vocabulary
//! and merges, not a `tokenizer.json`).
//!
//! - `gpt2` models (SmolLM, Qwen, Llama 3): byte-level BPE from `tokenizer.ggml.tokens` and
//!   `.merges`, with the pre-tokenizer `tokenizer.ggml.pre` names (the same splits the original
//!   `tokenizer.json` used).
//! - `llama` models (SentencePiece BPE: Llama 2, Gemma, Phi-3): BPE with byte fallback over
//!   `tokenizer.ggml.tokens`, merges recovered from the pieces' scores as Hugging Face's
//!   converter does, `▁` for spaces.
//!
//! Control and user-defined tokens (`<|im_start|>`, …) become special added tokens.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
    Tokenizer,
    decoders::{
        byte_fallback::ByteFallback, byte_level::ByteLevel as ByteLevelDecoder, fuse::Fuse,
        sequence::Sequence as DecoderSequence, strip::Strip,
    },
    models::bpe::{BPE, Vocab},
    normalizers::{Prepend, Replace, Sequence as NormalizerSequence},
    pre_tokenizers::{
        byte_level::ByteLevel, digits::Digits, sequence::Sequence as PreSequence, split::Split,
    },
};

use crate::{InferenceError, Result};

type Metadata = HashMap<String, Value>;

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

fn bad(reason: impl Into<String>) -> InferenceError {
    InferenceError::Tokenizer(reason.into())
}

fn strings(md: &Metadata, key: &str) -> Result<Vec<String>> {
    let values = md
        .get(key)
        .ok_or_else(|| bad(format!("the GGUF has no {key}")))?
        .to_vec()
        .map_err(|e| bad(format!("{key}: {e}")))?;
    values
        .iter()
        .map(|v| {
            v.to_string()
                .cloned()
                .map_err(|e| bad(format!("{key}: {e}")))
        })
        .collect()
}

fn numbers<T>(
    md: &Metadata,
    key: &str,
    get: impl Fn(&Value) -> candle_core::Result<T>,
) -> Result<Option<Vec<T>>> {
    let Some(value) = md.get(key) else {
        return Ok(None);
    };
    let values = value.to_vec().map_err(|e| bad(format!("{key}: {e}")))?;
    values
        .iter()
        .map(|v| get(v).map_err(|e| bad(format!("{key}: {e}"))))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The special tokens: control and user-defined types.
fn special_tokens(tokens: &[String], types: Option<&[i32]>) -> Vec<AddedToken> {
    let Some(types) = types else {
        return Vec::new();
    };
    tokens
        .iter()
        .zip(types)
        .filter(|(_, t)| **t == TOKEN_CONTROL || **t == TOKEN_USER_DEFINED)
        .map(|(token, t)| AddedToken::from(token.clone(), *t == TOKEN_CONTROL))
        .collect()
}

fn regex_split(pattern: &str) -> Result<PreTokenizerWrapper> {
    let split = Split::new(
        tokenizers::pre_tokenizers::split::SplitPattern::Regex(pattern.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| bad(format!("pre-tokenizer regex: {e}")))?;
    Ok(split.into())
}

/// The pre-tokenizer each `tokenizer.ggml.pre` stands for (llama.cpp's names; the splits of
/// the models' own `tokenizer.json`).
fn gpt2_pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper> {
    let byte_level = |use_regex| ByteLevel::new(false, true, use_regex).into();
    Ok(match pre {
        // SmolLM: every digit alone, then GPT-2's splits.
        "smollm" => PreSequence::new(vec![Digits::new(true).into(), byte_level(true)]).into(),
        "qwen2" => PreSequence::new(vec![
            regex_split(
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
            )?,
            byte_level(false),
        ])
        .into(),
        "llama-bpe" | "llama3" => PreSequence::new(vec![
            regex_split(
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
            )?,
            byte_level(false),
        ])
        .into(),
        "gpt2" | "default" | "" => byte_level(true),
        other => {
            tracing::warn!(pre = other, "unknown GGUF pre-tokenizer; using GPT-2's splits");
            byte_level(true)
        }
    })
}

fn gpt2(md: &Metadata, tokens: Vec<String>, types: Option<Vec<i32>>) -> Result<Tokenizer> {
    let merges: Vec<(String, String)> = strings(md, "tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| bad(format!("merge {m:?} is not two tokens")))
        })
        .collect::<Result<_>>()?;
    let vocab: Vocab = tokens.iter().cloned().zip(0u32..).collect();
    // tokenizers 0.23's `BpeBuilder::build` joins each merge's two tokens in a buffer as long as
    // the longest token, and panics (a slice past its end) when the joined token is longer: a
    // merge whose result the vocabulary lacks. Found by the `gguf_header` fuzz target; such a
    // merge is refused here first.
    let mut joined = String::new();
    for (a, b) in &merges {
        joined.clear();
        joined.push_str(a);
        joined.push_str(b);
        if !vocab.contains_key(joined.as_str()) {
            return Err(bad(format!(
                "merge {a:?} {b:?} makes {joined:?}, which is not in the vocabulary"
            )));
        }
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let pre = md
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map_or("default", String::as_str);
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(gpt2_pre_tokenizer(pre)?));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    tokenizer
        .add_special_tokens(special_tokens(&tokens, types.as_deref()))
        .map_err(|e| bad(e.to_string()))?;
    Ok(tokenizer)
}

/// SentencePiece BPE: merges recovered from the vocabulary, ranked by the merged piece's score
/// (Hugging Face's `SentencePieceExtractor`).
fn spm_merges(tokens: &[String], scores: &[f32]) -> Vec<(String, String)> {
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut merges: Vec<(usize, usize, f32)> = Vec::new();
    for (piece, score) in tokens.iter().zip(scores) {
        let mut local = Vec::new();
        for (split, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(split);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) {
                local.push((l, r, *score));
            }
        }
        local.sort_by_key(|(l, r, _)| (*l, *r));
        merges.extend(local);
    }
    merges.sort_by(|a, b| b.2.total_cmp(&a.2));
    merges
        .into_iter()
        .map(|(l, r, _)| (tokens[l].clone(), tokens[r].clone()))
        .collect()
}

fn llama(md: &Metadata, tokens: Vec<String>, types: Option<Vec<i32>>) -> Result<Tokenizer> {
    let scores = numbers(md, "tokenizer.ggml.scores", Value::to_f32)?
        .ok_or_else(|| bad("the GGUF has no tokenizer.ggml.scores"))?;
    if scores.len() != tokens.len() {
        return Err(bad("tokenizer.ggml.scores and .tokens differ in length"));
    }
    let merges = spm_merges(&tokens, &scores);
    let vocab: Vocab = tokens.iter().cloned().zip(0u32..).collect();
    let unk = md
        .get("tokenizer.ggml.unknown_token_id")
        .and_then(|v| v.to_u32().ok())
        .and_then(|id| tokens.get(id as usize).cloned());
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk);
    }
    let bpe = builder.build().map_err(|e| bad(e.to_string()))?;
    let add_space_prefix = md
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(true);
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if add_space_prefix {
        normalizers.push(Prepend::new("▁".into()).into());
    }
    normalizers.push(
        Replace::new(" ", "▁")
            .map_err(|e| bad(e.to_string()))?
            .into(),
    );
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new("▁", " ")
            .map_err(|e| bad(e.to_string()))?
            .into(),
        ByteFallback::default().into(),
        Fuse::default().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_normalizer(Some(NormalizerSequence::new(normalizers)))
        .map_err(|e| bad(e.to_string()))?;
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    tokenizer
        .add_special_tokens(special_tokens(&tokens, types.as_deref()))
        .map_err(|e| bad(e.to_string()))?;
    Ok(tokenizer)
}

/// The tokenizer a GGUF file describes.
pub fn from_gguf(md: &Metadata) -> Result<Tokenizer> {
    let model = md
        .get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    let tokens = strings(md, "tokenizer.ggml.tokens")?;
    let types = numbers(md, "tokenizer.ggml.token_type", Value::to_i32)?;
    match model.as_str() {
        "gpt2" => gpt2(md, tokens, types),
        "llama" => llama(md, tokens, types),
        other => Err(bad(format!(
            "tokenizer type {other:?} is not supported (gpt2 byte-level BPE and llama SentencePiece are)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(entries: Vec<(&str, Value)>) -> Metadata {
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    fn string_array(items: &[&str]) -> Value {
        Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
    }

    #[test]
    fn byte_level_bpe_round_trips_and_splits_digits() {
        // The 256 byte symbols GPT-2's byte level uses, two merges, and a special token.
        let mut tokens: Vec<String> = Vec::new();
        let byte_level = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet();
        let mut alphabet: Vec<char> = byte_level.into_iter().collect();
        alphabet.sort();
        tokens.extend(alphabet.iter().map(|c| c.to_string()));
        tokens.extend(["he".into(), "hel".into(), "<|im_end|>".into()]);
        let mut types = vec![1; tokens.len()];
        *types.last_mut().unwrap() = TOKEN_CONTROL;
        let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let metadata = md(vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String("smollm".into())),
            ("tokenizer.ggml.tokens", string_array(&token_refs)),
            ("tokenizer.ggml.merges", string_array(&["h e", "he l"])),
            (
                "tokenizer.ggml.token_type",
                Value::Array(types.into_iter().map(Value::I32).collect()),
            ),
        ]);
        let tokenizer = from_gguf(&metadata).unwrap();
        let text = "hello 123 héllo<|im_end|>";
        let encoding = tokenizer.encode(text, false).unwrap();
        assert!(encoding.get_tokens().contains(&"hel".to_string()));
        assert!(encoding.get_tokens().contains(&"<|im_end|>".to_string()));
        // Digits are single tokens under the smollm splits.
        assert!(encoding.get_tokens().contains(&"1".to_string()));
        assert_eq!(tokenizer.decode(encoding.get_ids(), false).unwrap(), text);
        assert_eq!(
            tokenizer.decode(encoding.get_ids(), true).unwrap(),
            "hello 123 héllo"
        );
    }

    #[test]
    fn sentencepiece_merges_follow_scores_and_bytes_fall_back() {
        let tokens = [
            "<unk>", "<s>", "</s>", "▁", "a", "b", "ab", "▁ab", "<0xC3>", "<0xA9>",
        ];
        let scores = [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -0.5, -0.1, 0.0, 0.0];
        let metadata = md(vec![
            ("tokenizer.ggml.model", Value::String("llama".into())),
            ("tokenizer.ggml.tokens", string_array(&tokens)),
            (
                "tokenizer.ggml.scores",
                Value::Array(scores.into_iter().map(Value::F32).collect()),
            ),
            ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
        ]);
        let tokenizer = from_gguf(&metadata).unwrap();
        let encoding = tokenizer.encode("ab é", false).unwrap();
        assert_eq!(encoding.get_tokens()[0], "▁ab");
        // "é" is not in the vocabulary: its UTF-8 bytes are.
        assert!(encoding.get_tokens().contains(&"<0xC3>".to_string()));
        assert_eq!(tokenizer.decode(encoding.get_ids(), false).unwrap(), "ab é");
    }

    /// A merge whose joined token is longer than every token in the vocabulary made
    /// tokenizers panic (found by fuzzing); it is refused with the reason.
    #[test]
    fn a_merge_making_a_token_the_vocabulary_lacks_is_refused_not_a_panic() {
        let metadata = md(vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.tokens", string_array(&["a", "b"])),
            ("tokenizer.ggml.merges", string_array(&["a b"])),
        ]);
        match from_gguf(&metadata) {
            Err(InferenceError::Tokenizer(reason)) => {
                assert!(reason.contains("not in the vocabulary"), "{reason}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn unknown_tokenizer_types_are_refused() {
        let metadata = md(vec![
            ("tokenizer.ggml.model", Value::String("rwkv".into())),
            ("tokenizer.ggml.tokens", string_array(&["a"])),
        ]);
        assert!(matches!(
            from_gguf(&metadata),
            Err(InferenceError::Tokenizer(_))
        ));
    }
}
