"""`zhinao ask` and `zhinao agent …` against a real installation under tmp_path (in-process platform).

The plumbing tests use the platform's echo model (a real ChatModel that answers with the user's
message, so a question that is a read-only SQL statement runs as that statement); the figures
they compare come from the demo data through `zhinao data query`. The slow test asks the real
default model (Qwen2.5-Coder-0.5B) a plain question.
"""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from tests.cli.test_cli_remote import _ok, served, zhinao  # noqa: F401  (served: a real `zhinao serve`)
from zhinao.cli import app as root

runner = CliRunner()
Q = "SELECT Contract, COUNT(*) AS n FROM telco GROUP BY Contract ORDER BY Contract"
KEYS = ("answer", "sql", "columns", "rows", "chart", "tool_calls")


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    from zhinao.cli.common import console

    monkeypatch.setattr(console, "width", 220)


def _json(r) -> dict:
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)  # exactly one JSON document on stdout (notes and logs go to stderr)


def _truth(sql: str) -> list[list]:
    return _json(runner.invoke(root, ["data", "query", sql, "-w", "demo", "--json"]))["rows"]


def test_ask_json_prints_one_object_with_the_promised_keys(settings):
    d = _json(runner.invoke(root, ["ask", Q, "-w", "demo", "--json"]))
    assert all(k in d for k in KEYS), sorted(d)
    assert d["rows"] == _truth(Q) and d["columns"] == ["Contract", "n"]
    assert all(isinstance(r, list) for r in d["rows"])
    assert "telco" in d["sql"] and d["tool_calls"][0]["tool"] == "run_sql" and d["answer"]
    # a follow-up in the same session
    d2 = _json(runner.invoke(root, ["ask", "SELECT COUNT(*) AS n FROM telco", "-w", "demo", "--session",
                                    d["session_id"], "--json"]))
    assert d2["session_id"] == d["session_id"] and d2["rows"] == [[7043]]


def test_ask_prints_the_answer_the_table_and_the_sql(settings):
    r = runner.invoke(root, ["ask", Q, "-w", "demo"])
    assert r.exit_code == 0, r.output
    first = _truth(Q)[0]
    assert "SQL:" in r.stdout and "GROUP BY Contract" in r.stdout
    assert str(first[0]) in r.stdout and str(first[1]) in r.stdout  # the result table
    assert "session " in r.output  # the session id, on stderr, for --session


def test_bad_input_is_one_clear_line(settings):
    r = runner.invoke(root, ["ask", "how many customers", "-w", "no_such_ws", "--json"])
    assert r.exit_code == 2 and "no_such_ws" in r.output and "Traceback" not in r.output
    r = runner.invoke(root, ["ask", Q, "-w", "demo", "--session", "no-such-session"])
    assert r.exit_code == 2 and "not found" in r.output
    r = runner.invoke(root, ["agent", "eval", "/no/such/file.jsonl", "-w", "demo"])
    assert r.exit_code == 2 and "not found" in r.output


def test_agent_eval_scores_per_model_and_examples_lists_the_library(settings, tmp_path):
    qs = tmp_path / "q.jsonl"
    qs.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in [
        # the echo model runs a question that is SQL, so this one is answered right ...
        {"id": "t1", "lang": "en", "q": Q, "sql": Q, "ordered": True, "category": "group-by"},
        # ... and cannot answer a question in words (it echoes it back)
        {"id": "t2", "lang": "zh", "q": "一共有多少客户？", "sql": "SELECT COUNT(*) FROM telco", "category": "aggregation"},
    ]) + "\n", encoding="utf-8")
    rep = _json(runner.invoke(root, ["agent", "eval", str(qs), "-w", "demo", "--models", "echo", "--json"]))
    (r,) = rep["reports"]
    assert rep["questions"] == 2 and r["model"] == "echo" and r["n"] == 2
    assert r["correct"] == 1 and r["execution_accuracy"] == 0.5
    assert [f["id"] for f in r["failures"]] == ["t2"] and r["p50_ms"] > 0
    out = runner.invoke(root, ["agent", "eval", str(qs), "-w", "demo"])
    assert out.exit_code == 0 and "execution accuracy 50.0%" in out.stdout, out.output

    assert _json(runner.invoke(root, ["agent", "examples", "-w", "demo", "--json"])) == []
    lib = _json(runner.invoke(root, ["agent", "examples", "-w", "demo", "--add", "customers per contract",
                                     "--sql", Q, "--json"]))
    assert [(e["question"], e["sql"], e["source"]) for e in lib] == [("customers per contract", Q, "manual")]
    r = runner.invoke(root, ["agent", "examples", "-w", "demo", "--add", "x", "--sql", "DROP TABLE telco"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = runner.invoke(root, ["agent", "examples", "-w", "demo", "--add", "x"])
    assert r.exit_code == 2 and "--sql" in r.output
    r = runner.invoke(root, ["agent", "examples", "-w", "nope"])
    assert r.exit_code == 2 and "nope" in r.output


@pytest.mark.slow
@pytest.mark.model
def test_ask_json_with_the_real_default_model(settings, default_pack_path, monkeypatch):
    """The embedded 0.5B model through the whole CLI path: one JSON object whose rows are what its SQL gives."""
    from zhinao.runtime import packs
    from zhinao.settings import get_settings

    pack = packs.get_pack("qwen2.5-coder-0.5b")
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    link = settings.model_dir / pack.file
    if not link.exists():
        link.symlink_to(default_pack_path)  # the installed pack, as `zhinao models install` leaves it
    monkeypatch.setenv("ZHINAO_DEFAULT_MODEL", "qwen2.5-coder-0.5b")
    get_settings.cache_clear()
    d = _json(runner.invoke(root, ["ask", "How many customers are in the telco table?", "-w", "demo", "--json"]))
    assert all(k in d for k in KEYS), sorted(d)
    assert d["tool_calls"] and d["sql"] and d["found"], d
    assert d["rows"] == _truth(d["sql"])[: len(d["rows"])]  # the rows shown are what its SQL returns
    assert d["model"] == "qwen2.5-coder-0.5b"


@pytest.mark.slow
def test_ask_goes_through_a_running_server(served):
    """Beside `zhinao serve` (which holds the workspaces' DuckDB files) the commands use its API."""
    d = json.loads(_ok(zhinao(served.home, "ask", Q, "-w", "demo", "--json")).stdout)
    assert all(k in d for k in KEYS), sorted(d)
    truth = json.loads(_ok(zhinao(served.home, "data", "query", Q, "-w", "demo", "--json")).stdout)["rows"]
    assert d["rows"] == truth and d["answer_id"]
    r = httpx.post(f"{served.url}/api/agent/answers/{d['answer_id']}/accept",
                   headers={"Authorization": f"Bearer {served.discovery()['token']}"})
    assert r.status_code == 200, r.text
    lib = json.loads(_ok(zhinao(served.home, "agent", "examples", "-w", "demo", "--json")).stdout)
    assert [e["question"] for e in lib] == [Q]
    r = zhinao(served.home, "ask", Q, "-w", "demo", "--local")
    assert r.returncode == 2 and "holds the workspace files" in r.stderr
