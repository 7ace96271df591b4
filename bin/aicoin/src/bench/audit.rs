//! What an audit costs beside the generation it checks: challenge jobs drawn as a validator
//! draws them (`aicoin_compute::jobs`, at the chain's `probeMaxTokens` unless told otherwise),
//! each answered greedily by the model as a provider would, then audited by the same model as a
//! validator does (teacher-forced prompt and answer). Reports the medians of both and their
//! ratio, and checks every honest answer passes (reporting the worst logit gap: a one-prefill
//! audit rounds differently from one-token generation steps, by hundredths of a logit).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aicoin_compute::{audit::audit, jobs::JobGenerator};
use aicoin_inference::{GenerateParams, SamplingParams, Sequence, TextModel};
use clap::Args;
use eyre::bail;

use super::{median, ms};
use crate::chat::{LocalModelArgs, load_text_model};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    model: LocalModelArgs,
    /// Jobs to answer and audit.
    #[arg(long, default_value_t = 20)]
    jobs: usize,
    /// Most tokens a job asks for (the chain's `probeMaxTokens` is 16).
    #[arg(long, default_value_t = 16)]
    max_tokens: usize,
}

/// Answers `prompt` greedily; returns the ids and the finish reason.
fn generate(
    model: &Arc<TextModel>,
    prompt: &[u32],
    max_tokens: usize,
) -> eyre::Result<(Vec<u32>, &'static str)> {
    let params = GenerateParams {
        max_tokens: Some(max_tokens),
        sampling: SamplingParams {
            temperature: 0.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut sequence = Sequence::new(model.clone(), prompt.to_vec(), params)?;
    let mut ids = Vec::new();
    loop {
        let step = sequence.step()?;
        ids.extend(step.token);
        if let Some(finish) = step.finished {
            return Ok((ids, finish.as_str()));
        }
    }
}

pub fn run(args: AuditArgs) -> eyre::Result<()> {
    let model = load_text_model(&args.model.models, args.model.data_dir.as_deref())?;
    let mut generator = JobGenerator::new([7; 32], args.max_tokens);
    let (mut generation, mut audits) = (Vec::new(), Vec::new());
    let mut tokens = Vec::new();
    let mut ratios = Vec::new();
    let mut worst_gap = 0f32;
    while generation.len() < args.jobs {
        let job = generator.next_job();
        let prompt = model.encode(&model.chat_prompt(&job.chat_messages())?)?;
        if prompt.len() + job.max_tokens > model.context_length {
            continue;
        }
        let started = Instant::now();
        let (ids, finish) = generate(&model, &prompt, job.max_tokens)?;
        let generated = started.elapsed();
        let started = Instant::now();
        let verdict = audit(&model, &prompt, &ids, finish, job.max_tokens, 1.0)?;
        let audited = started.elapsed();
        if !verdict.passed {
            bail!("an honest answer failed its audit: {verdict:?}");
        }
        worst_gap = worst_gap.max(verdict.worst_gap);
        tokens.push(ids.len());
        ratios.push(Duration::from_secs_f64(
            audited.as_secs_f64() / generated.as_secs_f64(),
        ));
        generation.push(generated);
        audits.push(audited);
    }
    tokens.sort_unstable();
    println!(
        "{} jobs on {} (prompt + up to {} greedy tokens; median answer {} tokens)",
        args.jobs,
        model.id,
        args.max_tokens,
        tokens[tokens.len() / 2]
    );
    println!("  generation   median {:>8.1} ms", ms(median(generation)));
    println!("  audit        median {:>8.1} ms", ms(median(audits)));
    println!(
        "  audit / generation, median of the per-job ratios: {:.2}",
        median(ratios).as_secs_f64()
    );
    println!("  worst logit gap of an honest answer: {worst_gap:.3} (margin 1.0)");
    Ok(())
}
