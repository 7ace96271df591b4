//! Auditing an answer: the auditor feeds the prompt and then the provider's claimed tokens,
//! teacher-forced, through its own copy of the model, and checks that every claimed token is
//! the one greedy decoding picks, or trails the best logit by at most a margin (an honest
//! provider on another CPU, a GPU, or other kernels differs in the last bits of a logit, not
//! by whole logits). A provider serving a smaller, different or faked model fails.
//!
//! On our own forward (`aicoin_inference::llama`: the llama family) the audit is one prefill of
//! prompt + claimed tokens that returns every position's logits. Other architectures run on
//! candle's model files, whose forward returns the last position's logits only: there the
//! claimed tokens are fed one at a time after the prompt's prefill, about one generation of the
//! answer without sampling.

use aicoin_inference::{InferenceError, PREFILL_CHUNK, TextModel};
use candle_core::Tensor;

/// The outcome of one audit.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    /// Claimed tokens checked before the verdict.
    pub checked: usize,
    /// The largest gap between the best logit and a claimed token's.
    pub worst_gap: f32,
    /// Why it failed.
    pub failure: Option<String>,
}

impl Verdict {
    pub(crate) fn fail(checked: usize, worst_gap: f32, why: String) -> Self {
        Self {
            passed: false,
            checked,
            worst_gap,
            failure: Some(why),
        }
    }
}

/// Audits `claimed` (ids the provider says it generated greedily after `prompt`, ending
/// `finish_reason`) against `model`, with a tolerance of `margin` logits.
pub fn audit(
    model: &TextModel,
    prompt: &[u32],
    claimed: &[u32],
    finish_reason: &str,
    max_tokens: usize,
    margin: f32,
) -> Result<Verdict, InferenceError> {
    if claimed.is_empty() {
        return Ok(Verdict::fail(0, 0.0, "the answer has no tokens".into()));
    }
    if claimed.len() > max_tokens {
        return Ok(Verdict::fail(
            0,
            0.0,
            format!(
                "{} tokens where at most {max_tokens} were asked",
                claimed.len()
            ),
        ));
    }
    let last = claimed[claimed.len() - 1];
    match finish_reason {
        "stop" if !model.is_end(last) => {
            return Ok(Verdict::fail(
                0,
                0.0,
                format!("finish_reason stop, but the last token {last} ends nothing"),
            ));
        }
        "length" if claimed.len() != max_tokens => {
            return Ok(Verdict::fail(
                0,
                0.0,
                format!(
                    "finish_reason length after {} of {max_tokens} tokens",
                    claimed.len()
                ),
            ));
        }
        "stop" | "length" => {}
        other => {
            return Ok(Verdict::fail(
                0,
                0.0,
                format!("unknown finish_reason {other:?}"),
            ));
        }
    }
    if prompt.len() + claimed.len() > model.context_length {
        return Ok(Verdict::fail(
            0,
            0.0,
            "the answer overflows the context".into(),
        ));
    }
    if let Some(scored) = {
        let mut tokens = prompt.to_vec();
        tokens.extend_from_slice(claimed);
        // The rows before each claimed token: from the prompt's last position on.
        model.score(&tokens, prompt.len().saturating_sub(1))
    } {
        let rows: Vec<Vec<f32>> = scored?.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        return check(claimed, rows.into_iter().map(Ok), margin);
    }
    let device = model.device();
    let mut state = model.new_state();
    let mut logits = None;
    for (i, chunk) in prompt.chunks(PREFILL_CHUNK).enumerate() {
        let input = Tensor::new(chunk, device)?.unsqueeze(0)?;
        logits = Some(state.forward(&input, i * PREFILL_CHUNK)?);
    }
    let mut pending =
        Some(logits.ok_or_else(|| InferenceError::InvalidRequest("empty prompt".into()))?);
    // Row i is produced only when asked for: feeding claimed token i - 1. The check stops at
    // the first failure, so a forged answer costs no more forwards than it takes to catch.
    let mut fed = 0;
    let rows = std::iter::from_fn(move || {
        let row = (|| {
            let logits = match pending.take() {
                Some(logits) => logits,
                None => {
                    let input = Tensor::new(&[claimed[fed]], device)?.unsqueeze(0)?;
                    fed += 1;
                    state.forward(&input, prompt.len() + fed - 1)?
                }
            };
            Ok(logits.to_dtype(candle_core::DType::F32)?.to_vec1()?)
        })();
        Some(row)
    });
    check(claimed, rows, margin)
}

/// The verdict on `claimed` given the logits before each claimed token, in order (pulled one
/// at a time, up to the first failure).
pub(crate) fn check(
    claimed: &[u32],
    mut rows: impl Iterator<Item = Result<Vec<f32>, InferenceError>>,
    margin: f32,
) -> Result<Verdict, InferenceError> {
    let mut worst_gap = 0f32;
    for (i, &token) in claimed.iter().enumerate() {
        let Some(values) = rows.next().transpose()? else {
            return Ok(Verdict::fail(
                i,
                worst_gap,
                "the model scored fewer positions".into(),
            ));
        };
        let Some(&claimed_logit) = values.get(token as usize) else {
            return Ok(Verdict::fail(
                i,
                worst_gap,
                format!("token {token} is outside the vocabulary"),
            ));
        };
        let best = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let gap = best - claimed_logit;
        worst_gap = worst_gap.max(gap);
        if gap > margin {
            return Ok(Verdict::fail(
                i + 1,
                worst_gap,
                format!("token {i} ({token}) trails the best logit by {gap:.3} (margin {margin})"),
            ));
        }
    }
    Ok(Verdict {
        passed: true,
        checked: claimed.len(),
        worst_gap,
        failure: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aicoin_inference::{
        GenerateParams, SamplingParams, Sequence, WeightFormat, testing::write_tiny_llama,
    };
    use std::sync::Arc;

    fn tiny(dir: &std::path::Path, seed: u64) -> Arc<TextModel> {
        let path = dir.join(format!("tiny-{seed}.gguf"));
        write_tiny_llama(&path, seed).unwrap();
        Arc::new(
            TextModel::load(
                &path,
                "tiny",
                &candle_core::Device::Cpu,
                WeightFormat::default(),
            )
            .unwrap(),
        )
    }

    /// What `model` generates greedily after `prompt`.
    fn generate(
        model: &Arc<TextModel>,
        prompt: &[u32],
        max_tokens: usize,
    ) -> (Vec<u32>, &'static str) {
        let params = GenerateParams {
            max_tokens: Some(max_tokens),
            sampling: SamplingParams {
                temperature: 0.0,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut sequence = Sequence::new(model.clone(), prompt.to_vec(), params).unwrap();
        let mut ids = Vec::new();
        loop {
            let step = sequence.step().unwrap();
            ids.extend(step.token);
            if let Some(finish) = step.finished {
                return (ids, finish.as_str());
            }
        }
    }

    #[test]
    fn the_same_model_passes_and_another_or_a_forged_answer_fails() {
        let dir = tempfile::tempdir().unwrap();
        let auditor = tiny(dir.path(), 3);
        let honest = tiny(dir.path(), 3);
        let other = tiny(dir.path(), 4);
        let prompt = auditor.encode("the cat sat on the mat").unwrap();

        let (ids, finish) = generate(&honest, &prompt, 12);
        let verdict = audit(&auditor, &prompt, &ids, finish, 12, 1.0).unwrap();
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!(verdict.checked, ids.len());
        assert!(verdict.worst_gap.abs() < 1e-4, "{verdict:?}");

        let (forged, finish) = generate(&other, &prompt, 12);
        let verdict = audit(&auditor, &prompt, &forged, finish, 12, 1.0).unwrap();
        assert!(
            !verdict.passed,
            "another model's answer passed: {verdict:?}"
        );

        // A truncated answer that claims to have run to its length fails before any forward.
        let verdict = audit(
            &auditor,
            &prompt,
            &ids[..ids.len() - 1],
            "length",
            ids.len(),
            1.0,
        )
        .unwrap();
        assert!(!verdict.passed);
    }

    /// A model on candle's own files (a Hugging Face directory), whose forward gives the last
    /// position only, is audited a token at a time, to the same verdicts.
    #[test]
    fn the_stepwise_audit_of_other_model_files_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let load = |seed: u64| {
            let path = dir.path().join(format!("hf-{seed}"));
            aicoin_inference::testing::write_tiny_llama_hf(&path, seed).unwrap();
            let model = TextModel::load(
                &path,
                "tiny",
                &candle_core::Device::Cpu,
                WeightFormat::default(),
            )
            .unwrap();
            Arc::new(model)
        };
        let (auditor, other) = (load(3), load(4));
        assert!(
            auditor.score(&[1, 2], 0).is_none(),
            "this path must be the stepwise one"
        );
        let prompt = auditor.encode("the cat sat on the mat").unwrap();
        let (ids, finish) = generate(&auditor, &prompt, 12);
        let verdict = audit(&auditor, &prompt, &ids, finish, 12, 1.0).unwrap();
        assert!(
            verdict.passed && verdict.checked == ids.len(),
            "{verdict:?}"
        );
        let (forged, finish) = generate(&other, &prompt, 12);
        assert!(
            !audit(&auditor, &prompt, &forged, finish, 12, 1.0)
                .unwrap()
                .passed
        );
    }
}
