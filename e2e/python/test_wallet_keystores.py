"""Keystores cross between `aicoin wallet` and eth-account both ways: eth-account decrypts what
`aicoin wallet export --keystore` writes, and `aicoin wallet import --keystore` reads what
eth-account writes (scrypt, its default, and pbkdf2)."""

import json
import os
import subprocess

import pytest
from eth_account import Account

AICOIN = os.environ["AICOIN_BIN"]
PASSWORD = "correct horse battery"
JUNK = "test test test test test test test test test test test junk"


def aicoin(*args, wallet_dir):
    env = dict(os.environ, AICOIN_WALLET_PASSWORD=PASSWORD, AICOIN_LOG="warn")
    result = subprocess.run(
        [AICOIN, "wallet", "--wallet-dir", str(wallet_dir), "--json", *args],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_eth_account_decrypts_an_aicoin_keystore(tmp_path):
    aicoin("import", "--mnemonic", JUNK, wallet_dir=tmp_path / "w")
    out = tmp_path / "exported.json"
    aicoin("export", "--keystore", "--out", str(out), wallet_dir=tmp_path / "w")
    keystore = json.loads(out.read_text())
    key = Account.decrypt(keystore, PASSWORD)
    assert Account.from_key(key).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    with pytest.raises(ValueError):
        Account.decrypt(keystore, "not the password")


@pytest.mark.parametrize("kdf", ["scrypt", "pbkdf2"])
def test_aicoin_imports_an_eth_account_keystore(tmp_path, kdf):
    account = Account.create()
    path = tmp_path / "from-eth-account.json"
    path.write_text(json.dumps(Account.encrypt(account.key, "its own password", kdf=kdf)))
    password_file = tmp_path / "keystore-password"
    password_file.write_text("its own password\n")
    imported = aicoin(
        "import", "--keystore", str(path), "--keystore-password-file", str(password_file),
        wallet_dir=tmp_path / "w",
    )
    assert imported["address"] == account.address
    # The wallet now holds it under the wallet's password: it signs as that account.
    signed = aicoin("sign-message", "hi", wallet_dir=tmp_path / "w")
    from eth_account.messages import encode_defunct

    recovered = Account.recover_message(encode_defunct(text="hi"), signature=signed["signature"])
    assert recovered == account.address
