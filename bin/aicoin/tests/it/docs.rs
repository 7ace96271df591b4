//! README's JSON-RPC method table is generated from the registered methods; this fails when a
//! method is added or removed without regenerating it.

use crate::common::*;

#[test]
fn readme_method_table_matches_the_server() {
    let tmp = tempdir();
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let output = aicoin(tmp.path(), &["docs", "rpc-methods", "--check", readme])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
