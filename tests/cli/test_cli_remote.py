"""The CLI beside a running server (issue 9, item 4), ``--json`` on every table, short options.

A real ``zhinao serve`` runs on a throwaway home (echo model, hash embedder); the CLI runs in
a second process against the same home. Before the change, ``zhinao kb …`` there failed on
Milvus Lite's single-process lock and ``zhinao chat`` started its own model, metered under
no key. Commands are real subprocesses (their stdout is a pipe, as in ``| cat``).
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from zhinao.runtime.llama_server import free_port

ADMIN_KEY = "zk-cli-remote-admin-key-0123456789"
MODELS_TOML = '[[models]]\nname = "echo"\nbackend = "echo"\nslots = 4\n'
LOCK_ERRORS = ("opened by another program", "cannot open the knowledge index")


def _exe() -> str:
    exe = Path(sys.executable).with_name("zhinao")
    if not exe.exists():
        pytest.fail("the `zhinao` command is not installed in this environment (pip install -e .)")
    return str(exe)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHINAO_")}
    env.update({"ZHINAO_HOME": str(home), "ZHINAO_ADMIN_KEY": ADMIN_KEY, "ZHINAO_ADMIN_PASSWORD": "cli-remote-pw",
                "ZHINAO_DEFAULT_MODEL": "echo", "ZHINAO_EMBEDDING_MODEL": "hash", "ZHINAO_ENV": "test",
                "ZHINAO_LOG_LEVEL": "INFO", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "80"})
    return env


def zhinao(home: Path, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """One CLI command in its own process, stdout and stderr captured apart (stdout is a pipe)."""
    return subprocess.run([_exe(), *args], env=_env(home), cwd=str(home), input=stdin, capture_output=True,
                          text=True, timeout=timeout)


@dataclass
class Served:
    home: Path
    url: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def discovery(self) -> dict:
        return json.loads((self.home / "run" / "server.json").read_text())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("served-home")
    (home / "models.toml").write_text(MODELS_TOML, encoding="utf-8")
    port = free_port()
    log_path = home / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([_exe(), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-warm"],
                            env=_env(home), stdout=log, stderr=subprocess.STDOUT, cwd=str(home))
    s = Served(home, f"http://127.0.0.1:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + 120
        while not (home / "run" / "server.json").exists():
            if proc.poll() is not None:
                pytest.fail(f"zhinao serve exited with {proc.returncode}:\n{s.log()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no discovery file after 120 s:\n{s.log()[-3000:]}")
            time.sleep(0.25)
        assert httpx.get(s.url + "/healthz", timeout=10).status_code == 200
        yield s
    finally:
        s.stop()
        log.close()


def _ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}"
    assert not any(e in r.stdout + r.stderr for e in LOCK_ERRORS), r.stderr
    return r


# -- the discovery file ------------------------------------------------------------------------

@pytest.mark.slow
def test_discovery_file_is_private_and_its_token_is_an_audited_operator_key(served):
    path = served.home / "run" / "server.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    d = served.discovery()
    assert d["url"] == served.url and d["pid"] == served.proc.pid and d["token"].startswith("zk-")
    me = httpx.get(served.url + "/api/me", headers={"Authorization": f"Bearer {d['token']}"}, timeout=10)
    assert me.status_code == 200 and me.json()["role"] == "operator", me.text
    keys = json.loads(_ok(zhinao(served.home, "keys", "list", "-t", "default", "--json")).stdout)
    mine = [k for k in keys if k["name"] == "cli-local"]
    assert [k["id"] for k in mine if not k["revoked"]] == [d["key_id"]] and mine[0]["role"] == "operator"
    audit = _ok(zhinao(served.home, "audit", "export")).stdout
    assert any(json.loads(line)["resource"] == {"key_id": d["key_id"]} and "cli-local" in line
               for line in audit.splitlines()), audit[-2000:]


# -- kb, data, chat through the server ----------------------------------------------------------

@pytest.mark.slow
def test_kb_add_and_search_go_through_the_server(served, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "roaming.md").write_text("# Roaming\n\nThe roaming day pass costs 30 yuan per day in Asia and Europe.\n",
                                     encoding="utf-8")
    (docs / "billing.txt").write_text("Billing disputes are answered within five working days.\n", encoding="utf-8")
    out = json.loads(_ok(zhinao(served.home, "kb", "add", str(docs), "-c", "policies", "--tags", "t1", "--json")).stdout)
    assert out["job"]["status"] == "succeeded"
    assert sorted(r["status"] for r in out["job"]["result"]["results"]) == ["added", "added"], out
    res = json.loads(_ok(zhinao(served.home, "kb", "search", "roaming day pass", "-c", "policies", "-k", "3",
                                "--json")).stdout)
    assert res["results"] and res["results"][0]["source"] == "roaming.md"
    plain = _ok(zhinao(served.home, "kb", "search", "roaming day pass", "-c", "policies", "-k", "1")).stdout
    assert "roaming.md" in plain and "billing" not in plain  # -k 1: one document
    log = served.log()
    assert "POST /api/kb/policies/documents 202" in log and "GET /api/kb/search 200" in log
    # the server sees the documents: they were indexed by its process, not a second one
    r = httpx.get(served.url + "/api/kb/policies/documents", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                  timeout=10)
    assert sorted(d["source"] for d in r.json()) == ["billing.txt", "roaming.md"]


@pytest.mark.slow
def test_data_catalog_goes_through_the_server_and_pipes_without_ellipsis(served):
    rows = json.loads(_ok(zhinao(served.home, "data", "catalog", "--json")).stdout)
    assert any(m["key"] == "churn_logistic" for m in rows)
    assert "GET /api/analytics/catalogue 200" in served.log()
    piped = _ok(zhinao(served.home, "data", "catalog")).stdout  # stdout is a pipe: TSV, nothing cut
    assert "…" not in piped and "churn_logistic" in piped
    header, *lines = piped.splitlines()
    assert header.split("\t")[0] == "key" and len(lines) == len(rows)
    assert {line.split("\t")[2] for line in lines} == {m["algorithm"] for m in rows}  # whole values


@pytest.mark.slow
def test_chat_uses_the_servers_model_and_is_metered_under_cli_local(served):
    r = _ok(zhinao(served.home, "chat", "-m", "echo", "--message", "话务量 预测 remote"))
    assert "话务量 预测 remote" in r.stdout
    r = _ok(zhinao(served.home, "chat", "-m", "echo", stdin="piped question one\n\n"))
    assert "piped question one" in r.stdout
    assert "POST /v1/chat/completions 200" in served.log()
    usage = json.loads(_ok(zhinao(served.home, "usage", "--group-by", "key,model", "--json")).stdout)
    by_key = {(row["key"], row["model"]): row["requests"] for row in usage["rows"]}
    assert by_key.get(("cli-local", "echo"), 0) >= 2, usage
    assert not any(k is None for k, _ in by_key), usage  # nothing metered under no key


@pytest.mark.slow
def test_kb_ask_goes_through_the_gateway(served, tmp_path):
    (tmp_path / "a.md").write_text("# Port-out\n\nNumber portability needs an ID card and no debt.\n", encoding="utf-8")
    _ok(zhinao(served.home, "kb", "add", str(tmp_path / "a.md"), "-c", "ask", "--json"))
    res = json.loads(_ok(zhinao(served.home, "kb", "ask", "portability ID card?", "-c", "ask", "-m", "echo",
                                "--json")).stdout)
    assert res["answer"] and res["citations"], res
    assert "POST /api/kb/ask/chat 200" in served.log()


@pytest.mark.slow
def test_local_is_refused_for_the_index_while_the_server_holds_it(served):
    for args in (["kb", "list", "--local"], ["data", "workspaces", "--local"], ["kb", "resume"]):
        r = zhinao(served.home, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "server" in r.stderr and f"pid {served.proc.pid}" in r.stderr.replace("\n", " "), r.stderr
        assert not any(e in r.stderr for e in LOCK_ERRORS) and "Traceback" not in r.stderr
    # chat --local runs the model in this process, as documented
    r = _ok(zhinao(served.home, "chat", "--local", "-m", "echo", "--message", "in-process"))
    assert "in-process" in r.stdout


@pytest.mark.slow
def test_stop_removes_the_file_and_revokes_the_token(served):
    """Last in the module: stops the shared server."""
    token, key_id = served.discovery()["token"], served.discovery()["key_id"]
    assert served.stop() in (0, -signal.SIGTERM), served.log()[-2000:]  # uvicorn re-raises the signal
    assert not (served.home / "run" / "server.json").exists()
    keys = json.loads(_ok(zhinao(served.home, "keys", "list", "--json")).stdout)
    assert next(k for k in keys if k["id"] == key_id)["revoked"] is True
    assert token not in served.log()  # the secret is never logged


# -- stale discovery files -------------------------------------------------------------------

def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.slow
@pytest.mark.parametrize("case", ["dead pid", "port closed"])
def test_a_stale_discovery_file_is_ignored(case, tmp_path):
    home = tmp_path / "home"
    (home / "run").mkdir(parents=True)
    (home / "models.toml").write_text(MODELS_TOML, encoding="utf-8")
    pid = _dead_pid() if case == "dead pid" else os.getpid()
    (home / "run" / "server.json").write_text(json.dumps({"url": f"http://127.0.0.1:{free_port()}", "pid": pid,
                                                          "token": "zk-stale", "key_id": 99}))
    r = _ok(zhinao(home, "kb", "list", "--json"))
    assert json.loads(r.stdout) == []
    r = _ok(zhinao(home, "chat", "-m", "echo", "--message", "works alone"))
    assert "works alone" in r.stdout


# -- --json on every table command, no truncation, short options (in-process) ------------------

def _commands(group, prefix=()):
    import typer.main

    cmd = typer.main.get_command(group) if isinstance(group, typer.Typer) else group
    for name, sub in getattr(cmd, "commands", {}).items():
        if getattr(sub, "commands", None) is not None:
            yield from _commands(sub, (*prefix, name))
        else:
            yield (*prefix, name), sub


def _prints_table(callback) -> bool:
    src = inspect.getsource(inspect.unwrap(callback))
    return any(m in src for m in ("output.table(", "output.records(", "_show(", "Table(", "_print_job("))


def test_every_command_that_prints_a_table_takes_json():
    from zhinao.cli import app

    missing, seen = [], 0
    for path, cmd in _commands(app):
        if cmd.callback is None or not _prints_table(cmd.callback):
            continue
        seen += 1
        if not any("--json" in p.opts for p in cmd.params):
            missing.append(" ".join(path))
    assert seen >= 20, seen  # the walk found the table commands
    assert not missing, f"commands printing a table without --json: {missing}"


#: arguments for running each --json command on a fresh local home (a new one must be added here)
JSON_ARGS: dict[str, list[str]] = {
    "kb create": ["kb", "create", "jc"], "kb list": ["kb", "list"], "kb docs": ["kb", "docs", "-c", "jc"],
    "kb search": ["kb", "search", "anything", "-k", "2"], "kb reindex": ["kb", "reindex", "-c", "jc"],
    "kb resume": ["kb", "resume"], "kb add": ["kb", "add", "{file}", "-c", "jc"],
    "kb sync": ["kb", "sync", "{dir}", "-c", "jc"], "kb ask": ["kb", "ask", "hello", "-c", "jc", "-m", "echo"],
    "kb demo": ["kb", "demo", "-c", "jd"], "kb eval": ["kb", "eval", "{qa}", "-c", "jc", "--modes", "bm25"],
    "data run": ["data", "run", "churn_logistic"], "models run": ["models", "run", "churn_logistic"],
    "data workspaces": ["data", "workspaces"], "data demo": ["data", "demo"], "data list": ["data", "list"],
    "data import": ["data", "import", "{csv}", "-w", "demo", "--name", "jt"],
    "data profile": ["data", "profile", "telco", "-w", "demo"], "data glossary": ["data", "glossary"],
    "data query": ["data", "query", "select 1 as one"], "data catalog": ["data", "catalog"],
    "data runs": ["data", "runs"], "data sources list": ["data", "sources", "list"],
    "data runs show": ["data", "runs", "show", "1"],
    "models list": ["models", "list"], "models packs": ["models", "packs"], "tenants list": ["tenants", "list"],
    "users list": ["users", "list"], "keys list": ["keys", "list"], "usage": ["usage"],
    "audit verify": ["audit", "verify"],
    "ask": ["ask", "select 1 as one", "-w", "demo"], "agent ask": ["agent", "ask", "select 1 as one", "-w", "demo"],
    "agent eval": ["agent", "eval", "--limit", "2"], "agent examples": ["agent", "examples"],
    "align datasets": ["align", "datasets"], "align models": ["align", "models"],
    "align sft": ["align", "sft", "--help-config"], "align rm": ["align", "rm", "--help-config"],
    "align dpo": ["align", "dpo", "--help-config"], "align ppo": ["align", "ppo", "--help-config"],
}

#: --json commands that need a trained model, an experiment or a training run: their one-document
#: output is checked by the named test file, which must call them with --json
JSON_ELSEWHERE = {
    "align data": ("tests/alignment/test_align_cli.py", '"data", '),
    "align eval": ("tests/alignment/test_align_cli.py", '"eval", '),
    "align report": ("tests/alignment/test_alignment_report.py", '"report", '),
    "align grpo": ("tests/alignment/test_grpo.py", '"grpo", '),
    "align sql-eval": ("tests/alignment/test_grpo.py", '"sql-eval", '),
    "align ab start": ("tests/maas/test_experiments.py", '"ab", "start"'),
    "align ab status": ("tests/maas/test_experiments.py", '"ab", "status"'),
    "align ab rollback": ("tests/maas/test_experiments.py", '"ab", "rollback"'),
    "align ab share": ("tests/maas/test_experiments.py", '"ab", "share"'),
    "align demo": ("tests/alignment/test_align_pipeline.py", "pipeline.run("),  # what --json prints
}
#: converts and verifies a trained checkpoint for minutes; its CLI --json output is not checked yet
JSON_UNCHECKED = {"align deploy"}


SLOW_JSON = {"kb demo", "kb eval", "data run", "models run", "data runs show"}  # the whole corpus, a training run


def _json_commands() -> list:
    from zhinao.cli import app

    names = sorted(" ".join(p) for p, c in _commands(app) if any("--json" in o.opts for o in c.params))
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_JSON else n for n in names]


@pytest.mark.parametrize("command", _json_commands())
def test_json_output_is_one_json_document(command, settings, tmp_path):
    if command in JSON_ELSEWHERE:
        path, call = JSON_ELSEWHERE[command]
        text = (Path(__file__).resolve().parents[2] / path).read_text(encoding="utf-8")
        assert call in text, f"{path} no longer calls {command!r}: check its --json output here or there"
        return
    if command in JSON_UNCHECKED:
        pytest.skip(f"{command!r}: --json output not checked (needs a trained checkpoint; see JSON_UNCHECKED)")
    assert command in JSON_ARGS, f"add {command!r} to JSON_ARGS so its --json output is checked"
    args = JSON_ARGS[command]
    from zhinao.cli import app

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "n.md").write_text("# Note\n\nA short note about 5G new calling.\n", encoding="utf-8")
    (tmp_path / "t.csv").write_text("a,b\n1,x\n2,y\n", encoding="utf-8")
    (tmp_path / "qa.jsonl").write_text(json.dumps({"question": "5G new calling?", "source": "n.md",
                                                   "gold": "5G new calling"}) + "\n", encoding="utf-8")
    subst = {"{file}": str(tmp_path / "in" / "n.md"), "{dir}": str(tmp_path / "in"), "{csv}": str(tmp_path / "t.csv"),
             "{qa}": str(tmp_path / "qa.jsonl")}
    runner = CliRunner()
    if command.startswith("kb") and command not in ("kb create", "kb list", "kb resume", "kb demo"):
        assert runner.invoke(app, ["kb", "create", "jc"]).exit_code == 0
    if command == "kb eval":
        assert runner.invoke(app, ["kb", "add", subst["{file}"], "-c", "jc"]).exit_code == 0
    if command == "data runs show":  # run 1 must exist
        assert runner.invoke(app, ["data", "run", "churn_logistic"]).exit_code == 0
    r = runner.invoke(app, [subst.get(a, a) for a in args] + ["--json"])
    assert r.exit_code == 0, r.output
    json.loads(r.stdout)  # stdout holds exactly one JSON document (progress and notes went to stderr)


def test_tables_fold_instead_of_cutting_on_a_terminal(monkeypatch, capsys):
    from zhinao.cli import output
    from zhinao.cli.common import console

    monkeypatch.setattr(output, "_tty", lambda: True)
    monkeypatch.setattr(console, "width", 40)
    long = "logistic-regression-with-a-very-long-name"
    output.table(["key", "algorithm"], [["churn_logistic", long]])
    out = capsys.readouterr().out
    assert "…" not in out and "".join(ch for ch in out if ch.isalnum() or ch == "-").count("logistic-regression") == 1


def test_short_options_are_consistent():
    """-c collection, -w workspace, -k top-k, -m model, -t tenant, -o output wherever those flags exist."""
    from zhinao.cli import app

    expected = {"--collection": "-c", "--workspace": "-w", "--top-k": "-k", "--model": "-m", "--tenant": "-t",
                "--output": "-o"}
    wrong = []
    for path, cmd in _commands(app):
        for p in cmd.params:
            for long, short in expected.items():
                if long in p.opts and short not in p.opts + p.secondary_opts:
                    wrong.append(f"{' '.join(path)} {long} (no {short})")
            for long, short in expected.items():
                if short in p.opts and long not in p.opts:
                    wrong.append(f"{' '.join(path)} {short} means {p.opts}")
    assert not wrong, wrong
    assert isinstance(app, typer.Typer)
