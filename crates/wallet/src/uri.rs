//! EIP-681 payment requests: `ethereum:<address>@<chain id>?value=<wei>`, which wallets turn
//! into a prefilled transfer (and QR code generators into a code to scan).

use alloy_primitives::{Address, U256};

/// The URI asking for `value` wei to `to` on chain `chain_id`.
pub fn payment_uri(to: Address, chain_id: u64, value: U256) -> String {
    format!("ethereum:{}@{chain_id}?value={value}", to.to_checksum(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip681_transfer_request() {
        let to: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
            .parse()
            .unwrap();
        assert_eq!(
            payment_uri(to, 2108, U256::from(10_500_000_000_000_000_000u128)),
            "ethereum:0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266@2108?value=10500000000000000000"
        );
    }
}
