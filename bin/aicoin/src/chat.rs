//! `aicoin chat` and `aicoin complete`: run a model locally, streaming its tokens to the
//! terminal and reporting the speed at the end, like `ollama run`. Ctrl-C stops the answer
//! being generated (and exits at the prompt).

use std::{
    io::{BufRead, IsTerminal, Write},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use aicoin_inference::{GenerateParams, Message, ModelKind, SamplingParams, Sequence, TextModel};
use clap::Args;
use eyre::{WrapErr, bail, eyre};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{model::resolve, serve::ModelArgs};

/// The model to run.
#[derive(Debug, Args)]
pub struct LocalModelArgs {
    #[command(flatten)]
    pub models: ModelArgs,
    /// Data directory whose `models/` holds the fetched models.
    #[arg(long, env = "AICOIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// How tokens are chosen (the defaults are ollama's).
#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Most tokens to generate [default: 1024 for chat, 256 for complete].
    #[arg(long)]
    max_tokens: Option<usize>,
    /// 0 always picks the likeliest token (deterministic output).
    #[arg(long, default_value_t = 0.7)]
    temperature: f64,
    #[arg(long, default_value_t = 0.9)]
    top_p: f64,
    #[arg(long)]
    top_k: Option<usize>,
    /// Above 1 discourages repeating what is already in the context.
    #[arg(long, default_value_t = 1.1)]
    repeat_penalty: f32,
    /// Makes sampling reproducible.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop when the output contains this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
}

impl SamplingArgs {
    fn params(&self, default_max_tokens: usize) -> GenerateParams {
        GenerateParams {
            max_tokens: Some(self.max_tokens.unwrap_or(default_max_tokens)),
            sampling: SamplingParams {
                temperature: self.temperature,
                top_p: (self.top_p < 1.0).then_some(self.top_p),
                top_k: self.top_k,
                seed: self.seed,
                repetition_penalty: self.repeat_penalty,
                ..SamplingParams::default()
            },
            stop: self.stop.clone(),
            ignore_eos: false,
        }
    }
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// A message to answer, then exit [default: an interactive session; /bye or Ctrl-D ends it].
    message: Vec<String>,
    /// A system prompt for the conversation.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    model: LocalModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
}

#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// The text to continue [default: read from stdin].
    prompt: Vec<String>,
    #[command(flatten)]
    model: LocalModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// Set while an answer is being generated; Ctrl-C then stops it rather than the program.
#[derive(Debug, Default)]
struct Interrupt {
    generating: AtomicBool,
    requested: AtomicBool,
}

impl Interrupt {
    fn install() -> Arc<Self> {
        let interrupt = Arc::new(Self::default());
        let handle = interrupt.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if handle.generating.load(Ordering::SeqCst) {
                    handle.requested.store(true, Ordering::SeqCst);
                } else {
                    eprintln!();
                    std::process::exit(130);
                }
            }
        });
        interrupt
    }
}

/// Loads the first text model `args` names (or the first fetched), with a spinner meanwhile.
pub fn load_text_model(
    models: &ModelArgs,
    data_dir: Option<&std::path::Path>,
) -> eyre::Result<Arc<TextModel>> {
    let dir = models.models_dir(data_dir);
    let local = resolve(&dir, &models.model)?
        .into_iter()
        .find(|m| m.kind == ModelKind::Text)
        .ok_or_else(|| {
            eyre!(
                "no chat/completion model in {}: fetch one with `aicoin model fetch smollm2` or give --model PATH",
                dir.path().display()
            )
        })?;
    let spinner = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}")?)
        .with_message(format!("loading {}", local.id));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let started = Instant::now();
    let device = aicoin_inference::device(models.device())?;
    let model = TextModel::load(&local.path, &local.id, &device, models.weight_format())
        .wrap_err_with(|| format!("cannot load {}", local.path.display()));
    spinner.finish_and_clear();
    let mut model = model?;
    model.context_length = model.context_length.min(models.max_context());
    eprintln!(
        "{} ({:?}, context {} tokens) loaded in {:.1} s",
        model.id,
        model.architecture,
        model.context_length,
        started.elapsed().as_secs_f64()
    );
    Ok(Arc::new(model))
}

/// What one generation took.
#[derive(Debug, Clone, Copy)]
struct Stats {
    prompt_tokens: usize,
    completion_tokens: usize,
    /// Until the first generated token (the prompt's prefill).
    to_first_token: Duration,
    /// From the first generated token to the last.
    decoding: Duration,
}

impl Stats {
    fn print(&self, interrupted: bool) {
        let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
        let decode = match self.completion_tokens {
            0 | 1 => String::new(),
            n => format!(" · {:.1} tokens/s", rate(n - 1, self.decoding)),
        };
        eprintln!(
            "[{} tokens{decode} · prompt {} tokens in {:.2} s ({:.0} tokens/s){}]",
            self.completion_tokens,
            self.prompt_tokens,
            self.to_first_token.as_secs_f64(),
            rate(self.prompt_tokens, self.to_first_token),
            if interrupted { " · stopped" } else { "" },
        );
    }
}

/// Streams the model's continuation of `prompt` to stdout; returns the text and the timings.
fn stream(
    model: &Arc<TextModel>,
    prompt: Vec<u32>,
    params: GenerateParams,
    interrupt: &Interrupt,
) -> eyre::Result<(String, Stats, bool)> {
    let mut sequence = Sequence::new(model.clone(), prompt, params)?;
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    let mut first_token = None;
    let mut text = String::new();
    interrupt.requested.store(false, Ordering::SeqCst);
    interrupt.generating.store(true, Ordering::SeqCst);
    let result = loop {
        if interrupt.requested.swap(false, Ordering::SeqCst) {
            break Ok(true);
        }
        let step = match sequence.step() {
            Ok(step) => step,
            Err(e) => break Err(e),
        };
        if step.token.is_some() && first_token.is_none() {
            first_token = Some(Instant::now());
        }
        text.push_str(&step.text);
        // A closed stdout (`| head`) ends the output, not the program with an error.
        if out
            .write_all(step.text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            break Ok(true);
        }
        if step.finished.is_some() {
            break Ok(false);
        }
    };
    interrupt.generating.store(false, Ordering::SeqCst);
    let _ = writeln!(out);
    let interrupted = result?;
    let first_token = first_token.unwrap_or_else(Instant::now);
    let stats = Stats {
        prompt_tokens: sequence.prompt_tokens(),
        completion_tokens: sequence.completion_tokens(),
        to_first_token: first_token - started,
        decoding: first_token.elapsed(),
    };
    Ok((text, stats, interrupted))
}

pub async fn complete(args: CompleteArgs) -> eyre::Result<()> {
    let interrupt = Interrupt::install();
    tokio::task::spawn_blocking(move || {
        let prompt = match args.prompt.is_empty() {
            false => args.prompt.join(" "),
            true => std::io::read_to_string(std::io::stdin())
                .wrap_err("cannot read the prompt from stdin")?,
        };
        if prompt.is_empty() {
            bail!("the prompt is empty");
        }
        let model = load_text_model(&args.model.models, args.model.data_dir.as_deref())?;
        let ids = model.encode(&prompt)?;
        print!("{prompt}");
        let (_, stats, interrupted) = stream(&model, ids, args.sampling.params(256), &interrupt)?;
        stats.print(interrupted);
        Ok(())
    })
    .await?
}

pub async fn chat(args: ChatArgs) -> eyre::Result<()> {
    let interrupt = Interrupt::install();
    tokio::task::spawn_blocking(move || {
        let model = load_text_model(&args.model.models, args.model.data_dir.as_deref())?;
        if !model.has_chat_template() {
            bail!(
                "{} has no chat template; use `aicoin complete` with it",
                model.id
            );
        }
        let mut conversation = Conversation::new(args.system.clone());
        let params = args.sampling.params(1024);
        if !args.message.is_empty() {
            conversation.ask(&model, args.message.join(" "), &params, &interrupt)?;
            return Ok(());
        }
        let interactive = std::io::stdin().is_terminal();
        if interactive {
            eprintln!("Type a message; /clear forgets the conversation, /bye (or Ctrl-D) ends it.");
        }
        let mut lines = std::io::stdin().lock().lines();
        loop {
            if interactive {
                print!(">>> ");
                std::io::stdout().flush()?;
            }
            let Some(line) = lines.next().transpose()? else {
                break;
            };
            match line.trim() {
                "" => continue,
                "/bye" | "/exit" => break,
                "/clear" => {
                    conversation = Conversation::new(args.system.clone());
                    eprintln!("(conversation cleared)");
                }
                message => {
                    // A refused message (too long, say) is reported and forgotten; the
                    // conversation goes on.
                    if let Err(e) =
                        conversation.ask(&model, message.to_string(), &params, &interrupt)
                    {
                        eprintln!("error: {e:#}");
                    }
                }
            }
        }
        Ok(())
    })
    .await?
}

/// The messages so far, trimmed from the oldest turn when they outgrow the context.
struct Conversation {
    system: Option<Message>,
    turns: Vec<Message>,
}

impl Conversation {
    fn new(system: Option<String>) -> Self {
        Self {
            system: system.map(|content| Message {
                role: "system".into(),
                content,
            }),
            turns: Vec::new(),
        }
    }

    fn messages(&self) -> Vec<Message> {
        self.system.iter().chain(&self.turns).cloned().collect()
    }

    /// Answers `content`, streaming; on failure the conversation is as it was before.
    fn ask(
        &mut self,
        model: &Arc<TextModel>,
        content: String,
        params: &GenerateParams,
        interrupt: &Interrupt,
    ) -> eyre::Result<()> {
        let before = self.turns.clone();
        self.turns.push(Message {
            role: "user".into(),
            content,
        });
        let answered = self.answer(model, params, interrupt);
        if answered.is_err() {
            self.turns = before;
        }
        answered
    }

    fn answer(
        &mut self,
        model: &Arc<TextModel>,
        params: &GenerateParams,
        interrupt: &Interrupt,
    ) -> eyre::Result<()> {
        let budget = params.max_tokens.unwrap_or(0);
        let mut prompt = model.encode(&model.chat_prompt(&self.messages())?)?;
        // Forget the oldest exchanges until the prompt and the answer fit.
        while prompt.len() + budget > model.context_length && self.turns.len() > 1 {
            self.turns.drain(..2.min(self.turns.len() - 1));
            prompt = model.encode(&model.chat_prompt(&self.messages())?)?;
        }
        let params = GenerateParams {
            max_tokens: Some(
                budget
                    .min(model.context_length.saturating_sub(prompt.len()))
                    .max(1),
            ),
            ..params.clone()
        };
        let (answer, stats, interrupted) = stream(model, prompt, params, interrupt)?;
        stats.print(interrupted);
        self.turns.push(Message {
            role: "assistant".into(),
            content: answer,
        });
        Ok(())
    }
}
