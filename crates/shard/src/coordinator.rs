//! The coordinator: a model's layers run through a chain of shards on other providers, as the
//! [`RemoteLayers`] of a split [`aicoin_inference::TextModel`] whose embedding and head run
//! here. The gateway serves such a model with the same OpenAI handlers as a local one.
//!
//! A session keeps, for each hop of its route, the input of every step it has run. When a
//! shard fails or misses its deadline, its provider is banned ([`Routes::failed`]), the range
//! is planned again among the others, and the new providers are replayed every earlier step
//! with the same chunking, which rebuilds their KV caches to the very floats the failed one
//! held; then the step goes on. The client's stream sees a pause, never an error, while any
//! provider is left for every range.
//!
//! The inputs kept cost `tokens × hidden × 4` bytes per hop (SmolLM2: 2.3 KB a token), in
//! exchange for replays that touch only the failed range.

use std::{
    collections::HashMap,
    ops::Range,
    sync::Arc,
    time::{Duration, Instant},
};

use aicoin_inference::{InferenceError, LayerSession, RemoteLayers, Result};
use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use parking_lot::{Mutex, RwLock};

use crate::{
    link::{Link, LinkError},
    route::{Routes, Shard},
};

/// A step's deadline, and how bans start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// A step's deadline: this, plus `per_token` for each of its tokens.
    pub deadline: Duration,
    pub per_token: Duration,
    /// The first ban of a failed provider (doubling with each failure in a row).
    pub first_ban: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            per_token: Duration::from_millis(100),
            first_ban: Duration::from_secs(15),
        }
    }
}

impl CoordinatorConfig {
    fn deadline(&self, tokens: usize) -> Duration {
        self.deadline + self.per_token.saturating_mul(tokens as u32)
    }
}

/// Replacements one step may try, all its failed hops together, before it gives up.
const MAX_REROUTES: usize = 8;

/// Chains the shards of one model.
#[derive(Clone)]
pub struct Coordinator(Arc<Inner>);

struct Inner {
    model: String,
    layers: usize,
    width: usize,
    key: PrivateKeySigner,
    shards: RwLock<Vec<Shard>>,
    routes: Routes,
    /// Layer-tokens each provider ran (tokens × layers), until taken.
    work: Mutex<HashMap<Address, u64>>,
    /// The sessions' sockets and steps: a runtime on the calling thread, so a step's frames
    /// are read where the step waits for them, with no hand-off between threads. One thread
    /// at a time steps (a model's scheduler is one thread).
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    config: CoordinatorConfig,
}

impl Drop for Inner {
    /// The last reference may go inside async code (a gateway shutting down), where dropping
    /// a runtime the usual way panics.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.get_mut().take() {
            runtime.shutdown_background();
        }
    }
}

impl Coordinator {
    /// The coordinator of `model`, of `layers` layers of `width` hidden floats, signing with
    /// `key`. Its steps block the calling thread, which must not be an async one.
    pub fn new(
        model: &str,
        (layers, width): (usize, usize),
        key: PrivateKeySigner,
        config: CoordinatorConfig,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self(Arc::new(Inner {
            model: model.to_string(),
            layers,
            width,
            key,
            shards: RwLock::new(Vec::new()),
            routes: Routes::new(config.first_ban),
            work: Mutex::new(HashMap::new()),
            runtime: Mutex::new(Some(runtime)),
            config,
        })))
    }

    /// The shards the registry lists now.
    pub fn set_shards(&self, shards: Vec<Shard>) {
        *self.0.shards.write() = shards;
    }

    /// Whether the shards listed now, less the banned, cover every layer.
    pub fn covered(&self) -> bool {
        self.0.plan(0..self.0.layers).is_some()
    }

    /// The layer-tokens (tokens × layers) each provider ran since the last call.
    pub fn take_work(&self) -> HashMap<Address, u64> {
        std::mem::take(&mut *self.0.work.lock())
    }
}

impl Inner {
    fn plan(&self, layers: Range<usize>) -> Option<Vec<Shard>> {
        self.routes
            .plan(&self.shards.read(), layers, Instant::now())
    }

    fn unavailable(&self, layers: &Range<usize>, why: &str) -> InferenceError {
        InferenceError::Unavailable(format!(
            "no provider can run layers {}..{} of {} now ({why})",
            layers.start, layers.end, self.model
        ))
    }
}

impl RemoteLayers for Coordinator {
    fn open(&self, capacity: usize) -> Result<Box<dyn LayerSession>> {
        let all = 0..self.0.layers;
        let route = self.0.plan(all.clone()).ok_or_else(|| {
            self.0
                .unavailable(&all, "the shards listed do not cover them")
        })?;
        Ok(Box::new(Session {
            inner: self.0.clone(),
            session: rand::random(),
            capacity,
            hops: route.into_iter().map(Hop::new).collect(),
            steps: Vec::new(),
            failed: None,
        }))
    }
}

/// One hop of a session's route: a shard, its open link, the input of every step so far.
struct Hop {
    shard: Shard,
    link: Option<Link>,
    inputs: Vec<Arc<[f32]>>,
}

impl Hop {
    fn new(shard: Shard) -> Self {
        Self {
            shard,
            link: None,
            inputs: Vec::new(),
        }
    }
}

/// One sequence's session through the pipeline.
struct Session {
    inner: Arc<Inner>,
    session: u64,
    capacity: usize,
    hops: Vec<Hop>,
    /// Every step so far: its first position and token count.
    steps: Vec<(usize, usize)>,
    /// Why a step failed: the hops no longer cover every layer, so nothing more runs.
    failed: Option<String>,
}

impl LayerSession for Session {
    fn run(&mut self, hidden: Vec<f32>, pos: usize, seq: usize) -> Result<Vec<f32>> {
        if let Some(why) = &self.failed {
            return Err(InferenceError::Unavailable(format!(
                "this session failed earlier: {why}"
            )));
        }
        let inner = self.inner.clone();
        let runtime = inner.runtime.lock();
        let runtime = runtime
            .as_ref()
            .ok_or_else(|| InferenceError::Unavailable("the coordinator stopped".into()))?;
        let ran = runtime.block_on(self.step(hidden.into(), pos, seq));
        if let Err(InferenceError::Unavailable(why)) = &ran {
            self.failed = Some(why.clone());
        }
        ran
    }
}

impl Session {
    async fn step(&mut self, hidden: Arc<[f32]>, pos: usize, seq: usize) -> Result<Vec<f32>> {
        if pos + seq > self.capacity {
            return Err(InferenceError::InvalidRequest(format!(
                "tokens {pos}..{} are past the session's {}",
                pos + seq,
                self.capacity
            )));
        }
        // A step from an earlier position replaces the steps from there on.
        let kept = self.steps.partition_point(|&(start, _)| start < pos);
        let end = self.steps[..kept].last().map_or(0, |&(start, n)| start + n);
        if end != pos {
            return Err(InferenceError::InvalidRequest(format!(
                "position {pos} does not follow a step: the session holds {end} tokens"
            )));
        }
        self.steps.truncate(kept);
        let step = self.steps.len();
        self.steps.push((pos, seq));
        let mut reroutes = MAX_REROUTES;
        let mut x = hidden;
        let mut h = 0;
        while h < self.hops.len() {
            self.hops[h].inputs.truncate(step);
            self.hops[h].inputs.push(x.clone());
            match self.run_hop(h, step).await {
                Ok(out) => {
                    x = out.into();
                    h += 1;
                }
                Err(e) => self.reroute(h, step, e, &mut reroutes).await?,
            }
        }
        Ok(x.to_vec())
    }

    /// Runs step `step` (whose input the hop holds) on hop `h`, opening its link if need be.
    async fn run_hop(&mut self, h: usize, step: usize) -> Result<Vec<f32>, LinkError> {
        let inner = &self.inner;
        let (pos, seq) = self.steps[step];
        let hop = &mut self.hops[h];
        let deadline = inner.config.deadline(seq);
        let started = Instant::now();
        let link = match &mut hop.link {
            Some(link) => link,
            None => {
                let open = Link::open(
                    &inner.key,
                    (hop.shard.provider, &hop.shard.api_url),
                    &inner.model,
                    (self.session, self.capacity),
                    inner.width,
                    deadline,
                )
                .await?;
                hop.link.insert(open)
            }
        };
        match link.step(&hop.inputs[step], pos, seq, deadline).await {
            Ok(out) => {
                let provider = hop.shard.provider;
                inner.routes.succeeded(provider, started.elapsed(), seq);
                let layer_tokens = (seq * hop.shard.layers.len()) as u64;
                *inner.work.lock().entry(provider).or_default() += layer_tokens;
                Ok(out)
            }
            Err(e) => {
                hop.link = None;
                Err(e)
            }
        }
    }

    /// Hop `h` failed at step `step` with `error`: puts in its place a new chain over its
    /// layers, replayed through every earlier step. A session the shard closed for being idle
    /// is opened again on the same provider; a full provider is passed over; any other
    /// failure bans the provider. Fails when no chain is left or the step's `reroutes` are
    /// spent.
    async fn reroute(
        &mut self,
        h: usize,
        step: usize,
        error: LinkError,
        reroutes: &mut usize,
    ) -> Result<()> {
        let failed = self.hops.remove(h);
        let layers = failed.shard.layers.clone();
        let mut again = match error.is_idle_close() {
            true => Some(vec![failed.shard.clone()]),
            false => {
                self.penalize(failed.shard.provider, &error, "a shard failed");
                None
            }
        };
        let mut last_error = error;
        loop {
            if *reroutes == 0 {
                let why = format!("{MAX_REROUTES} replacements failed; the last: {last_error}");
                return Err(self.inner.unavailable(&layers, &why));
            }
            *reroutes -= 1;
            let Some(route) = again.take().or_else(|| self.inner.plan(layers.clone())) else {
                let why = format!("the last one failed: {last_error}");
                return Err(self.inner.unavailable(&layers, &why));
            };
            let new: Vec<Hop> = route.into_iter().map(Hop::new).collect();
            let count = new.len();
            self.hops.splice(h..h, new);
            match self.replay(h..h + count, &failed.inputs, step).await {
                Ok(()) => return Ok(()),
                Err((at, e)) => {
                    let provider = self.hops[at].shard.provider;
                    self.penalize(provider, &e, "a replacement shard failed");
                    self.hops.drain(h..h + count);
                    last_error = e;
                }
            }
        }
    }

    /// Bans `provider` for `error`, or passes it over for a second when it was only full.
    fn penalize(&self, provider: Address, error: &LinkError, what: &str) {
        let (model, now) = (&self.inner.model, Instant::now());
        match error.is_busy() {
            true => {
                self.inner.routes.busy(provider, now);
                tracing::info!(%model, %provider, %error, "{what}: it is full; trying another");
            }
            false => {
                let ban = self.inner.routes.failed(provider, now);
                tracing::warn!(
                    %model, %provider, ?ban, %error,
                    "{what}; replaying its layers elsewhere"
                );
            }
        }
    }

    /// Feeds `inputs` of steps `0..step` through `hops` (fresh), in order, so their caches
    /// hold what the replaced hop's held; step `step` itself goes on in [`Session::step`]. On
    /// failure, the hop that failed.
    async fn replay(
        &mut self,
        hops: Range<usize>,
        inputs: &[Arc<[f32]>],
        step: usize,
    ) -> Result<(), (usize, LinkError)> {
        for (s, input) in inputs.iter().enumerate().take(step) {
            let mut x = input.clone();
            for h in hops.clone() {
                self.hops[h].inputs.push(x.clone());
                x = self.run_hop(h, s).await.map_err(|e| (h, e))?.into();
            }
        }
        Ok(())
    }
}
