//! Fixtures shared by tests and benchmarks: the compiled contracts of `contracts/out`, embedded
//! so that a benchmark binary carries them wherever it runs.

use alloy_primitives::Bytes;

/// The creation bytecode of `contracts/out/<name>.json`.
///
/// # Panics
/// On a name with no artifact: a fixture, used by tests and benchmarks only.
pub fn contract_bytecode(name: &str) -> Bytes {
    let artifact = match name {
        "Child" => include_str!("../../../contracts/out/Child.json"),
        "ParamsUser" => include_str!("../../../contracts/out/ParamsUser.json"),
        "Probe" => include_str!("../../../contracts/out/Probe.json"),
        "Token" => include_str!("../../../contracts/out/Token.json"),
        other => panic!("no contract artifact named {other}"),
    };
    let json: serde_json::Value =
        serde_json::from_str(artifact).expect("contracts/out holds valid JSON");
    let hex = json["bytecode"].as_str().expect("an artifact has bytecode");
    alloy_primitives::hex::decode(hex)
        .expect("artifact bytecode is hex")
        .into()
}
