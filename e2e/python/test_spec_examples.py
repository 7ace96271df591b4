"""The spec's "Using Python (web3.py)" example, run against a real `aicoin node --dev`.

AICOIN_RPC_URL names the node. The dev account (index 0 of the `test ... junk` mnemonic) plays
the spec's "your_private_key".
"""

import os

import pytest
from eth_account import Account
from web3 import Web3

RPC_URL = os.environ["AICOIN_RPC_URL"]
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture(scope="module")
def w3():
    return Web3(Web3.HTTPProvider(RPC_URL))


def test_connection(w3):
    # Verify connection
    assert w3.is_connected()
    assert w3.eth.chain_id == 2108
    assert w3.eth.block_number >= 0
    assert w3.eth.gas_price == 0  # zero fees!
    assert w3.net.version == "2108"
    assert w3.client_version.startswith("AICoin/v")


def test_balance_send_and_receipt(w3):
    account = Account.from_key(DEV_KEY)
    recipient = Account.create().address

    # Check balance (returns wei, 18 decimals)
    balance_wei = w3.eth.get_balance(account.address)
    balance_aic = w3.from_wei(balance_wei, "ether")
    assert balance_aic > 1

    # Send transaction (zero gas fees)
    tx = {
        "nonce": w3.eth.get_transaction_count(account.address),
        "to": recipient,
        "value": w3.to_wei(1.0, "ether"),  # 1 AIC
        "gas": 21000,
        "gasPrice": 0,  # Zero gas fee!
        "chainId": 2108,
    }
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)

    # Wait for receipt
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.2)
    assert receipt.status == 1
    assert receipt.gasUsed == 21000
    assert receipt.effectiveGasPrice == 0

    # The sender paid exactly the value: nothing for gas.
    before = w3.eth.get_balance(account.address, receipt.blockNumber - 1)
    after = w3.eth.get_balance(account.address, receipt.blockNumber)
    assert before - after == w3.to_wei(1.0, "ether")
    assert w3.eth.get_balance(recipient) == w3.to_wei(1.0, "ether")

    # The block, with full transactions: no middleware needed (plain Ethereum headers; the seal
    # travels beside the header, see test_blocks.py).
    block = w3.eth.get_block(receipt.blockNumber, full_transactions=True)
    assert block.baseFeePerGas == 0
    mined = [t for t in block.transactions if t.hash == tx_hash]
    assert len(mined) == 1
    assert mined[0]["from"] == account.address
    assert mined[0].to == recipient
    assert mined[0].value == w3.to_wei(1.0, "ether")

    by_hash = w3.eth.get_transaction(tx_hash)
    assert by_hash.blockNumber == receipt.blockNumber


def test_payment_watching(w3):
    """The spec's "Transaction Monitoring" loop: a payment arrives and the watcher sees it."""
    payer = Account.from_key(DEV_KEY)
    merchant = Account.create().address
    initial_balance = w3.eth.get_balance(merchant)
    expected = w3.to_wei(10.0, "ether")
    signed = payer.sign_transaction({
        "nonce": w3.eth.get_transaction_count(payer.address, "pending"),
        "to": merchant, "value": expected, "gas": 21000, "gasPrice": 0, "chainId": 2108,
    })
    w3.eth.send_raw_transaction(signed.raw_transaction)
    target_balance = initial_balance + expected
    for _ in range(300):
        current_balance = w3.eth.get_balance(merchant)
        if current_balance >= target_balance:
            break
        import time
        time.sleep(0.2)
    assert w3.eth.get_balance(merchant) - initial_balance == expected


def test_check_payment_and_gateway(w3):
    """The spec's "Direct Transfer" check and "E-Commerce Integration" gateway, as written
    there, with the dev account as merchant key."""

    def check_payment(receiving_address, expected_amount_aic):
        """Check if a payment has been received."""
        balance_wei = w3.eth.get_balance(receiving_address)
        balance_aic = w3.from_wei(balance_wei, 'ether')
        return balance_aic >= expected_amount_aic

    class AICPaymentGateway:
        """Simple AIC payment gateway for e-commerce."""

        def __init__(self, merchant_private_key):
            self.account = Account.from_key(merchant_private_key)
            self.w3 = w3

        def create_invoice(self, amount_aic, order_id):
            """Create a payment invoice."""
            return {
                "order_id": order_id,
                "amount": amount_aic,
                "currency": "AIC",
                "receive_address": self.account.address,
                "chain_id": 2108,
                "rpc_url": RPC_URL,
                "status": "pending",
            }

        def check_payment(self, amount_aic, initial_balance=None):
            """Check if payment has been received."""
            current = self.w3.eth.get_balance(self.account.address)
            if initial_balance is None:
                return current >= w3.to_wei(amount_aic, 'ether')
            return (current - initial_balance) >= w3.to_wei(amount_aic, 'ether')

    merchant = Account.create()
    customer = Account.from_key(DEV_KEY)
    gateway = AICPaymentGateway(merchant.key)
    invoice = gateway.create_invoice(10.0, "ORDER-001")
    assert invoice["receive_address"] == merchant.address
    assert not check_payment(merchant.address, 10.0)
    initial = w3.eth.get_balance(merchant.address)
    assert not gateway.check_payment(10.0, initial)

    signed = customer.sign_transaction({
        "nonce": w3.eth.get_transaction_count(customer.address, "pending"),
        "to": invoice["receive_address"], "value": w3.to_wei(invoice["amount"], "ether"),
        "gas": 21000, "gasPrice": 0, "chainId": invoice["chain_id"],
    })
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction), timeout=60, poll_latency=0.2
    )
    assert receipt.status == 1
    assert check_payment(merchant.address, 10.0)
    assert gateway.check_payment(10.0, initial)
    assert gateway.check_payment(10.0)


def test_filters_and_logs(w3):
    """web3.py's own filter API (eth_newBlockFilter, eth_getFilterChanges) and get_logs."""
    blocks = w3.eth.filter("latest")
    payer = Account.from_key(DEV_KEY)
    signed = payer.sign_transaction({
        "nonce": w3.eth.get_transaction_count(payer.address, "pending"),
        "to": Account.create().address, "value": 1, "gas": 21000, "gasPrice": 0,
        "chainId": 2108,
    })
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction), timeout=60, poll_latency=0.2
    )
    new_blocks = blocks.get_new_entries()
    assert receipt.blockHash in new_blocks
    assert w3.eth.uninstall_filter(blocks.filter_id)
    # A plain transfer logs nothing.
    assert w3.eth.get_logs({"fromBlock": receipt.blockNumber, "toBlock": receipt.blockNumber}) == []
