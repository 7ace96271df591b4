//! BIP-39 mnemonics (the English word list) and the BIP-44 Ethereum accounts they derive,
//! `m/44'/60'/0'/0/i`, through alloy-signer-local's `MnemonicBuilder` (coins-bip39/bip32).
//!
//! Parsing says *what* is wrong (word count, an unknown word and where, or the checksum) without
//! ever echoing the phrase.

use alloy_signer_local::{
    MnemonicBuilder, PrivateKeySigner,
    coins_bip39::{English, Mnemonic, Wordlist},
};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::WalletError;

/// A checked mnemonic phrase: lowercase words separated by single spaces. Zeroed on drop.
pub struct Phrase(Zeroizing<String>);

impl std::fmt::Debug for Phrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Phrase(..)")
    }
}

impl Phrase {
    /// A new random phrase of `words` words (12 or 24, or 15, 18, 21), from the OS's RNG.
    pub fn generate(words: usize) -> Result<Self, WalletError> {
        let mnemonic = Mnemonic::<English>::new_with_count(&mut rand08::thread_rng(), words)
            .map_err(|_| WalletError::MnemonicWordCount(words))?;
        Ok(Self(Zeroizing::new(mnemonic.to_phrase())))
    }

    /// Checks a phrase typed or pasted by a person: any case, any whitespace between words.
    pub fn parse(input: &str) -> Result<Self, WalletError> {
        let normalized = Zeroizing::new(
            input
                .split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join(" "),
        );
        let words: Vec<&str> = normalized.split(' ').filter(|w| !w.is_empty()).collect();
        if ![12, 15, 18, 21, 24].contains(&words.len()) {
            return Err(WalletError::MnemonicWordCount(words.len()));
        }
        if let Some(position) = words.iter().position(|w| English::get_index(w).is_err()) {
            return Err(WalletError::MnemonicUnknownWord {
                position: position + 1,
            });
        }
        // Every word is valid, so the only remaining failure is the checksum.
        Mnemonic::<English>::new_from_phrase(&normalized)
            .map_err(|_| WalletError::MnemonicChecksum)?;
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn word_count(&self) -> usize {
        self.0.split(' ').count()
    }

    /// The key of account `index` (`m/44'/60'/0'/0/index`), with the optional BIP-39
    /// passphrase (the "25th word").
    pub fn account(
        &self,
        passphrase: Option<&str>,
        index: u32,
    ) -> Result<PrivateKeySigner, WalletError> {
        let mut builder = MnemonicBuilder::<English>::default().phrase(self.as_str());
        if let Some(passphrase) = passphrase.filter(|p| !p.is_empty()) {
            // BIP-39 salts with the NFKD form, so "é" typed composed or decomposed (as macOS
            // and some keyboards do) is the same passphrase; the library does not normalize.
            let normalized = Zeroizing::new(passphrase.nfkd().collect::<String>());
            builder = builder.password(normalized.as_str());
        }
        builder
            .index(index)
            .and_then(|b| b.build())
            .map_err(|e| WalletError::Signing(format!("cannot derive account {index}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{address, hex};

    const JUNK: &str = "test test test test test test test test test test test junk";

    /// Hardhat's and anvil's ten accounts of the `test … junk` mnemonic.
    #[test]
    fn standard_test_mnemonic_gives_the_well_known_accounts() {
        let phrase = Phrase::parse(JUNK).unwrap();
        let expected = [
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
        ];
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(
                phrase.account(None, i as u32).unwrap().address(),
                *want,
                "index {i}"
            );
        }
        let key = phrase.account(None, 0).unwrap().to_bytes();
        assert_eq!(
            hex::encode(key),
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        );
    }

    /// Trezor's BIP-39 reference vectors (python-mnemonic `vectors.json`, English): entropy →
    /// phrase, and phrase + passphrase "TREZOR" → seed.
    #[test]
    fn trezor_vectors() {
        let vectors = [
            (
                "00000000000000000000000000000000",
                "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
                "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
            ),
            (
                "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
                "legal winner thank year wave sausage worth useful legal winner thank yellow",
                "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607",
            ),
            (
                "80808080808080808080808080808080",
                "letter advice cage absurd amount doctor acoustic avoid letter advice cage above",
                "d71de856f81a8acc65e6fc851a38d4d7ec216fd0796d0a6827a3ad6ed5511a30fa280f12eb2e47ed2ac03b5c462a0358d18d69fe4f985ec81778c1b370b652a8",
            ),
            (
                "ffffffffffffffffffffffffffffffff",
                "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
                "ac27495480225222079d7be181583751e86f571027b0497b5b5d11218e0a8a13332572917f0f8e5a589620c6f15b11c61dee327651a14c34e18231052e48c069",
            ),
            (
                "0000000000000000000000000000000000000000000000000000000000000000",
                "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art",
                "bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8",
            ),
            (
                "9e885d952ad362caeb4efe34a8e91bd2",
                "ozone drill grab fiber curtain grace pudding thank cruise elder eight picnic",
                "274ddc525802f7c828d8ef7ddbcdc5304e87ac3535913611fbbfa986d0c9e5476c91689f9c8a54fd55bd38606aa6a8595ad213d4c9c9f9aca3fb217069a41028",
            ),
            (
                "f585c11aec520db57dd353c69554b21a89b20fb0650966fa0a9d6f74fd989d8f",
                "void come effort suffer camp survey warrior heavy shoot primary clutch crush open amazing screen patrol group space point ten exist slush involve unfold",
                "01f5bced59dec48e362f2c45b5de68b9fd6c92c6634f44d6d40aab69056506f0e35524a518034ddc1192e1dacd32c1ed3eaa3c3b131c88ed8e7e54c49a5d0998",
            ),
        ];
        for (entropy, phrase, seed) in vectors {
            let from_entropy = Mnemonic::<English>::new_from_entropy(
                hex::decode(entropy).unwrap().as_slice().try_into().unwrap(),
            );
            assert_eq!(from_entropy.to_phrase(), phrase);
            let parsed = Phrase::parse(phrase).unwrap();
            let mnemonic = Mnemonic::<English>::new_from_phrase(parsed.as_str()).unwrap();
            assert_eq!(hex::encode(mnemonic.to_seed(Some("TREZOR")).unwrap()), seed);
        }
    }

    #[test]
    fn bad_phrases_say_what_is_wrong_without_echoing_it() {
        let cases = [
            ("test test test", "12, 15, 18, 21 or 24 words"),
            (
                "test test test test test test test test test test test test",
                "checksum",
            ),
            (
                "test test test test test test test test test test test jank",
                "word 12 ",
            ),
            // French words: valid BIP-39 elsewhere, not in the English list.
            (
                "abaisser abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
                "word 1 ",
            ),
        ];
        for (phrase, fragment) in cases {
            let message = Phrase::parse(phrase).unwrap_err().to_string();
            assert!(message.contains(fragment), "{phrase}: {message}");
            assert!(
                !message.contains("test test"),
                "the error echoes the phrase: {message}"
            );
        }
        // Case and spacing do not matter.
        let messy = "  Test TEST test test test test test test test test test   junk\n";
        assert_eq!(Phrase::parse(messy).unwrap().as_str(), JUNK);
    }

    #[test]
    fn generated_phrases_are_valid_and_distinct() {
        for words in [12, 24] {
            let a = Phrase::generate(words).unwrap();
            let b = Phrase::generate(words).unwrap();
            assert_eq!(a.word_count(), words);
            assert_ne!(a.as_str(), b.as_str());
            Phrase::parse(a.as_str()).unwrap();
        }
        assert!(Phrase::generate(13).is_err());
    }

    #[test]
    fn passphrase_changes_the_accounts() {
        let phrase = Phrase::parse(JUNK).unwrap();
        let plain = phrase.account(None, 0).unwrap().address();
        let salted = phrase.account(Some("TREZOR"), 0).unwrap().address();
        assert_ne!(plain, salted);
        assert_eq!(phrase.account(Some(""), 0).unwrap().address(), plain);
    }

    /// BIP-39 passphrases are NFKD-normalized: composed and decomposed accents, and
    /// compatibility characters such as the "ﬁ" ligature, are the same passphrase.
    #[test]
    fn passphrases_are_normalized_nfkd() {
        let phrase = Phrase::parse(JUNK).unwrap();
        let address = |p: &str| phrase.account(Some(p), 0).unwrap().address();
        assert_eq!(address("caf\u{e9}"), address("cafe\u{301}"));
        assert_eq!(address("\u{fb01}x"), address("fix"));
        assert_ne!(address("cafe"), address("caf\u{e9}"));
    }
}
