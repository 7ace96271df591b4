//! AIC amounts as people write them ("10.5") and as the chain counts them (wei, 10^-18 AIC):
//! parsed exactly, never rounded; more than 18 decimals, a sign or anything but digits is an
//! error.

use alloy_primitives::{
    U256,
    utils::{ParseUnits, Unit, format_ether},
};

use crate::WalletError;

/// AIC's decimals.
pub const DECIMALS: usize = 18;

fn bad(input: &str, reason: impl Into<String>) -> WalletError {
    WalletError::BadAmount {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// Parses a decimal AIC amount (`10`, `10.5`, `0.000000000000000001`, `.5`) into wei.
pub fn parse_aic(input: &str) -> Result<U256, WalletError> {
    let text = input.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if text.starts_with('-') {
        return Err(bad(input, "amounts cannot be negative"));
    }
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad(input, "expected a decimal number such as 10.5"));
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(bad(
            input,
            "expected a decimal number such as 10.5 (digits and one point)",
        ));
    }
    if fraction.len() > DECIMALS {
        return Err(bad(
            input,
            format!("AIC has {DECIMALS} decimals; this has {}", fraction.len()),
        ));
    }
    let normalized = format!("{}.{fraction}", if whole.is_empty() { "0" } else { whole });
    match ParseUnits::parse_units(&normalized, Unit::ETHER) {
        Ok(ParseUnits::U256(wei)) => Ok(wei),
        Ok(ParseUnits::I256(_)) => Err(bad(input, "amounts cannot be negative")),
        Err(_) => Err(bad(input, "too large")),
    }
}

/// Formats wei as AIC with every significant decimal and no trailing zeros (`10.5`, `1`).
pub fn format_aic(wei: U256) -> String {
    let text = format_ether(wei);
    match text.split_once('.') {
        Some((whole, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                whole.to_string()
            } else {
                format!("{whole}.{fraction}")
            }
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn aic(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18))
    }

    #[test]
    fn exact_amounts() {
        assert_eq!(parse_aic("10").unwrap(), aic(10));
        assert_eq!(parse_aic("10.5").unwrap(), aic(105) / U256::from(10));
        assert_eq!(parse_aic(".5").unwrap(), aic(5) / U256::from(10));
        assert_eq!(parse_aic("0.000000000000000001").unwrap(), U256::from(1));
        assert_eq!(parse_aic("21000000").unwrap(), aic(21_000_000));
        assert_eq!(format_aic(aic(105) / U256::from(10)), "10.5");
        assert_eq!(format_aic(U256::from(1)), "0.000000000000000001");
        assert_eq!(format_aic(U256::ZERO), "0");
    }

    #[test]
    fn bad_amounts_are_refused() {
        for input in [
            "0.0000000000000000001",
            "-1",
            "abc",
            "1.2.3",
            "",
            ".",
            "1e18",
            "0x10",
            " - 5",
            "1,5",
            "115792089237316195423570985008687907853269984665640564039458",
        ] {
            assert!(parse_aic(input).is_err(), "{input:?} accepted");
        }
        let err = parse_aic("1.0000000000000000001").unwrap_err().to_string();
        assert!(err.contains("18 decimals"), "{err}");
    }

    proptest! {
        #[test]
        fn formatting_round_trips(wei in any::<u128>()) {
            let wei = U256::from(wei);
            prop_assert_eq!(parse_aic(&format_aic(wei)).unwrap(), wei);
        }
    }
}
