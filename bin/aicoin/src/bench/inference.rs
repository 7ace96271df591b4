//! Inference speed of a text model as the API serves it: requests go through the same
//! scheduler, all submitted at once, each with the same prompt and a fixed number of greedy
//! tokens (end-of-sequence ignored). Reports, per number of concurrent streams, the time to
//! first token, prefill and per-stream decode tokens/s, total tokens/s and the process's peak
//! resident memory. `scripts/bench-inference.sh` runs llama.cpp beside it and prints ratios.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aicoin_inference::{
    Event, GenerateParams, InferenceMetrics, SamplingParams, Scheduler, SchedulerConfig, TextModel,
    cpu_threads,
};
use clap::Args;
use eyre::{bail, eyre};
use serde::Serialize;

use super::proc_status_kib;
use crate::{
    chat::{LocalModelArgs, load_text_model},
    serve::Weights,
};

/// Plain prose, repeated to the prompt length asked for.
const PROMPT_TEXT: &str = "The history of computing is a story of people who wanted to \
    calculate faster than their hands allowed. Early machines used gears and levers; later ones \
    used relays, vacuum tubes and finally transistors etched by the billion onto silicon. Each \
    step made computation cheaper, and each drop in cost found new uses nobody had planned for. ";

#[derive(Debug, Args)]
pub struct InferenceArgs {
    #[command(flatten)]
    model: LocalModelArgs,
    /// Prompt length, in tokens.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Tokens each stream generates.
    #[arg(long, default_value_t = 128)]
    tokens: usize,
    /// Numbers of concurrent streams to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    streams: Vec<usize>,
    /// Measured rounds per setting; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print one JSON object (for scripts) instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    weights: String,
    threads: usize,
    prompt_tokens: usize,
    tokens: usize,
    rounds: usize,
    load_seconds: f64,
    rss_after_load_mib: f64,
    /// The prompt, so a peer can be fed the same tokens.
    prompt_ids: Vec<u32>,
    results: Vec<Setting>,
}

#[derive(Debug, Serialize)]
struct Setting {
    streams: usize,
    /// Median over streams and rounds.
    ttft_seconds: f64,
    /// Prompt tokens over the time to first token (one stream: the prefill speed).
    prefill_tokens_per_second: f64,
    /// One stream's tokens after its first, over the time they took.
    decode_tokens_per_second: f64,
    /// Every stream's generated tokens over the round's wall time.
    total_tokens_per_second: f64,
    /// The process's peak resident memory so far (loading included, as llama.cpp's is).
    peak_rss_mib: f64,
}

/// One stream's timings in one round.
struct Stream {
    ttft: Duration,
    decode: Duration,
    tokens: usize,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn mib(kib: Option<u64>) -> f64 {
    kib.map_or(0.0, |k| k as f64 / 1024.0)
}

fn prompt(model: &TextModel, tokens: usize) -> eyre::Result<Vec<u32>> {
    let mut text = PROMPT_TEXT.to_string();
    loop {
        let ids = model.encode(&text)?;
        if ids.len() >= tokens {
            return Ok(ids[..tokens].to_vec());
        }
        text.push_str(PROMPT_TEXT);
    }
}

/// Submits `streams` requests at once and follows each to its end.
async fn round(
    scheduler: &Scheduler,
    prompt: &[u32],
    params: &GenerateParams,
    streams: usize,
) -> eyre::Result<(Vec<Stream>, Duration)> {
    let started = Instant::now();
    let mut receivers = Vec::with_capacity(streams);
    for _ in 0..streams {
        receivers.push(scheduler.submit(prompt.to_vec(), params.clone())?);
    }
    let tasks: Vec<_> = receivers
        .into_iter()
        .map(|mut events| {
            tokio::spawn(async move {
                let mut first = None;
                while let Some(event) = events.recv().await {
                    match event {
                        Event::Started => first = Some(Instant::now()),
                        Event::Token(_) | Event::Text(_) => {}
                        Event::Done(usage) => {
                            let first = first.ok_or_else(|| eyre!("no first token"))?;
                            return Ok(Stream {
                                ttft: first - started,
                                decode: first.elapsed(),
                                tokens: usage.completion_tokens,
                            });
                        }
                        Event::Failed(e) => return Err(eyre!(e)),
                    }
                }
                bail!("the stream ended without finishing")
            })
        })
        .collect();
    let mut results = Vec::with_capacity(streams);
    for task in tasks {
        results.push(task.await??);
    }
    Ok((results, started.elapsed()))
}

pub async fn run(args: InferenceArgs) -> eyre::Result<()> {
    if args.prompt_tokens == 0 || args.tokens < 2 || args.rounds == 0 {
        bail!("--prompt-tokens must be at least 1, --tokens at least 2, --rounds at least 1");
    }
    if args.streams.contains(&0) {
        bail!("--streams must be at least 1");
    }
    let started = Instant::now();
    let models = args.model.models.clone();
    let data_dir = args.model.data_dir.clone();
    let model = tokio::task::spawn_blocking(move || load_text_model(&models, data_dir.as_deref()))
        .await??;
    let load_seconds = started.elapsed().as_secs_f64();
    let rss_after_load_mib = mib(proc_status_kib(std::process::id(), "VmRSS"));
    let prompt_ids = prompt(&model, args.prompt_tokens)?;
    if prompt_ids.len() + args.tokens > model.context_length {
        bail!(
            "the prompt and the tokens exceed the model's {}-token context",
            model.context_length
        );
    }
    let params = GenerateParams {
        max_tokens: Some(args.tokens),
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        ignore_eos: true,
        ..GenerateParams::default()
    };

    let mut results = Vec::new();
    for &streams in &args.streams {
        let scheduler = Scheduler::start(
            model.clone(),
            SchedulerConfig {
                max_queue: streams,
                max_active: streams,
            },
            InferenceMetrics::new(),
        );
        // Warm-up: caches, allocator, thread pool.
        round(
            &scheduler,
            &prompt_ids[..prompt_ids.len().min(16)],
            &GenerateParams {
                max_tokens: Some(4),
                ..params.clone()
            },
            1,
        )
        .await?;
        let (mut ttft, mut prefill, mut decode, mut total) = (vec![], vec![], vec![], vec![]);
        for _ in 0..args.rounds {
            let (round, wall) = round(&scheduler, &prompt_ids, &params, streams).await?;
            total.push(round.iter().map(|s| s.tokens).sum::<usize>() as f64 / wall.as_secs_f64());
            for s in round {
                ttft.push(s.ttft.as_secs_f64());
                prefill.push(prompt_ids.len() as f64 / s.ttft.as_secs_f64());
                decode.push((s.tokens - 1) as f64 / s.decode.as_secs_f64());
            }
        }
        results.push(Setting {
            streams,
            ttft_seconds: median(ttft),
            prefill_tokens_per_second: median(prefill),
            decode_tokens_per_second: median(decode),
            total_tokens_per_second: median(total),
            peak_rss_mib: mib(proc_status_kib(std::process::id(), "VmHWM")),
        });
    }
    let report = Report {
        model: model.id.clone(),
        weights: args
            .model
            .models
            .weights
            .unwrap_or(Weights::Fast)
            .name()
            .into(),
        threads: cpu_threads(),
        prompt_tokens: prompt_ids.len(),
        tokens: args.tokens,
        rounds: args.rounds,
        load_seconds,
        rss_after_load_mib,
        prompt_ids,
        results,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report, &model);
    }
    Ok(())
}

fn print_table(r: &Report, model: &Arc<TextModel>) {
    println!(
        "{} ({:?}), weights {}, {} threads; prompt {} tokens, {} generated per stream (EOS \
         ignored, greedy); median of {} rounds",
        r.model, model.architecture, r.weights, r.threads, r.prompt_tokens, r.tokens, r.rounds
    );
    println!(
        "loaded in {:.2} s, RSS after load {:.0} MiB",
        r.load_seconds, r.rss_after_load_mib
    );
    println!(
        "{:>7} {:>9} {:>14} {:>19} {:>13} {:>10}",
        "streams", "TTFT", "prefill tok/s", "decode tok/s/stream", "total tok/s", "peak RSS"
    );
    for s in &r.results {
        println!(
            "{:>7} {:>7.0}ms {:>14.1} {:>19.1} {:>13.1} {:>6.0} MiB",
            s.streams,
            s.ttft_seconds * 1e3,
            s.prefill_tokens_per_second,
            s.decode_tokens_per_second,
            s.total_tokens_per_second,
            s.peak_rss_mib
        );
    }
}
