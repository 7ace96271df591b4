//! What a pipeline of shards costs beside one node, and how long a dying shard stalls it. The
//! model's layers are split in `--shards` ranges, each served by a shard server on loopback
//! (in this process, each on a runtime of its own), chained by a coordinator as a gateway
//! chains them:
//! - decode tokens/s of one node and of the pipeline, the same greedy generation, alternating
//!   rounds, medians and their ratio;
//! - the pause a kill costs: the middle range's provider is killed after `--kill-after`
//!   tokens, a spare takes over (replaying the prefix), and the pause is the time from the
//!   kill to the next token (median of `--kills` kills, each with a fresh spare).

use std::{sync::Arc, time::Instant};

use aicoin_inference::{GenerateParams, SamplingParams, Sequence, TextModel, WeightFormat, llama};
use aicoin_shard::{Coordinator, CoordinatorConfig, ShardConfig, local::LocalShard};
use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use clap::Args;
use eyre::{bail, eyre};

use super::{median, ms};
use crate::chat::LocalModelArgs;

#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    model: LocalModelArgs,
    /// Ranges the layers are split in.
    #[arg(long, default_value_t = 2)]
    shards: usize,
    /// Tokens each generation decodes.
    #[arg(long, default_value_t = 64)]
    tokens: usize,
    /// Rounds of each mode.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Kills to time.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// Tokens generated before each kill.
    #[arg(long, default_value_t = 20)]
    kill_after: usize,
}

const PROMPT: &str =
    "Explain in a few sentences how a network of small computers can serve a large language model.";

/// A greedy generation of `tokens` tokens: when each token arrived. `on_token(n)` runs as the
/// n-th arrives.
fn generate(
    model: &Arc<TextModel>,
    tokens: usize,
    mut on_token: impl FnMut(usize),
) -> eyre::Result<Vec<(u32, Instant)>> {
    let prompt = model.encode(&model.chat_prompt(&[aicoin_inference::Message {
        role: "user".into(),
        content: PROMPT.into(),
    }])?)?;
    let params = GenerateParams {
        max_tokens: Some(tokens),
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..GenerateParams::default()
    };
    let mut sequence = Sequence::new(model.clone(), prompt, params)?;
    let mut arrived = Vec::new();
    while sequence.finished().is_none() {
        if let Some(id) = sequence.step()?.token {
            arrived.push((id, Instant::now()));
            on_token(arrived.len());
        }
    }
    Ok(arrived)
}

/// Decode tokens/s: the tokens after the first over the time they took.
fn decode_rate(arrived: &[(u32, Instant)]) -> f64 {
    match (arrived.first(), arrived.last()) {
        (Some((_, first)), Some((_, last))) if arrived.len() > 1 => {
            (arrived.len() - 1) as f64 / last.duration_since(*first).as_secs_f64()
        }
        _ => 0.0,
    }
}

fn ids(arrived: &[(u32, Instant)]) -> Vec<u32> {
    arrived.iter().map(|(id, _)| *id).collect()
}

pub fn run(args: PipelineArgs) -> eyre::Result<()> {
    if args.shards < 2 || args.kill_after == 0 || args.kill_after >= args.tokens {
        bail!("--shards must be at least 2, and --kill-after between 1 and --tokens");
    }
    let dir = args.model.models.models_dir(args.model.data_dir.as_deref());
    let local = crate::model::resolve(&dir, &args.model.models.model)?
        .into_iter()
        .find(|m| m.kind == aicoin_inference::ModelKind::Text)
        .ok_or_else(|| eyre!("no text model: `aicoin model fetch smollm2`, or --model PATH"))?;
    let path = local.path.clone();
    let config = llama::Config::read(&path)?;
    let n = config.layers;
    if args.shards > n {
        bail!("{} has {n} layers: at most that many shards", local.id);
    }
    let ranges: Vec<_> = (0..args.shards)
        .map(|i| n * i / args.shards..n * (i + 1) / args.shards)
        .collect();
    let device = candle_core::Device::Cpu;
    let load = |range| -> eyre::Result<_> {
        Ok(Arc::new(llama::Llama::layers_from_file(
            &path, &device, range,
        )?))
    };
    let whole = Arc::new(TextModel::load(
        &path,
        &local.id,
        &device,
        WeightFormat::AsShipped,
    )?);
    let mut next_provider = 0u8;
    let mut serve = |range: std::ops::Range<usize>| -> eyre::Result<LocalShard> {
        next_provider += 1;
        let provider = Address::repeat_byte(next_provider);
        Ok(LocalShard::start(
            &local.id,
            load(range)?,
            provider,
            ShardConfig::default(),
        )?)
    };
    let mut providers = ranges
        .iter()
        .map(|r| serve(r.clone()))
        .collect::<eyre::Result<Vec<_>>>()?;
    let coordinator = Coordinator::new(
        &local.id,
        (n, config.hidden),
        PrivateKeySigner::random(),
        CoordinatorConfig::default(),
    )?;
    let listed = |providers: &[LocalShard]| providers.iter().map(|p| p.shard.clone()).collect();
    coordinator.set_shards(listed(&providers));
    let split = Arc::new(TextModel::load_split(
        &path,
        &local.id,
        &device,
        Arc::new(coordinator.clone()),
    )?);
    println!(
        "{}: {n} layers in {} shards ({:?}), {} tokens, {} rounds",
        local.id, args.shards, ranges, args.tokens, args.rounds
    );

    let expected = ids(&generate(&whole, args.tokens, |_| ())?);
    // Rounds alternate, and each round's pipeline rate is set beside the one-node rate just
    // before it: this machine's speed drifts between rounds more than the pipeline costs.
    let (mut alone, mut piped, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        let one = decode_rate(&generate(&whole, args.tokens, |_| ())?);
        let arrived = generate(&split, args.tokens, |_| ())?;
        if ids(&arrived) != expected {
            bail!("the pipeline answered differently from one node");
        }
        let rate = decode_rate(&arrived);
        alone.push(one);
        piped.push(rate);
        ratios.push(rate / one);
    }
    let median_of = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("decode, one node:        {:.1} tokens/s", median_of(alone));
    println!(
        "decode, {} shards:        {:.1} tokens/s ({:.2}x, the median of each round's ratio)",
        args.shards,
        median_of(piped),
        median_of(ratios)
    );

    // Kills: the middle range's provider dies; a fresh spare of that range is listed first.
    let middle = args.shards / 2;
    let mut pauses = Vec::new();
    for _ in 0..args.kills {
        providers.push(serve(ranges[middle].clone())?);
        coordinator.set_shards(listed(&providers));
        let mut killed_at = None;
        let victim = &mut providers[middle];
        let arrived = generate(&split, args.tokens, |t| {
            if t == args.kill_after {
                victim.kill();
                killed_at = Some(Instant::now());
            }
        })?;
        if ids(&arrived) != expected {
            bail!("the answer changed across a kill");
        }
        let killed_at = killed_at.ok_or_else(|| eyre!("no kill happened"))?;
        pauses.push(arrived[args.kill_after].1.duration_since(killed_at));
        // The spare (last) takes the dead one's place for the next round.
        let spare = providers.pop().ok_or_else(|| eyre!("no spare"))?;
        providers[middle] = spare;
    }
    let pause = median(pauses.clone());
    println!(
        "kill to next token:      median {:.1} ms over {} kills ({} tokens replayed each), min {:.1}, max {:.1}",
        ms(pause),
        pauses.len(),
        args.kill_after,
        ms(pauses.iter().min().copied().unwrap_or_default()),
        ms(pauses.iter().max().copied().unwrap_or_default()),
    );
    Ok(())
}
