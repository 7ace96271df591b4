//! The ten `--dev` accounts: BIP44 `m/44'/60'/0'/0/{0..9}` of the standard
//! `test test … junk` mnemonic, the same accounts anvil and hardhat fund.

use alloy_signer_local::{LocalSignerError, MnemonicBuilder, PrivateKeySigner};

/// The mnemonic every Ethereum dev tool uses for its prefunded accounts.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// How many dev accounts `--dev` funds.
pub const DEV_ACCOUNT_COUNT: u32 = 10;

/// Derives the dev account signers, index 0 first.
pub fn dev_signers() -> Result<Vec<PrivateKeySigner>, LocalSignerError> {
    let parent = MnemonicBuilder::from_phrase(DEV_MNEMONIC).build_parent_key()?;
    (0..DEV_ACCOUNT_COUNT)
        .map(|i| parent.child(i).map(|k| k.signer()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    #[test]
    fn dev_accounts_match_anvil_and_hardhat() {
        let signers = dev_signers().unwrap();
        let addresses: Vec<_> = signers.iter().map(|s| s.address()).collect();
        assert_eq!(
            addresses,
            [
                address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
                address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
                address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
                address!("0x90F79bf6EB2c4f870365E785982E1f101E93b906"),
                address!("0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"),
                address!("0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"),
                address!("0x976EA74026E726554dB657fA54763abd0C3a0aa9"),
                address!("0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"),
                address!("0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"),
                address!("0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"),
            ]
        );
    }
}
