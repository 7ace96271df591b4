//! Concurrent mixed reads against a real node process: 32 clients on their own connections,
//! every request answered without error (throughput and memory are reported by
//! `aicoin bench rpc`, not asserted here: test machines are too noisy for timing).

use crate::common::*;

#[tokio::test]
async fn thirty_two_clients_of_mixed_reads_get_no_errors() {
    let tmp = tempdir();
    let node = NodeProcess::dev(&data_dir(&tmp), &[]).await;
    let home = tmp.path();
    let output = aicoin(
        home,
        &[
            "bench",
            "rpc",
            "--rpc-url",
            &node.url,
            "--requests",
            "8000",
            "--clients",
            "32",
            "--rounds",
            "1",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "load run failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("round 1:") && stdout.contains("errors 0"),
        "{stdout}"
    );
}
