//! Starting nodes and talking to them. [`DevNode`] runs one in-process (`aicoin_node::spawn`),
//! for the RPC feature tests; [`NodeProcess`] runs the real `aicoin` binary, for what needs a
//! process (the CLI, config files, kill and restart, clusters). Both are an [`Rpc`] client.
//! Readiness is a successful `eth_chainId` (after the banner's RPC URL, for a process); waits
//! poll with a deadline, never a fixed sleep.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use jsonrpsee::{
    core::{
        client::{ClientT, Error as ClientError},
        params::ArrayParams,
    },
    http_client::{HttpClient, HttpClientBuilder},
    types::ErrorObjectOwned,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_aicoin");
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Key of dev account `i` (`test … junk`, m/44'/60'/0'/0/i), one of the ten prefunded.
pub fn dev_key(i: usize) -> PrivateKeySigner {
    aicoin_primitives::dev::dev_signers().unwrap()[i].clone()
}

/// A JSON-RPC quantity (`"0x1f"`) as a number.
pub fn quantity(value: &Value) -> u64 {
    serde_json::from_value::<U256>(value.clone())
        .unwrap_or_else(|e| panic!("{value} is not a quantity: {e}"))
        .to()
}

/// A JSON-RPC client of a running node, with the calls tests make.
pub struct Rpc {
    pub url: String,
    pub client: HttpClient,
}

/// A running `aicoin node` process.
pub struct NodeProcess {
    child: Child,
    rpc: Rpc,
    pub stdout: Vec<String>,
    /// Every line it has written to stderr so far (each also echoed to the test's stderr).
    stderr: Arc<Mutex<Vec<String>>>,
    /// The thread collecting `stderr`; it ends at the process's end of output.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for NodeProcess {
    type Target = Rpc;

    fn deref(&self) -> &Rpc {
        &self.rpc
    }
}

/// A `--dev` node running in this test's process.
pub struct DevNode {
    rpc: Rpc,
    pub handle: aicoin_node::NodeHandle,
}

impl std::ops::Deref for DevNode {
    type Target = Rpc;

    fn deref(&self) -> &Rpc {
        &self.rpc
    }
}

impl DevNode {
    /// A dev node on a free port producing a block every 200 ms, with `edit`'s changes to that
    /// configuration.
    pub async fn spawn(data_dir: &Path, edit: impl FnOnce(&mut aicoin_node::NodeConfig)) -> Self {
        let mut config = aicoin_node::NodeConfig::dev(data_dir.to_path_buf());
        config.block_interval = Duration::from_millis(200);
        edit(&mut config);
        let handle = aicoin_node::spawn(config).await.expect("dev node starts");
        let rpc = Rpc::ready(handle.rpc_url()).await;
        Self { rpc, handle }
    }
}

/// `aicoin` with `args`, HOME pointed at `home` so nothing escapes the test's directory.
pub fn aicoin(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("HOME", home).env(
        "AICOIN_LOG",
        "info,aicoin_node::producer=warn,openraft=warn",
    );
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("AICOIN_") && k != "AICOIN_LOG")
    {
        cmd.env_remove(key);
    }
    cmd
}

impl NodeProcess {
    /// A `--dev` node on a free port producing a block every 200 ms (unless `extra` sets
    /// another `--block-interval`).
    pub async fn dev(data_dir: &Path, extra: &[&str]) -> Self {
        let dir = data_dir.to_str().unwrap();
        let mut args = vec!["node", "--dev", "--data-dir", dir, "--rpc-port", "0"];
        if !extra.contains(&"--block-interval") {
            args.extend(["--block-interval", "0.2"]);
        }
        args.extend_from_slice(extra);
        Self::start(aicoin(data_dir.parent().unwrap(), &args)).await
    }

    /// Starts `cmd` and waits until its RPC answers.
    pub async fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start aicoin");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let collected = stderr_lines.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[node] {line}");
                collected.lock().unwrap().push(line);
            }
        });
        let started = Instant::now();
        let mut lines = Vec::new();
        // The banner ends with the "Blocks:" line; the RPC URL is on the "RPC URL:" line.
        let mut url = None;
        while !lines
            .last()
            .is_some_and(|l: &String| l.trim_start().starts_with("Blocks:"))
        {
            let line = rx
                .recv_timeout(DEADLINE.saturating_sub(started.elapsed()))
                .unwrap_or_else(|_| {
                    let status = child.try_wait().ok().flatten();
                    panic!("node printed no banner (exit status {status:?}); stdout: {lines:?}")
                });
            if line.trim_start().starts_with("RPC URL:") {
                url = line
                    .split_whitespace()
                    .find(|w| w.starts_with("http://"))
                    .map(str::to_string);
            }
            lines.push(line);
        }
        let url = url.unwrap_or_else(|| panic!("no RPC URL in {lines:?}"));
        // Keep collecting the rest of the banner without blocking on it.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Self {
            child,
            rpc: Rpc::ready(url).await,
            stdout: lines,
            stderr: stderr_lines,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "node exited with {status}");
    }

    /// Waits for the node to exit on its own; its exit status and everything it wrote to stderr.
    pub async fn exited(mut self) -> (std::process::ExitStatus, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Every line read: the reader ends at the exited process's end of output.
                if let Some(reader) = self.stderr_reader.take() {
                    reader.join().unwrap();
                }
                let text = self.stderr.lock().unwrap().join("\n");
                return (status, text);
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the node did not exit within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the node writes `needle` to stderr; returns all it wrote so far.
    pub async fn wait_for_stderr(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.stderr.lock().unwrap().join("\n");
            if text.contains(needle) {
                return text;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the node wrote no {needle:?} to stderr within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The value after `label:` on the start-up banner.
    pub fn banner_value(&self, label: &str) -> String {
        let line = self
            .stdout
            .iter()
            .find(|l| l.trim_start().starts_with(label));
        line.unwrap_or_else(|| panic!("no {label} in {:?}", self.stdout))
            .split_once(':')
            .unwrap()
            .1
            .trim()
            .to_string()
    }
}

impl Rpc {
    /// A client of `url`, once the node answers there.
    pub async fn ready(url: String) -> Self {
        let client = HttpClientBuilder::default().build(&url).unwrap();
        let rpc = Self { url, client };
        rpc.wait_until(|| async {
            rpc.client
                .request::<String, _>("eth_chainId", ArrayParams::new())
                .await
                .is_ok()
        })
        .await;
        rpc
    }

    pub async fn rpc<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<T, ErrorObjectOwned> {
        let mut p = ArrayParams::new();
        for v in params {
            p.insert(v).unwrap();
        }
        match self.client.request(method, p).await {
            Ok(v) => Ok(v),
            Err(ClientError::Call(e)) => Err(e),
            Err(other) => panic!("{method}: transport error {other}"),
        }
    }

    pub async fn ok<T: DeserializeOwned>(&self, method: &str, params: Vec<Value>) -> T {
        self.rpc(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e:?}"))
    }

    pub async fn block_number(&self) -> u64 {
        let n: U256 = self.ok("eth_blockNumber", vec![]).await;
        n.to()
    }

    pub async fn balance(&self, address: Address, block: &str) -> U256 {
        self.ok(
            "eth_getBalance",
            vec![address.to_string().into(), block.into()],
        )
        .await
    }

    pub async fn nonce(&self, address: Address) -> u64 {
        let n: U256 = self
            .ok(
                "eth_getTransactionCount",
                vec![address.to_string().into(), "pending".into()],
            )
            .await;
        n.to()
    }

    pub async fn send_raw(&self, raw: &Bytes) -> Result<B256, ErrorObjectOwned> {
        self.rpc("eth_sendRawTransaction", vec![raw.to_string().into()])
            .await
    }

    /// Polls until `check` holds, failing the test at the deadline.
    pub async fn wait_until<F, Fut>(&self, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while !check().await {
            assert!(
                started.elapsed() < DEADLINE,
                "condition not met within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends `tx` (a JSON transaction request) with `eth_sendTransaction` and waits for its
    /// receipt.
    pub async fn send_and_mine(&self, tx: Value) -> Value {
        let hash: B256 = self.ok("eth_sendTransaction", vec![tx]).await;
        self.receipt(hash).await
    }

    /// Deploys the compiled contract `name` from `contracts/out` with dev account 0; returns its
    /// address.
    pub async fn deploy(&self, name: &str) -> Address {
        let receipt = self
            .send_and_mine(serde_json::json!({
                "from": dev_key(0).address(),
                "data": artifact_bytecode(name),
            }))
            .await;
        assert_eq!(receipt["status"], "0x1", "deploying {name}: {receipt}");
        receipt["contractAddress"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub async fn receipt(&self, hash: B256) -> Value {
        let started = Instant::now();
        loop {
            let r: Value = self
                .ok("eth_getTransactionReceipt", vec![hash.to_string().into()])
                .await;
            if !r.is_null() {
                return r;
            }
            assert!(started.elapsed() < DEADLINE, "no receipt for {hash}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed EIP-155 legacy transaction, raw.
pub fn legacy(
    signer: &PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
    gas: u64,
) -> Bytes {
    let tx = TxLegacy {
        chain_id: Some(chain_id),
        nonce,
        gas_price: 0,
        gas_limit: gas,
        to: TxKind::Call(to),
        value,
        input: Bytes::new(),
    };
    aicoin_primitives::sign_transaction(signer, tx)
        .unwrap()
        .encoded_2718()
        .into()
}

pub fn transfer(signer: &PrivateKeySigner, nonce: u64, to: Address, value: U256) -> Bytes {
    legacy(signer, 2108, nonce, to, value, 21_000)
}

/// The creation bytecode of `contracts/out/<name>.json`, as hex.
pub fn artifact_bytecode(name: &str) -> String {
    aicoin_primitives::testing::contract_bytecode(name).to_string()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn data_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("data")
}
