"""The CLI on a real local store (Typer's runner, same process)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from zhinao.cli import app
from zhinao.cli.common import console

runner = CliRunner()
console.width = 220  # a wide terminal, so Rich does not abbreviate table cells


def run(*args, input=None):
    r = runner.invoke(app, list(args), input=input)
    return r


def test_tenants_keys_usage_roundtrip(settings):
    r = run("tenants", "create", "noc", "--tokens-per-day", "5000")
    assert r.exit_code == 0, r.output
    assert "noc" in run("tenants", "list").output
    r = run("keys", "create", "--name", "noc-bot", "--tenant", "noc", "--model", "echo")
    assert r.exit_code == 0, r.output
    key = r.output.strip().splitlines()[-1]
    assert key.startswith("zk-")
    listed = run("keys", "list", "--tenant", "noc").output
    assert "noc-bot" in listed and key not in listed
    # a chat through the CLI is metered like an API call
    r = run("chat", "--model", "echo", "--once", "话务量 预测")
    assert r.exit_code == 0 and "话务量 预测" in r.output, r.output
    res = json.loads(run("usage", "--group-by", "model", "--json").output)
    assert any(row["model"] == "echo" and row["requests"] == 1 for row in res["rows"])
    assert run("tenants", "create", "noc").exit_code == 2  # conflict: clear one-line error
    assert "already exists" in run("tenants", "create", "noc").output


def test_models_add_list_test_remove(settings):
    r = run("models", "add", "echo-x", "--backend", "echo", "--alias", "ex", "--to-file")
    assert r.exit_code == 0, r.output
    assert "echo-x" in settings.models_path.read_text()
    assert "echo-x" in run("models", "list").output
    r = run("models", "test", "ex")
    assert r.exit_code == 0 and "ok" in r.output, r.output
    assert run("models", "remove", "echo-x").exit_code == 0
    assert "echo-x" not in settings.models_path.read_text()
    r = run("models", "test", "nope")
    assert r.exit_code == 2 and "does not exist" in r.output
    r = run("models", "add", "bad", "--backend", "warp")
    assert r.exit_code == 2 and "unknown backend" in r.output


def test_interactive_chat_multi_turn(settings):
    r = run("chat", "--model", "echo", input="first question\nsecond one\n\n")
    assert r.exit_code == 0, r.output
    assert "first question" in r.output and "second one" in r.output


def test_first_command_prints_generated_admin_secrets_once(settings, monkeypatch):
    from zhinao.settings import get_settings

    monkeypatch.delenv("ZHINAO_ADMIN_KEY")
    monkeypatch.delenv("ZHINAO_ADMIN_PASSWORD")
    get_settings.cache_clear()
    first = run("tenants", "list")
    assert first.exit_code == 0 and "admin_key: zk-" in first.output and "admin_password:" in first.output
    key = first.output.split("admin_key: ")[1].split()[0]
    again = run("tenants", "list")
    assert "admin_key" not in again.output
    from zhinao.platform import Platform

    assert Platform(get_settings()).tenancy.authenticate(key).is_operator


def test_users_roles_and_grants_from_the_cli(settings):
    """The CLI (the machine's own user) creates operators, only in tenant default; grants models."""
    from zhinao.platform import Platform
    from zhinao.settings import get_settings

    r = run("users", "create", "ops2", "--role", "operator", "--password", "password-123")
    assert r.exit_code == 0 and "(operator)" in r.output, r.output
    assert run("tenants", "create", "noc").exit_code == 0
    r = run("users", "create", "root", "--role", "operator", "--tenant", "noc", "--password", "password-123")
    assert r.exit_code == 2 and "only in tenant 'default'" in r.output
    assert run("users", "create", "alice", "--role", "admin", "--tenant", "noc", "--password", "password-123").exit_code == 0
    r = run("users", "update", "alice", "--tenant", "noc", "--role", "member")
    assert r.exit_code == 0 and "member" in r.output, r.output
    r = run("tenants", "update", "noc", "--models", "echo")
    assert r.exit_code == 0 and '"echo"' in r.output, r.output
    p = Platform(get_settings())
    token, _ = p.tenancy.login("noc/alice", "password-123")
    assert p.tenancy.authenticate(token).granted == ("echo",)
    # the last operators cannot both step down
    assert run("users", "update", "ops2", "--role", "member").exit_code == 0
    r = run("users", "update", "admin", "--role", "member")
    assert r.exit_code == 2 and "operator" in r.output, r.output
