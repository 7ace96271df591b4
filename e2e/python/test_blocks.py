"""web3.py reads AICoin blocks with no middleware at all: headers are plain Ethereum headers
(`extraData` is the sealer's 20-byte address plus a short version tag, within the 32 bytes
web3.py allows), and the 65-byte seal travels beside the header, in block JSON as
`sealSignature`.

AICOIN_RPC_URL names the node; the dev account (index 0 of the `test ... junk` mnemonic) pays.
"""

import os

import pytest
import rlp
from eth_account import Account
from eth_keys import keys
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3

RPC_URL = os.environ["AICOIN_RPC_URL"]
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

# Header fields in RLP order: the pre-London fifteen, then those later forks appended (London
# to Prague), each encoded when the block JSON carries it.
HEADER_FIELDS = [
    ("parentHash", "bytes"), ("sha3Uncles", "bytes"), ("miner", "bytes"),
    ("stateRoot", "bytes"), ("transactionsRoot", "bytes"), ("receiptsRoot", "bytes"),
    ("logsBloom", "bytes"), ("difficulty", "int"), ("number", "int"), ("gasLimit", "int"),
    ("gasUsed", "int"), ("timestamp", "int"), ("extraData", "bytes"), ("mixHash", "bytes"),
    ("nonce", "bytes"),
]
LATER_FIELDS = [
    ("baseFeePerGas", "int"), ("withdrawalsRoot", "bytes"), ("blobGasUsed", "int"),
    ("excessBlobGas", "int"), ("parentBeaconBlockRoot", "bytes"), ("requestsHash", "bytes"),
]


@pytest.fixture(scope="module")
def w3():
    # Plain: no PoA middleware, nothing injected.
    return Web3(Web3.HTTPProvider(RPC_URL))


def raw_block(w3, number):
    response = w3.provider.make_request("eth_getBlockByNumber", [hex(number), False])
    assert "error" not in response, response
    return response["result"]


def header_hash(raw):
    """keccak(rlp(header)) from the block JSON, the way any Ethereum client hashes a header."""
    fields = list(HEADER_FIELDS) + [f for f in LATER_FIELDS if f[0] in raw]
    values = [
        int(raw[name], 16) if kind == "int" else bytes(HexBytes(raw[name]))
        for name, kind in fields
    ]
    return keccak(rlp.encode(values))


def send_transfer(w3, value):
    payer = Account.from_key(DEV_KEY)
    recipient = Account.create().address
    signed = payer.sign_transaction({
        "nonce": w3.eth.get_transaction_count(payer.address, "pending"),
        "to": recipient, "value": value, "gas": 21000, "gasPrice": 0, "chainId": 2108,
    })
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.2)
    assert receipt.status == 1
    return tx_hash, recipient, receipt


def test_block_with_full_transactions_reads_without_middleware(w3):
    value = w3.to_wei(0.5, "ether")
    tx_hash, recipient, receipt = send_transfer(w3, value)

    block = w3.eth.get_block(receipt.blockNumber, full_transactions=True)
    assert block.number == receipt.blockNumber
    assert block.hash == receipt.blockHash
    mined = [t for t in block.transactions if t.hash == tx_hash]
    assert len(mined) == 1
    assert mined[0].value == value
    assert mined[0].to == recipient

    # extraData: the sealer's address, then the version tag; 32 bytes at most.
    assert len(block.extraData) <= 32
    sealer = block.extraData[:20]
    assert len(sealer) == 20 and sealer != bytes(20)
    assert block.extraData[20:].startswith(b"aicoin/")

    # The seal beside the header: 65 bytes (r, s, y-parity) over the block hash, made by the
    # address extraData names.
    raw = raw_block(w3, receipt.blockNumber)
    seal = raw["sealSignature"]
    assert seal.startswith("0x") and len(seal) == 2 + 2 * 65
    signer = keys.Signature(bytes(HexBytes(seal))).recover_public_key_from_msg_hash(
        bytes(block.hash)
    )
    assert signer.to_checksum_address() == to_checksum_address(sealer)


def test_block_hash_is_the_plain_header_hash(w3):
    """The seal is not part of the header: the hash is keccak(rlp(header)) of the JSON fields."""
    _, _, receipt = send_transfer(w3, 1)
    raw = raw_block(w3, receipt.blockNumber)
    assert HexBytes(header_hash(raw)) == HexBytes(raw["hash"])


def test_latest_block_reads_without_middleware(w3):
    send_transfer(w3, 1)  # so that latest is a sealed block, not genesis
    block = w3.eth.get_block("latest")
    assert block.number >= 1
    assert len(block.hash) == 32
    assert len(block.extraData) <= 32
    assert block.baseFeePerGas == 0
    assert w3.eth.get_block(block.hash).number == block.number
