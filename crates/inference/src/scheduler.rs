//! Serving many requests on one text model: a bounded queue in front of a worker thread that
//! runs up to `max_active` sequences at once, each with its own KV cache. Each round feeds one
//! prefill chunk of one sequence still reading its prompt (they take turns, so a long prompt
//! does not stall the others), then one decode step of every sequence past its prompt, all in
//! one batched forward pass where the model batches ([`Sequence::step_batch`]): the weights
//! are read once per round instead of once per sequence, and each sequence's answer is exactly
//! what it would be alone.
//!
//! A full queue refuses at once (the API answers 429 with `Retry-After`). A request whose
//! receiver is dropped (the client went away) is cancelled before its next step.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel},
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::{
    FinishReason, GenerateParams, InferenceError, Sequence, Step, TextModel,
    metrics::{InferenceMetrics, ModelLabel, Outcome},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Requests that may wait for a turn; more are refused.
    pub max_queue: usize,
    /// Sequences generated at once (their steps interleave).
    pub max_active: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_queue: 64,
            max_active: 8,
        }
    }
}

/// What a request's receiver gets, in order: text pieces (each generated token's id just
/// before the text it released), then one `Done` or `Failed`.
#[derive(Debug)]
pub enum Event {
    /// The first generated token was sampled (the prompt is in).
    Started,
    /// A generated token's id (an end-of-turn token included), for clients that ask for ids.
    Token(u32),
    Text(String),
    Done(Usage),
    Failed(InferenceError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub finish_reason: FinishReason,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the model is busy: {waiting} requests are already waiting; retry shortly")]
    Busy {
        waiting: usize,
        retry_after: Duration,
    },
    #[error("the model's worker is not running; see the server log")]
    Unavailable,
    #[error(transparent)]
    Invalid(#[from] InferenceError),
}

struct Job {
    sequence: Sequence,
    events: UnboundedSender<Event>,
    arrived: Instant,
}

/// The queue and worker of one text model.
#[derive(Debug, Clone)]
pub struct Scheduler {
    model: Arc<TextModel>,
    jobs: SyncSender<Job>,
    waiting: Arc<AtomicUsize>,
    metrics: InferenceMetrics,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

/// How long a refused client should wait: about one request's worth of work.
const RETRY_AFTER: Duration = Duration::from_secs(2);

impl Scheduler {
    /// Starts the worker thread; it ends when every `Scheduler` clone is dropped.
    pub fn start(
        model: Arc<TextModel>,
        config: SchedulerConfig,
        metrics: InferenceMetrics,
    ) -> Self {
        let (jobs, queue) = sync_channel(config.max_queue);
        let waiting = Arc::new(AtomicUsize::new(0));
        let max_active = config.max_active.max(1);
        // Every series exists from the start, so dashboards see zeros rather than gaps (the
        // text encoder leaves out empty families).
        let label = ModelLabel {
            model: model.id.clone(),
        };
        metrics.queue_depth.get_or_create(&label).set(0);
        metrics.active_sequences.get_or_create(&label).set(0);
        metrics.prompt_tokens.get_or_create(&label).inc_by(0);
        metrics.completion_tokens.get_or_create(&label).inc_by(0);
        metrics.tokens_per_second.get_or_create(&label).set(0.0);
        let worker = Worker {
            label: ModelLabel {
                model: model.id.clone(),
            },
            queue,
            waiting: waiting.clone(),
            max_active,
            metrics: metrics.clone(),
            active: VecDeque::new(),
            speed: Speed::default(),
            batches: model.batches_decoding(),
        };
        let name = format!("inference-{}", model.id);
        if let Err(e) = std::thread::Builder::new()
            .name(name)
            .spawn(move || worker.run())
        {
            tracing::error!(error = %e, "cannot start the inference worker");
        }
        Self {
            model,
            jobs,
            waiting,
            metrics,
        }
    }

    pub fn model(&self) -> &Arc<TextModel> {
        &self.model
    }

    /// Checks and queues a generation; its events arrive on the returned receiver. Dropping the
    /// receiver cancels it.
    pub fn submit(
        &self,
        prompt: Vec<u32>,
        params: GenerateParams,
    ) -> Result<UnboundedReceiver<Event>, SubmitError> {
        let sequence = Sequence::new(self.model.clone(), prompt, params)?;
        let (events, receiver) = unbounded_channel();
        let job = Job {
            sequence,
            events,
            arrived: Instant::now(),
        };
        let label = ModelLabel {
            model: self.model.id.clone(),
        };
        self.waiting.fetch_add(1, Ordering::SeqCst);
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.metrics.queue_depth.get_or_create(&label).inc();
                Ok(receiver)
            }
            Err(TrySendError::Full(_)) => {
                let waiting = self.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
                self.metrics.request(&self.model.id, Outcome::Rejected);
                Err(SubmitError::Busy {
                    waiting,
                    retry_after: RETRY_AFTER,
                })
            }
            Err(TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                self.metrics.request(&self.model.id, Outcome::Failed);
                Err(SubmitError::Unavailable)
            }
        }
    }
}

struct Active {
    job: Job,
    last_token: Option<Instant>,
}

/// Generated tokens per second over about the last second.
#[derive(Default)]
struct Speed {
    since: Option<Instant>,
    tokens: u64,
}

struct Worker {
    label: ModelLabel,
    queue: Receiver<Job>,
    waiting: Arc<AtomicUsize>,
    max_active: usize,
    metrics: InferenceMetrics,
    active: VecDeque<Active>,
    speed: Speed,
    /// Whether the model steps decoding sequences together.
    batches: bool,
}

impl Worker {
    fn run(mut self) {
        loop {
            if !self.admit() {
                return;
            }
            self.drop_cancelled();
            self.round();
            self.metrics
                .active_sequences
                .get_or_create(&self.label)
                .set(self.active.len() as i64);
        }
    }

    /// One prefill chunk of the first sequence still reading its prompt (it then goes to the
    /// back, behind the others reading theirs), then one decode step of every sequence past its
    /// prompt in one batch.
    fn round(&mut self) {
        if let Some(reading) = self.active.iter().position(|a| !a.job.sequence.decoding())
            && let Some(mut active) = self.active.remove(reading)
        {
            let step = caught(|| active.job.sequence.step())
                .unwrap_or_else(|crash| Err(InferenceError::Crashed(crash)));
            if let Some(active) = self.deliver(active, step) {
                self.active.push_back(active);
            }
        }
        let (mut decoding, reading): (Vec<Active>, Vec<Active>) = self
            .active
            .drain(..)
            .partition(|a| a.job.sequence.decoding());
        self.active.extend(reading);
        if decoding.is_empty() {
            return;
        }
        let mut sequences: Vec<&mut Sequence> =
            decoding.iter_mut().map(|a| &mut a.job.sequence).collect();
        let batch = sequences.len();
        if self.batches {
            self.metrics
                .decode_batch
                .get_or_create(&self.label)
                .observe(batch as f64);
        }
        let steps = caught(|| Sequence::step_batch(&mut sequences)).unwrap_or_else(|crash| {
            (0..batch)
                .map(|_| Err(InferenceError::Crashed(crash.clone())))
                .collect()
        });
        for (active, step) in decoding.into_iter().zip(steps) {
            if let Some(active) = self.deliver(active, step) {
                self.active.push_back(active);
            }
        }
    }

    /// Ends the sequences whose clients went away.
    fn drop_cancelled(&mut self) {
        let before = self.active.len();
        self.active.retain(|a| !a.job.events.is_closed());
        for _ in self.active.len()..before {
            self.metrics.request(&self.label.model, Outcome::Cancelled);
        }
    }

    /// Takes queued jobs while there is room; waits for one when idle. False once every
    /// scheduler handle is gone and nothing is left to do.
    fn admit(&mut self) -> bool {
        while self.active.len() < self.max_active {
            let next = if self.active.is_empty() {
                match self.queue.recv_timeout(Duration::from_secs(1)) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        self.metrics
                            .tokens_per_second
                            .get_or_create(&self.label)
                            .set(0.0);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return false,
                }
            } else {
                match self.queue.try_recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            };
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            self.metrics.queue_depth.get_or_create(&self.label).dec();
            if next.events.is_closed() {
                // Its client left while it waited.
                self.metrics.request(&self.label.model, Outcome::Cancelled);
                continue;
            }
            self.active.push_back(Active {
                job: next,
                last_token: None,
            });
        }
        true
    }

    /// Sends what a step produced to its client; gives the sequence back unless it finished
    /// or failed.
    fn deliver(
        &mut self,
        mut active: Active,
        step: Result<Step, InferenceError>,
    ) -> Option<Active> {
        let step = match step {
            Ok(step) => step,
            Err(e) => {
                tracing::warn!(model = %self.label.model, error = %e, "generation failed");
                // Counted before the client hears, so its next /metrics read includes it.
                self.metrics.request(&self.label.model, Outcome::Failed);
                let _ = active.job.events.send(Event::Failed(e));
                return None;
            }
        };
        let events = &active.job.events;
        if step.token.is_some() {
            let now = Instant::now();
            match active.last_token {
                None => {
                    self.metrics
                        .time_to_first_token
                        .get_or_create(&self.label)
                        .observe((now - active.job.arrived).as_secs_f64());
                    let prompt = active.job.sequence.prompt_tokens() as u64;
                    self.metrics
                        .prompt_tokens
                        .get_or_create(&self.label)
                        .inc_by(prompt);
                    let _ = events.send(Event::Started);
                }
                Some(last) => {
                    self.metrics
                        .inter_token
                        .get_or_create(&self.label)
                        .observe((now - last).as_secs_f64());
                }
            }
            active.last_token = Some(now);
            self.metrics
                .completion_tokens
                .get_or_create(&self.label)
                .inc();
            self.count_token(now);
        }
        if let Some(token) = step.token {
            let _ = events.send(Event::Token(token));
        }
        if !step.text.is_empty() {
            let _ = events.send(Event::Text(step.text));
        }
        match step.finished {
            Some(finish_reason) => {
                let sequence = &active.job.sequence;
                self.metrics.request(&self.label.model, Outcome::Completed);
                let _ = events.send(Event::Done(Usage {
                    prompt_tokens: sequence.prompt_tokens(),
                    completion_tokens: sequence.completion_tokens(),
                    finish_reason,
                }));
                None
            }
            None => Some(active),
        }
    }

    fn count_token(&mut self, now: Instant) {
        let since = *self.speed.since.get_or_insert(now);
        self.speed.tokens += 1;
        let elapsed = now - since;
        if elapsed >= Duration::from_secs(1) {
            let rate = self.speed.tokens as f64 / elapsed.as_secs_f64();
            self.metrics
                .tokens_per_second
                .get_or_create(&self.label)
                .set(rate);
            self.speed = Speed::default();
        }
    }
}

/// Runs `f`, catching a panic inside candle (its message) so that it fails the requests it
/// was for rather than the worker and every later request.
fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SamplingParams, WeightFormat, testing::write_tiny_llama};

    fn tiny(dir: &tempfile::TempDir) -> Arc<TextModel> {
        let path = dir.path().join("tiny.gguf");
        write_tiny_llama(&path, 3).unwrap();
        Arc::new(
            TextModel::load(
                &path,
                "tiny",
                &candle_core::Device::Cpu,
                WeightFormat::AsShipped,
            )
            .unwrap(),
        )
    }

    fn params(max_tokens: usize) -> GenerateParams {
        GenerateParams {
            max_tokens: Some(max_tokens),
            sampling: SamplingParams {
                temperature: 0.0,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Drains a request's events into its token ids, text and usage.
    fn collect(mut events: UnboundedReceiver<Event>) -> (Vec<u32>, String, Usage) {
        let (mut ids, mut text) = (Vec::new(), String::new());
        loop {
            match events
                .blocking_recv()
                .expect("the worker ended the stream early")
            {
                Event::Started => {}
                Event::Token(id) => ids.push(id),
                Event::Text(t) => text.push_str(&t),
                Event::Done(usage) => return (ids, text, usage),
                Event::Failed(e) => panic!("generation failed: {e}"),
            }
        }
    }

    #[test]
    fn eight_sequences_decoded_in_one_batch_each_get_exactly_their_answer_alone() {
        let dir = tempfile::tempdir().unwrap();
        let model = tiny(&dir);
        assert!(model.batches_decoding());
        let metrics = InferenceMetrics::new();
        let scheduler =
            Scheduler::start(model.clone(), SchedulerConfig::default(), metrics.clone());
        let prompts = [
            "the cat",
            "in the hat",
            "a b c d e f",
            "hat",
            "the the the cat sat",
            "c",
            "in a hat, the cat",
            "f e d c b a",
        ];
        let alone: Vec<_> = prompts
            .iter()
            .map(|p| {
                collect(
                    scheduler
                        .submit(model.encode(p).unwrap(), params(24))
                        .unwrap(),
                )
            })
            .collect();
        let receivers: Vec<_> = prompts
            .iter()
            .map(|p| {
                scheduler
                    .submit(model.encode(p).unwrap(), params(24))
                    .unwrap()
            })
            .collect();
        let together: Vec<_> = receivers.into_iter().map(collect).collect();
        for ((prompt, alone), together) in prompts.iter().zip(&alone).zip(&together) {
            assert_eq!(alone.0, together.0, "greedy ids of {prompt:?}");
            assert_eq!(alone.1, together.1);
            assert_eq!(alone.2, together.2);
            assert_eq!(
                together.2.prompt_tokens,
                model.encode(prompt).unwrap().len()
            );
        }
        // The eight did share decode passes: some pass stepped all of them at once.
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("batch", "", metrics.decode_batch.clone());
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let below_8 = bucket(&text, "4.0");
        let up_to_8 = bucket(&text, "8.0");
        assert!(
            up_to_8 > below_8,
            "no pass stepped 5..=8 sequences:\n{text}"
        );
    }

    /// The cumulative count of a histogram bucket in Prometheus text.
    fn bucket(text: &str, le: &str) -> u64 {
        text.lines()
            .find(|l| l.contains(&format!("le=\"{le}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no bucket {le} in\n{text}"))
    }

    #[test]
    fn a_full_queue_refuses_and_invalid_requests_fail_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let model = tiny(&dir);
        let config = SchedulerConfig {
            max_queue: 1,
            max_active: 1,
        };
        let scheduler = Scheduler::start(model.clone(), config, InferenceMetrics::new());
        let prompt = model.encode("the cat").unwrap();
        // Keep the worker busy with long requests until the queue refuses one.
        let mut held = Vec::new();
        let refused = (0..10).find_map(|_| match scheduler.submit(prompt.clone(), params(200)) {
            Ok(receiver) => {
                held.push(receiver);
                None
            }
            Err(e) => Some(e),
        });
        assert!(
            matches!(refused, Some(SubmitError::Busy { .. })),
            "{refused:?}"
        );
        let too_long = scheduler
            .submit(prompt.clone(), params(10_000))
            .unwrap_err();
        assert!(matches!(
            too_long,
            SubmitError::Invalid(InferenceError::ContextOverflow { .. })
        ));
        // Dropping the receivers cancels the work: the queue drains and accepts again.
        drop(held);
        let accepted = (0..500).find_map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            scheduler.submit(prompt.clone(), params(3)).ok()
        });
        let (_, _, usage) = collect(accepted.expect("the queue never drained after cancellation"));
        assert!(usage.completion_tokens <= 3);
    }
}
