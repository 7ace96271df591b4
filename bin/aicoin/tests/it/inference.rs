//! Models served by real processes: `aicoin node` serving the fetched models beside the chain
//! (with their metrics on the node's metrics port), `aicoin serve` alone, `aicoin chat` and
//! `aicoin complete` in the terminal, and clear refusals. A tiny random llama stands in for a
//! real model (the real ones are checked in `crates/inference/tests/real_models.rs` and e2e).

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Output, Stdio},
    sync::mpsc,
    time::Instant,
};

use aicoin_inference::testing::write_tiny_llama;
use serde_json::{Value, json};

use crate::common::*;

/// A models directory holding the tiny model as `<dir>/tiny/model.gguf`, as `model fetch`
/// lays models out.
fn models_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("tiny");
    std::fs::create_dir_all(&dir).unwrap();
    write_tiny_llama(&dir.join("model.gguf"), 3).unwrap();
    root.to_path_buf()
}

async fn post(url: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn get_text(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// The value of the metric line starting with `series`.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_node_serves_fetched_models_beside_the_chain() {
    let tmp = tempdir();
    let data = data_dir(&tmp);
    models_dir(&data.join("models"));
    let config = tmp.path().join("aicoin.toml");
    std::fs::write(
        &config,
        "api-port = 0\nmetrics-port = 0\napi-max-active = 2\n",
    )
    .unwrap();
    let node = NodeProcess::dev(&data, &["--config", config.to_str().unwrap()]).await;
    let api = node.banner_value("AI API");
    let api = api.split_whitespace().next().unwrap();
    assert!(
        api.starts_with("http://127.0.0.1:") && api.ends_with("/v1"),
        "{api}"
    );

    let models: Value = reqwest::get(format!("{api}/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "tiny");
    let (status, answer) = post(
        &format!("{api}/chat/completions"),
        json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let generated = answer["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((1..=5).contains(&generated), "{answer}");
    assert!(answer["choices"][0]["message"]["content"].is_string());
    // The chain is unaffected.
    node.wait_until(|| async { node.block_number().await >= 2 })
        .await;

    // One metrics endpoint for the chain and the models.
    let metrics = get_text(&node.banner_value("Metrics")).await;
    assert!(metric(&metrics, "aicoin_chain_height") >= 2.0);
    assert!(
        metric(
            &metrics,
            "aicoin_inference_completion_tokens_total{model=\"tiny\"}"
        ) >= 1.0
    );
    assert_eq!(
        metric(&metrics, "aicoin_inference_queue_depth{model=\"tiny\"}"),
        0.0
    );
}

#[tokio::test]
async fn a_node_without_models_serves_no_api_and_a_missing_model_is_refused() {
    let tmp = tempdir();
    let node = NodeProcess::dev(&data_dir(&tmp), &["--api-port", "0"]).await;
    assert!(
        node.stdout.iter().all(|l| !l.contains("AI API")),
        "{:?}",
        node.stdout
    );
    node.stop();

    let out = aicoin(
        tmp.path(),
        &["node", "--dev", "--rpc-port", "0", "--model", "nope"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no model \"nope\"") && stderr.contains("aicoin model fetch"),
        "{stderr}"
    );
}

/// A running `aicoin serve` and its API base URL.
struct Served {
    child: Child,
    api: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(home: &Path, args: &[&str]) -> Served {
    let child = aicoin(home, &[&["serve"], args].concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Owned from here on, so a failed wait still kills the process.
    let mut served = Served {
        child,
        api: String::new(),
    };
    let (tx, rx) = mpsc::channel();
    let stdout = served.child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    while served.api.is_empty() {
        let line = rx
            .recv_timeout(DEADLINE.saturating_sub(started.elapsed()))
            .expect("aicoin serve printed no API URL");
        if let Some(rest) = line.trim_start().strip_prefix("AI API:") {
            served.api = rest.split_whitespace().next().unwrap().to_string();
        }
    }
    served
}

fn failure(home: &Path, args: &[&str]) -> String {
    let out = aicoin(home, args).output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn serve_runs_the_api_alone_and_refuses_what_cannot_work() {
    let tmp = tempdir();
    let models = models_dir(&tmp.path().join("models"));
    let gguf = models.join("tiny/model.gguf");
    let served = serve(
        tmp.path(),
        &["--model", gguf.to_str().unwrap(), "--api-port", "0"],
    );
    // A file given by path is served under its name (`model.gguf`: its directory's).
    let (status, body) = post(
        &format!("{}/completions", served.api),
        json!({"model": "tiny", "prompt": "the cat", "max_tokens": 3, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 3);

    // The port is taken: a clear error, before any model is loaded.
    let port = served
        .api
        .trim_end_matches("/v1")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let stderr = failure(
        tmp.path(),
        &[
            "serve",
            "--model",
            gguf.to_str().unwrap(),
            "--api-port",
            &port,
        ],
    );
    assert!(
        stderr.contains("cannot serve the inference API on"),
        "{stderr}"
    );

    let empty = tmp.path().join("empty");
    let stderr = failure(
        tmp.path(),
        &["serve", "--data-dir", empty.to_str().unwrap()],
    );
    assert!(
        stderr.contains("no models in") && stderr.contains("aicoin model fetch"),
        "{stderr}"
    );
    let stderr = failure(tmp.path(), &["serve", "--model", "/etc/hostname"]);
    assert!(
        stderr.contains("neither a GGUF file nor a model directory"),
        "{stderr}"
    );
    let stderr = failure(
        tmp.path(),
        &[
            "serve",
            "--model",
            gguf.to_str().unwrap(),
            "--device",
            "tpu",
        ],
    );
    assert!(stderr.contains("unknown device \"tpu\""), "{stderr}");
    let bad = tmp.path().join("bad.gguf");
    std::fs::write(&bad, b"not a model").unwrap();
    let stderr = failure(
        tmp.path(),
        &["serve", "--model", bad.to_str().unwrap(), "--api-port", "0"],
    );
    assert!(stderr.contains("not a GGUF file"), "{stderr}");
}

fn run_with_stdin(home: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = aicoin(home, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn complete_and_chat_stream_to_the_terminal_and_report_speed() {
    let tmp = tempdir();
    let models = models_dir(&tmp.path().join("models"))
        .to_str()
        .unwrap()
        .to_string();
    let common = [
        "--models-dir",
        models.as_str(),
        "--temperature",
        "0",
        "--max-tokens",
        "4",
    ];

    let out = run_with_stdin(
        tmp.path(),
        &[&["complete", "the cat"], &common[..]].concat(),
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("the cat") && stdout.len() > "the cat".len(),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[4 tokens") && stderr.contains("tokens/s"),
        "{stderr}"
    );
    // Greedy output is the same every time.
    let again = run_with_stdin(
        tmp.path(),
        &[&["complete", "the cat"], &common[..]].concat(),
        "",
    );
    assert_eq!(again.stdout, out.stdout);
    // The prompt can come from stdin.
    let piped = run_with_stdin(
        tmp.path(),
        &[&["complete"], &common[..]].concat(),
        "the cat",
    );
    assert_eq!(piped.stdout, out.stdout);

    // A conversation from stdin: two answers, then /bye.
    let out = run_with_stdin(
        tmp.path(),
        &[&["chat"], &common[..]].concat(),
        "hello\nand again\n/bye\nignored\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("· prompt ").count(), 2, "{stderr}");

    let out = run_with_stdin(
        tmp.path(),
        &[
            "chat",
            "hi",
            "--models-dir",
            tmp.path().join("none").to_str().unwrap(),
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("aicoin model fetch smollm2"));
}
