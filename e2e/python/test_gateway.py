"""The official `openai` Python SDK against the paid gateway (`aicoin node --gateway`) of a
devnet whose provider serves SmolLM2 and MiniLM: tiers bought with web3.py, keys signed as
EIP-712 typed data (POST /v1/keys turns the signature into a key), and the answers an
application relies on: 402 without a tier, usage and the provider on every answer, 429 with
Retry-After once the rate is spent, 402 once the tier expired, 401 for a revoked key, a key of
another chain and one signed by someone else.

AICOIN_GATEWAY_URL is the gateway's base (`http://host:port/v1`), AICOIN_GATEWAY_RPC_URL its
chain's JSON-RPC. The chain's params: Basic 3 requests a minute, tiers last 60 blocks.
"""

import base64
import json
import os
import time
import urllib.request

import openai
import pytest
from eth_abi import encode
from eth_account import Account
from web3 import Web3

CHAT = "smollm2-135m-instruct"
EMBED = "all-minilm-l6-v2"
ACCESS = Web3.to_checksum_address("0x0000000000000000000000000000000000a1c003")
MNEMONIC = "test test test test test test test test test test test junk"
ABI = [
    {"type": "function", "name": "buy", "stateMutability": "payable",
     "inputs": [{"name": "tier", "type": "uint8"}], "outputs": [{"name": "", "type": "uint64"}]},
    {"type": "function", "name": "revokeKeys", "stateMutability": "nonpayable",
     "inputs": [], "outputs": [{"name": "", "type": "uint64"}]},
    {"type": "function", "name": "subscription", "stateMutability": "view",
     "inputs": [{"name": "account", "type": "address"}],
     "outputs": [{"name": "", "type": "tuple", "components": [
         {"name": "tier", "type": "uint8"}, {"name": "expiresAt", "type": "uint64"},
         {"name": "active", "type": "bool"}, {"name": "keyGeneration", "type": "uint64"},
         {"name": "requestsPerMinute", "type": "uint256"},
         {"name": "tokensPerDay", "type": "uint256"}]}]},
]
TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ],
    "ApiKey": [
        {"name": "account", "type": "address"},
        {"name": "expires", "type": "uint64"},
        {"name": "generation", "type": "uint64"},
        {"name": "chainId", "type": "uint64"},
    ],
}

Account.enable_unaudited_hdwallet_features()


def dev(i):
    return Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")


# This suite's own dev accounts (the npm suite uses others).
USER, LIMITED, EXPIRING = dev(3), dev(4), dev(5)
GATEWAY = os.environ.get("AICOIN_GATEWAY_URL", "")


@pytest.fixture(scope="module")
def w3():
    return Web3(Web3.HTTPProvider(os.environ["AICOIN_GATEWAY_RPC_URL"]))


@pytest.fixture(scope="module")
def access(w3):
    return w3.eth.contract(address=ACCESS, abi=ABI)


def transact(w3, account, call, value=0):
    tx = call.build_transaction({
        "from": account.address, "value": value, "gas": 300_000, "gasPrice": 0,
        "nonce": w3.eth.get_transaction_count(account.address), "chainId": w3.eth.chain_id,
    })
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    assert receipt.status == 1


def typed(account_address, expires, generation, chain_id):
    return {
        "types": TYPES,
        "primaryType": "ApiKey",
        "domain": {"name": "AICoin API", "version": "1", "chainId": chain_id},
        "message": {"account": account_address, "expires": expires,
                    "generation": generation, "chainId": chain_id},
    }


def local_key(signer, chain_id, account=None, generation=0):
    """A key encoded here as the gateway encodes them: `aic_` + base64url(abi(account,
    expires, generation, chainId) ++ signature)."""
    account = account or signer.address
    expires = int(time.time()) + 3600
    signature = Account.sign_typed_data(
        signer.key, full_message=typed(account, expires, generation, chain_id)).signature
    words = encode(["address", "uint64", "uint64", "uint64"], [account, expires, generation, chain_id])
    return "aic_" + base64.urlsafe_b64encode(words + bytes(signature)).decode().rstrip("=")


def key_from_gateway(signer, chain_id, generation):
    """A key from POST /v1/keys, made of the signature of the typed data."""
    expires = int(time.time()) + 3600
    signature = Account.sign_typed_data(
        signer.key, full_message=typed(signer.address, expires, generation, chain_id)).signature
    body = json.dumps({"account": signer.address, "expires": expires, "generation": generation,
                       "chainId": chain_id, "signature": "0x" + bytes(signature).hex()}).encode()
    request = urllib.request.Request(f"{GATEWAY}/keys", data=body,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 201
        return json.load(response)["key"]


def client(key):
    return openai.OpenAI(base_url=GATEWAY, api_key=key, max_retries=0)


def ask(c, **extra):
    args = {"model": CHAT, "messages": [{"role": "user", "content": "Say hi."}],
            "max_tokens": 4, "temperature": 0, **extra}
    return c.chat.completions.create(**args)


@pytest.fixture(scope="module", autouse=True)
def expiring_tier(w3, access):
    """Bought first, so it has expired by the last test."""
    transact(w3, EXPIRING, access.functions.buy(1), Web3.to_wei(1, "ether"))


def test_a_wallet_with_no_tier_gets_402(w3):
    with pytest.raises(openai.APIStatusError) as e:
        ask(client(local_key(Account.create(), w3.eth.chain_id)))
    assert e.value.status_code == 402
    assert e.value.code == "insufficient_quota"


def test_a_standard_tier_serves_every_endpoint_with_usage(w3, access):
    transact(w3, USER, access.functions.buy(2), Web3.to_wei(5, "ether"))
    generation = access.functions.subscription(USER.address).call()[3]
    c = client(key_from_gateway(USER, w3.eth.chain_id, generation))
    assert {CHAT, EMBED} <= {m.id for m in c.models.list()}

    raw = c.chat.completions.with_raw_response.create(
        model=CHAT, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4, temperature=0)
    assert raw.headers["x-aicoin-provider"].startswith("0x")
    answer = raw.parse()
    assert answer.choices[0].message.content
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens

    usage, text = None, ""
    for chunk in ask(c, stream=True):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text and usage and usage.completion_tokens > 0

    completion = c.completions.create(model=CHAT, prompt="The sky is", max_tokens=3, temperature=0)
    assert completion.usage.completion_tokens > 0

    embedding = c.embeddings.create(model=EMBED, input=["hello world"])
    assert len(embedding.data[0].embedding) == 384
    assert embedding.usage.prompt_tokens > 0


def test_a_quota_run_to_its_end_gets_429_with_retry_after(w3, access):
    transact(w3, LIMITED, access.functions.buy(1), Web3.to_wei(1, "ether"))
    c = client(local_key(LIMITED, w3.eth.chain_id))
    for _ in range(3):
        ask(c, max_tokens=1)
    with pytest.raises(openai.RateLimitError) as e:
        ask(c, max_tokens=1)
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert e.value.response.headers["x-ratelimit-limit-requests"] == "3"


def test_revoked_foreign_and_forged_keys_get_401(w3, access):
    chain_id = w3.eth.chain_id
    old = local_key(USER, chain_id)
    transact(w3, USER, access.functions.revokeKeys())
    for bad in [old, local_key(USER, 1, generation=1),
                local_key(LIMITED, chain_id, account=USER.address, generation=1)]:
        with pytest.raises(openai.AuthenticationError):
            ask(client(bad))
    ask(client(local_key(USER, chain_id, generation=1)))


def test_an_expired_subscription_gets_402(w3, access):
    c = client(local_key(EXPIRING, w3.eth.chain_id))
    while access.functions.subscription(EXPIRING.address).call()[2]:
        time.sleep(0.5)
    with pytest.raises(openai.APIStatusError) as e:
        ask(c)
    assert e.value.status_code == 402
