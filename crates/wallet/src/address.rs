//! Addresses typed by people: 0x and 40 hex digits, with the EIP-55 checksum enforced whenever
//! the letters are mixed-case (all-lowercase or all-uppercase carry no checksum, as in geth and
//! ethers).

use alloy_primitives::Address;

use crate::WalletError;

pub fn parse_address(input: &str) -> Result<Address, WalletError> {
    let bad = |reason| WalletError::BadAddress {
        input: input.to_string(),
        reason,
    };
    let text = input.trim();
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or(bad("it must start with 0x"))?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("expected 0x and 40 hexadecimal digits"));
    }
    let mixed_case =
        hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
    if mixed_case {
        Address::parse_checksummed(format!("0x{hex}"), None)
            .map_err(|_| bad("the EIP-55 checksum (the mix of upper and lower case) is wrong: a character is mistyped"))
    } else {
        format!("0x{hex}")
            .parse()
            .map_err(|_| bad("expected 0x and 40 hexadecimal digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_enforced_when_present() {
        let good = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
        let address = parse_address(good).unwrap();
        assert_eq!(address.to_checksum(None), good);
        assert_eq!(parse_address(&good.to_lowercase()).unwrap(), address);
        assert_eq!(
            parse_address(&format!("0x{}", &good[2..].to_uppercase())).unwrap(),
            address
        );
        // One letter's case flipped: a typo the checksum catches.
        let typo = "0xf39fd6e51aad88F6F4ce6aB8827279cffFb92266";
        let err = parse_address(typo).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        for bad in [
            "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "0x1234",
            "0xzz9Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }
}
