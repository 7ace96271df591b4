"""The official `openai` Python SDK against the node's OpenAI-compatible API: models, chat
(plain and streamed with usage), completions, embeddings, and the SDK's typed errors.

AICOIN_API_URL is the API's base URL (`http://host:port/v1`).
"""

import os

import openai
import pytest

CHAT = "smollm2-135m-instruct"
EMBED = "all-minilm-l6-v2"
QUESTION = "What is the capital of France? Answer in one sentence."


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=os.environ["AICOIN_API_URL"], api_key="unused", max_retries=0)


def ask(client, **extra):
    return client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=30,
        **extra,
    )


def test_models(client):
    ids = {m.id for m in client.models.list()}
    assert {CHAT, EMBED} <= ids
    assert client.models.retrieve(EMBED).id == EMBED


def test_chat(client):
    r = ask(client)
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_matches_plain_and_reports_usage(client):
    plain = ask(client)
    pieces, usage = [], None
    for chunk in ask(client, stream=True, stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert len(pieces) > 2, "the answer arrives in pieces"
    assert "".join(pieces) == plain.choices[0].message.content
    assert usage == plain.usage


def test_completions(client):
    r = client.completions.create(
        model=CHAT,
        prompt="Once upon a time, there was a little robot who",
        max_tokens=9,
        temperature=0,
    )
    assert r.choices[0].text
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 9


def test_embeddings(client):
    inputs = ["A man is eating food.", "A man is eating a piece of bread."]
    floats = client.embeddings.create(model=EMBED, input=inputs, encoding_format="float")
    # Without encoding_format the SDK asks for base64 and decodes it.
    decoded = client.embeddings.create(model=EMBED, input=inputs)
    a, b = (d.embedding for d in floats.data)
    assert len(a) == 384
    assert decoded.data[0].embedding == pytest.approx(a, abs=1e-6)
    assert sum(x * y for x, y in zip(a, b)) == pytest.approx(0.755, abs=0.005)


def test_errors(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 404 and e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, top_p=3)
    assert e.value.param == "top_p"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=CHAT, prompt="hi", max_tokens=100_000)
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=EMBED, input="")
