//! Shard servers on 127.0.0.1 and a coordinator chaining them, on the tiny model: the output is
//! the single node's token for token, through a dying shard too, and what cannot run fails
//! clearly.

use std::{ops::Range, path::Path, sync::Arc, time::Duration};

use aicoin_inference::{
    GenerateParams, InferenceError, SamplingParams, Sequence, TextModel, WeightFormat,
    llama::Llama, testing::write_tiny_llama,
};
use aicoin_shard::{
    Coordinator, CoordinatorConfig, ShardConfig,
    link::{Link, LinkError},
    local::LocalShard,
};
use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use candle_core::Device;

const MODEL: &str = "tiny";

fn shard_of(path: &Path, layers: Range<usize>) -> Arc<Llama> {
    Arc::new(Llama::layers_from_file(path, &Device::Cpu, layers).unwrap())
}

/// A provider serving one shard on loopback.
fn provider(path: &Path, n: u8, layers: Range<usize>, config: ShardConfig) -> LocalShard {
    LocalShard::start(
        MODEL,
        shard_of(path, layers),
        Address::repeat_byte(n),
        config,
    )
    .unwrap()
}

struct Pipeline {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Pipeline {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        write_tiny_llama(&path, 21).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Self {
            _dir: dir,
            path,
            runtime,
        }
    }

    fn whole(&self) -> Arc<TextModel> {
        Arc::new(TextModel::load(&self.path, MODEL, &Device::Cpu, WeightFormat::AsShipped).unwrap())
    }

    fn coordinator(&self, providers: &[&LocalShard]) -> Coordinator {
        let coordinator = Coordinator::new(
            MODEL,
            (2, 64),
            PrivateKeySigner::random(),
            CoordinatorConfig {
                deadline: Duration::from_secs(5),
                ..CoordinatorConfig::default()
            },
        )
        .unwrap();
        coordinator.set_shards(providers.iter().map(|p| p.shard.clone()).collect());
        coordinator
    }

    fn split(&self, coordinator: &Coordinator) -> Arc<TextModel> {
        Arc::new(
            TextModel::load_split(
                &self.path,
                MODEL,
                &Device::Cpu,
                Arc::new(coordinator.clone()),
            )
            .unwrap(),
        )
    }
}

fn sequence(model: &Arc<TextModel>, max_tokens: usize) -> Sequence {
    let params = GenerateParams {
        max_tokens: Some(max_tokens),
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..GenerateParams::default()
    };
    let prompt = model
        .encode("the network serves a model no node holds")
        .unwrap();
    Sequence::new(model.clone(), prompt, params).unwrap()
}

/// Greedy ids, calling `after(n)` once the n-th has come.
fn greedy(
    model: &Arc<TextModel>,
    max_tokens: usize,
    mut after: impl FnMut(usize),
) -> Result<Vec<u32>, InferenceError> {
    let mut sequence = sequence(model, max_tokens);
    let mut ids = Vec::new();
    while sequence.finished().is_none() {
        if let Some(id) = sequence.step()?.token {
            ids.push(id);
            after(ids.len());
        }
    }
    Ok(ids)
}

#[test]
fn a_pipeline_of_shards_generates_what_one_node_generates() {
    let pipeline = Pipeline::new();
    let expected = greedy(&pipeline.whole(), 40, |_| ()).unwrap();
    let config = ShardConfig::default();
    let first = provider(&pipeline.path, 1, 0..1, config);
    let second = provider(&pipeline.path, 2, 1..2, config);
    let coordinator = pipeline.coordinator(&[&first, &second]);
    assert!(coordinator.covered());
    let split = pipeline.split(&coordinator);
    assert_eq!(greedy(&split, 40, |_| ()).unwrap(), expected);
    // Each shard ran every token once through its one layer: the prompt and 39 steps.
    let prompt = split
        .encode("the network serves a model no node holds")
        .unwrap()
        .len() as u64;
    let work = coordinator.take_work();
    assert_eq!(work[&first.shard.provider], prompt + 39);
    assert_eq!(work[&second.shard.provider], prompt + 39);
}

#[test]
fn a_dying_shard_is_replaced_and_the_output_does_not_change() {
    let pipeline = Pipeline::new();
    let expected = greedy(&pipeline.whole(), 48, |_| ()).unwrap();
    let config = ShardConfig::default();
    let first = provider(&pipeline.path, 1, 0..1, config);
    let mut middle = provider(&pipeline.path, 2, 1..2, config);
    let spare = provider(&pipeline.path, 3, 1..2, config);
    // The spare is listed last: the first plan, among unmeasured equals, takes `middle`.
    let coordinator = pipeline.coordinator(&[&first, &middle, &spare]);
    let split = pipeline.split(&coordinator);
    let got = greedy(&split, 48, |n| {
        if n == 20 {
            middle.kill();
        }
    })
    .unwrap();
    assert_eq!(got, expected);
    let work = coordinator.take_work();
    assert!(
        work[&middle.shard.provider] > 0,
        "the middle shard ran first"
    );
    // The spare replayed the prefix and ran the rest: more than the 28 steps after the kill.
    assert!(work[&spare.shard.provider] > 28, "{work:?}");
    // The dead provider is banned: a new session plans around it.
    assert!(coordinator.covered());
    assert_eq!(greedy(&split, 8, |_| ()).unwrap(), expected[..8]);
    assert_eq!(coordinator.take_work().get(&middle.shard.provider), None);
}

#[test]
fn with_no_provider_left_for_a_range_the_generation_fails_as_unavailable() {
    let pipeline = Pipeline::new();
    let config = ShardConfig::default();
    let first = provider(&pipeline.path, 1, 0..1, config);
    let mut second = provider(&pipeline.path, 2, 1..2, config);
    let coordinator = pipeline.coordinator(&[&first, &second]);
    let split = pipeline.split(&coordinator);
    let failed = greedy(&split, 30, |n| {
        if n == 5 {
            second.kill();
        }
    });
    match failed {
        Err(InferenceError::Unavailable(why)) => assert!(why.contains("layers 1..2"), "{why}"),
        other => panic!("expected the model to be unavailable, got {other:?}"),
    }
    // Nothing covers the model now: a new request is refused at once.
    assert!(!coordinator.covered());
    let mut sequence = sequence(&split, 4);
    assert!(matches!(
        sequence.step(),
        Err(InferenceError::Unavailable(_))
    ));
}

#[test]
fn sessions_reserve_their_kv_cache_within_the_budget_and_give_it_back() {
    let pipeline = Pipeline::new();
    // One layer of the tiny model: 2 KV heads × 16 floats × K and V × 4 bytes = 256 B a token.
    let config = ShardConfig {
        kv_budget: 256 * 100,
        idle: Duration::from_millis(300),
    };
    let small = provider(&pipeline.path, 1, 0..1, config);
    let key = PrivateKeySigner::random();
    let shard = &small.shard;
    let open = |session: u64, tokens: usize| {
        pipeline.runtime.block_on(Link::open(
            &key,
            (shard.provider, &shard.api_url),
            MODEL,
            (session, tokens),
            64,
            Duration::from_secs(5),
        ))
    };
    let mut held = open(1, 60).unwrap();
    match open(2, 60) {
        Err(LinkError::Refused {
            status: 503,
            message,
        }) => {
            assert!(message.contains("KV budget is full"), "{message}")
        }
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
    assert!(
        open(3, 40).is_ok(),
        "what is left of the budget is still taken"
    );
    // A step retried from the same position gives the same floats.
    let hidden: Vec<f32> = (0..3 * 64).map(|i| (i as f32 * 0.37).sin()).collect();
    let once = pipeline
        .runtime
        .block_on(held.step(&hidden, 0, 3, Duration::from_secs(5)))
        .unwrap();
    let twice = pipeline
        .runtime
        .block_on(held.step(&hidden, 0, 3, Duration::from_secs(5)))
        .unwrap();
    assert_eq!(once, twice);
    // A frame past the session's reservation closes it with the reason.
    match pipeline
        .runtime
        .block_on(held.step(&hidden, 58, 3, Duration::from_secs(5)))
    {
        Err(LinkError::Closed { code, reason }) => {
            assert_eq!(code, Some(1008));
            assert!(reason.contains("past the 60"), "{reason}")
        }
        other => panic!("expected the session closed, got {other:?}"),
    }
    // Idle and closed sessions give their reservations back.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while small.server.reserved() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "reservations were kept"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(open(4, 100).is_ok());
}

/// Polls `done` every 20 ms for up to 10 s.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_session_the_shard_closed_for_idling_is_opened_again_on_the_same_provider() {
    let pipeline = Pipeline::new();
    let expected = greedy(&pipeline.whole(), 24, |_| ()).unwrap();
    let config = ShardConfig {
        idle: Duration::from_millis(300),
        ..ShardConfig::default()
    };
    let first = provider(&pipeline.path, 1, 0..1, config);
    let second = provider(&pipeline.path, 2, 1..2, config);
    let coordinator = pipeline.coordinator(&[&first, &second]);
    let split = pipeline.split(&coordinator);
    let mut sequence = sequence(&split, 24);
    let mut ids = Vec::new();
    while sequence.finished().is_none() {
        if ids.len() == 10 {
            // Both shards close the session for idling (and give its budget back).
            wait_until("the idle sessions closed", || {
                first.server.reserved() == 0 && second.server.reserved() == 0
            });
        }
        ids.extend(sequence.step().unwrap().token);
    }
    // With no other provider of either range, only the same providers could go on.
    assert_eq!(ids, expected);
    assert!(coordinator.covered(), "an idle close bans nobody");
}

#[test]
fn a_shard_whose_kv_budget_is_full_is_passed_over_not_banned() {
    let pipeline = Pipeline::new();
    let first = provider(&pipeline.path, 1, 0..1, ShardConfig::default());
    // Room for one session (the prompt and 24 tokens, 62 in all) and not two: 256 B a token
    // for the one layer.
    let full = ShardConfig {
        kv_budget: 256 * 100,
        ..ShardConfig::default()
    };
    let second = provider(&pipeline.path, 2, 1..2, full);
    let coordinator = pipeline.coordinator(&[&first, &second]);
    let split = pipeline.split(&coordinator);
    let mut holder = sequence(&split, 24);
    holder.step().unwrap();
    assert!(second.server.reserved() > 0);
    // The next session finds the only provider of layers 1..2 full.
    match greedy(&split, 24, |_| ()) {
        Err(InferenceError::Unavailable(why)) => assert!(why.contains("KV budget"), "{why}"),
        other => panic!("expected the model to be unavailable, got {other:?}"),
    }
    drop(holder);
    wait_until("the holder's session closed", || {
        second.server.reserved() == 0
    });
    // Passed over for a second, not banned for 15: it serves again at once after.
    wait_until("the full provider counted again", || coordinator.covered());
    assert_eq!(greedy(&split, 8, |_| ()).unwrap().len(), 8);
}
