"""The SQL sandbox (issue 8, finding 1), attacked the way the finding describes.

Every escape attempt runs three ways:

* through ``POST /api/analytics/workspaces/{ws}/query`` as a *member* of tenant A: a 4xx
  with a message, and nothing of the secret in the body;
* at the engine layer, :func:`sandbox.engine_execute` — the sqlglot check bypassed, only
  DuckDB's own statement check, the locked read-only connection and the limits: it raises;
* where the guarantee is DuckDB's configuration alone (files, ATTACH, COPY, EXPORT,
  INSTALL, LOAD, SET, writes), on a raw :func:`sandbox.connect` connection with even the
  statement check bypassed: DuckDB itself refuses.

The secret files hold :data:`SECRET`; the metadata database and tenant B's workspace file
are the real ones of this installation.
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from two_tenants import make_client, make_platform, make_tenant

from zhinao.analytics import sandbox
from zhinao.errors import InvalidRequest
from zhinao.settings import get_settings

SECRET = "zhinao-secret-7f3a9c"
ADMIN_KEY = "zk-admin-test-key-000000000000"
TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Attack:
    id: str
    sql: str
    raw: bool = True  #: DuckDB's configuration alone refuses it (no statement-type check needed)


#: the escape attempts; placeholders are filled from the installation (see ``env``)
ATTACKS = [
    # files, by every reader DuckDB has
    Attack("read_text_environ", "SELECT content FROM read_text('/proc/self/environ')"),
    Attack("read_text_secret", "SELECT content FROM read_text('{secret_txt}')"),
    Attack("read_csv_passwd", "SELECT * FROM read_csv('/etc/passwd')"),
    Attack("read_csv_auto", "SELECT * FROM read_csv_auto('{secret_csv}')"),
    Attack("read_blob_metadata_db", "SELECT content FROM read_blob('{meta_db}')"),
    Attack("read_blob_other_tenant", "SELECT content FROM read_blob('{other_ws}')"),
    Attack("read_parquet", "SELECT * FROM read_parquet('{secret_parquet}')"),
    Attack("parquet_scan", "SELECT * FROM parquet_scan('{secret_parquet}')"),
    Attack("read_json", "SELECT * FROM read_json('{secret_json}')"),
    Attack("read_json_auto", "SELECT * FROM read_json_auto('{secret_json}')"),
    Attack("sniff_csv", "SELECT * FROM sniff_csv('{secret_csv}')"),
    Attack("glob", "SELECT * FROM glob('/etc/*')"),
    Attack("replacement_scan", "SELECT * FROM '{secret_csv}'"),
    Attack("replacement_scan_from_first", "FROM '/etc/passwd'"),
    Attack("query_string", "SELECT * FROM query('SELECT content FROM read_text(''{secret_txt}'')')"),
    Attack("query_table_path", "SELECT * FROM query_table('{secret_csv}')"),
    # other databases, writes out, extensions, settings
    Attack("attach_other_tenant", "ATTACH '{other_ws}' AS b (READ_ONLY)"),
    Attack("attach_metadata_db", "ATTACH '{meta_db}' AS meta"),
    Attack("copy_to", "COPY (SELECT 1 AS x) TO '{out}'"),
    Attack("copy_table_to", "COPY plans TO '{out}' (FORMAT csv)"),
    Attack("export_database", "EXPORT DATABASE '{out_dir}'"),
    Attack("install_httpfs", "INSTALL httpfs"),
    Attack("install_from_url", "INSTALL httpfs FROM 'http://127.0.0.1:9/'"),
    Attack("load_httpfs", "LOAD httpfs"),
    Attack("set_external_access", "SET enable_external_access = true"),
    Attack("unlock_configuration", "SET lock_configuration = false"),
    Attack("pragma", "PRAGMA database_list", raw=False),
    Attack("call", "CALL pragma_version()", raw=False),
    Attack("create_table", "CREATE TABLE stolen AS SELECT 1 AS x"),
    Attack("drop_table", "DROP TABLE plans"),
    Attack("insert", "INSERT INTO plans SELECT * FROM plans"),
    Attack("stacked_statements", "SELECT 1; COPY (SELECT 1 AS x) TO '{out}'"),
    # nested and encoded
    Attack("nested_cte", "WITH x AS (SELECT content FROM read_text('{secret_txt}')) SELECT * FROM x"),
    Attack("scalar_subquery", "SELECT (SELECT content FROM read_text('{secret_txt}')) AS c"),
    Attack("in_subquery", "SELECT * FROM plans WHERE \"套餐\" IN (SELECT content FROM read_text('{secret_txt}'))"),
    Attack("lateral_join", "SELECT * FROM plans, read_text('{secret_txt}')"),
    Attack("mixed_case", "SeLeCt CoNtEnT fRoM ReAd_TeXt('{secret_txt}')"),
    Attack("comments_whitespace", "SELECT/**/content\n\tFROM\tread_text /* hi */ (\n'{secret_txt}'\n) -- tail"),
    Attack("quoted_function_name", "SELECT content FROM \"read_text\"('{secret_txt}')"),
    Attack("string_concat_path", "SELECT content FROM read_text('{secret_dir}' || '/secret.txt')"),
    Attack("chr_encoded_path", "SELECT content FROM read_text(chr(47) || 'etc' || chr(47) || 'passwd')"),
    Attack("base64_encoded_path", "SELECT content FROM read_text(decode(from_base64('L2V0Yy9wYXNzd2Q=')))"),
    # the workspace file itself is the one path DuckDB allows: climbing out of it must not work
    Attack("traversal_from_allowed_path", "SELECT content FROM read_text('{ws_path}.wal/../../../secrets/secret.txt')"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A real installation with tenants A and B; A's member owns workspace ``sales``, B's admin
    workspace ``vault`` (whose file holds the secret), and secret files lie in the home."""
    tmp = tmp_path_factory.mktemp("sandbox")
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith("ZHINAO_"):
                mp.delenv(k)
        for k, v in {"HOME": str(tmp / "home"), "DEFAULT_MODEL": "echo", "EMBEDDING_MODEL": "hash",
                     "ADMIN_KEY": ADMIN_KEY, "ADMIN_PASSWORD": "admin-password", "SQL_TIMEOUT_S": str(TIMEOUT_S),
                     "SQL_MEMORY_LIMIT": "128MB", "SQL_MAX_ROWS": "1000", "SQL_CONCURRENCY": "2"}.items():
            mp.setenv(f"ZHINAO_{k}", v)
        get_settings.cache_clear()
        settings = get_settings()
        platform = make_platform(settings)
        with make_client(platform) as client:
            a, b = make_tenant(client, "acme"), make_tenant(client, "bravo")
            home = settings.home
            secret_dir = home / "secrets"
            secret_dir.mkdir(parents=True)
            (secret_dir / "secret.txt").write_text(SECRET)
            pd.DataFrame({"secret": [SECRET]}).to_csv(secret_dir / "secret.csv", index=False)
            pd.DataFrame({"secret": [SECRET]}).to_parquet(secret_dir / "secret.parquet")
            (secret_dir / "secret.json").write_text(json.dumps([{"secret": SECRET}]))
            assert client.post("/api/analytics/workspaces", json={"name": "sales"}, headers=a.member).status_code == 201
            r = client.post("/api/analytics/workspaces/sales/datasets", headers=a.member, data={"name": "plans"},
                            files={"file": ("plans.csv", "套餐,月费\n畅享,58\n智享,88\n".encode(), "text/csv")})
            assert r.status_code == 201, r.text
            assert client.post("/api/analytics/workspaces", json={"name": "vault"}, headers=b.admin).status_code == 201
            r = client.post("/api/analytics/workspaces/vault/datasets", headers=b.admin, data={"name": "keys"},
                            files={"file": ("keys.csv", f"secret\n{SECRET}\n".encode(), "text/csv")})
            assert r.status_code == 201, r.text
            svc = platform.analytics.workspaces
            ws_path = svc.workspace(a.id, "sales").path
            out_dir = tmp / "exfil"
            values = {"secret_txt": secret_dir / "secret.txt", "secret_csv": secret_dir / "secret.csv",
                      "secret_parquet": secret_dir / "secret.parquet", "secret_json": secret_dir / "secret.json",
                      "secret_dir": secret_dir, "meta_db": Path(settings.db_url.removeprefix("sqlite:///")),
                      "other_ws": svc.workspace(b.id, "vault").path, "out": out_dir / "out.csv", "out_dir": out_dir,
                      "ws_path": ws_path}
            yield {"client": client, "member": a.member, "ws_path": ws_path, "values": values, "out_dir": out_dir,
                   "limits": sandbox.SqlLimits.from_settings(settings)}
    get_settings.cache_clear()


def sql_of(attack: Attack, env) -> str:
    return attack.sql.format(**{k: str(v) for k, v in env["values"].items()})


def _no_exfiltration(env, text: str = "") -> None:
    assert SECRET not in text and "root:x:0:0" not in text and "ZHINAO_ADMIN_KEY" not in text
    assert not env["out_dir"].exists(), "the attack wrote a file"


def test_the_secrets_are_really_there(env):
    """The attacks are meaningful: the files exist and hold the secret, B's file holds it too."""
    v = env["values"]
    assert SECRET in v["secret_txt"].read_text() and v["meta_db"].is_file()
    assert (v["ws_path"].parent / "../../secrets/secret.txt").resolve() == v["secret_txt"].resolve()
    assert SECRET.encode() in v["other_ws"].read_bytes() or v["other_ws"].stat().st_size > 0


def test_there_are_at_least_20_escape_attempts():
    assert len(ATTACKS) >= 20 and len({a.id for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.id)
def test_http_route_refuses_escape_as_member(env, attack):
    r = env["client"].post("/api/analytics/workspaces/sales/query", headers=env["member"],
                           json={"sql": sql_of(attack, env)})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["message"] and len(err["message"]) > 20
    _no_exfiltration(env, r.text)


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.id)
def test_engine_refuses_escape_without_the_parser_check(env, attack):
    limits = env["limits"].but(isolation="inline")
    with pytest.raises(InvalidRequest) as e:
        sandbox.engine_execute(env["ws_path"], sql_of(attack, env), limits)
    _no_exfiltration(env, e.value.message)


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a.raw], ids=lambda a: a.id)
def test_duckdb_configuration_alone_refuses_it(env, attack):
    """A raw sandbox connection, no statement check at all: DuckDB's settings are the guarantee."""
    con = sandbox.connect(env["ws_path"], env["limits"])
    try:
        with pytest.raises(duckdb.Error) as e:
            con.execute(sql_of(attack, env)).fetchall()
    finally:
        con.close()
    _no_exfiltration(env, str(e.value))


def test_engine_settings_are_off_and_locked(env):
    """Read back through the sandbox itself (the parser check bypassed): every setting holds."""
    names = ["enable_external_access", "lock_configuration", "allow_community_extensions",
             "autoload_known_extensions", "autoinstall_known_extensions", "allow_persistent_secrets",
             "python_enable_replacements", "max_temp_directory_size", "threads", "access_mode", "memory_limit"]
    sql = "SELECT " + ", ".join(f"current_setting('{n}') AS {n}" for n in names)
    for isolation in ("inline", "process"):
        got = dict(zip(names, sandbox.engine_execute(env["ws_path"], sql,
                                                     env["limits"].but(isolation=isolation)).rows()[0]))
        assert got["enable_external_access"] is False and got["lock_configuration"] is True
        assert not any(got[n] for n in ("allow_community_extensions", "autoload_known_extensions",
                                        "autoinstall_known_extensions", "allow_persistent_secrets",
                                        "python_enable_replacements"))
        assert got["max_temp_directory_size"] in ("0 bytes", "0B", "0.0 B") and int(got["threads"]) == 1
        assert str(got["access_mode"]).lower() == "read_only"
        assert got["memory_limit"].startswith(("122", "128"))  # 128MB shown as 122.0 MiB
    # through the HTTP route, settings are not even readable
    r = env["client"].post("/api/analytics/workspaces/sales/query", headers=env["member"],
                           json={"sql": "SELECT current_setting('enable_external_access')"})
    assert r.status_code == 400 and "current_setting" in r.json()["error"]["message"]


def test_ordinary_analysis_still_works(env):
    c, h = env["client"], env["member"]
    ok = [("SELECT SUM(\"月费\") AS total FROM plans", [[146]]),
          ("WITH p AS (SELECT * FROM plans) SELECT COUNT(*) FROM p", [[2]]),
          ("FROM plans SELECT \"套餐\" ORDER BY \"月费\" DESC LIMIT 1", [["智享"]]),
          ("SELECT \"套餐\", RANK() OVER (ORDER BY \"月费\") FROM plans ORDER BY 2", [["畅享", 1], ["智享", 2]]),
          ("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'", [["plans"]]),
          ("SELECT SUM(x) FROM range(10) t(x)", [[45]]),
          ("SELECT UNNEST([1, 2]) AS v ORDER BY v", [[1], [2]]),
          ("SELECT DATE '2024-01-02' AS d, 1.50::DECIMAL(5,2) AS m", [["2024-01-02", 1.5]])]
    for sql, rows in ok:
        r = c.post("/api/analytics/workspaces/sales/query", headers=h, json={"sql": sql})
        assert r.status_code == 200, (sql, r.text)
        assert r.json()["rows"] == rows and r.json()["truncated"] is False, sql


def test_row_cap_truncates_with_a_flag(env):
    c, h = env["client"], env["member"]
    r = c.post("/api/analytics/workspaces/sales/query", headers=h, json={"sql": "SELECT * FROM range(5000)",
                                                                       "limit": 5000})
    body = r.json()  # ZHINAO_SQL_MAX_ROWS=1000 caps what the request asked for
    assert r.status_code == 200 and body["truncated"] is True and body["row_count"] == 1000 == len(body["rows"])
    assert body["max_rows"] == 1000 and body["rows"][-1] == [999]
    r = c.post("/api/analytics/workspaces/sales/query", headers=h,
               json={"sql": "SELECT * FROM range(5000)", "limit": 10})
    assert r.json()["row_count"] == 10 and r.json()["truncated"] is True
    r = c.post("/api/analytics/workspaces/sales/query", headers=h, json={"sql": "SELECT * FROM range(10)", "limit": 10})
    assert r.json()["row_count"] == 10 and r.json()["truncated"] is False
    res = sandbox.run_readonly(env["ws_path"], "SELECT * FROM range(100000)", max_rows=7, isolation="inline")
    assert res.row_count == 7 and res.truncated


def test_huge_cross_join_hits_the_time_limit_with_a_clear_400(env):
    sql = "SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range + b.range = 7"
    t0 = time.monotonic()
    r = env["client"].post("/api/analytics/workspaces/sales/query", headers=env["member"], json={"sql": sql})
    took = time.monotonic() - t0
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_timeout", r.text
    assert f"{TIMEOUT_S:g} s" in r.json()["error"]["message"] and took < TIMEOUT_S + 6
    with pytest.raises(sandbox.SqlLimitExceeded, match="longer than"):
        sandbox.engine_execute(env["ws_path"], sql, env["limits"].but(isolation="inline", timeout_s=0.5))
    # the server still answers at once afterwards
    r = env["client"].post("/api/analytics/workspaces/sales/query", headers=env["member"], json={"sql": "SELECT 1"})
    assert r.status_code == 200


def test_memory_hungry_query_hits_the_memory_limit_with_a_clear_400(env):
    sql = "SELECT list(i) FROM range(1000000000) t(i)"
    r = env["client"].post("/api/analytics/workspaces/sales/query", headers=env["member"], json={"sql": sql})
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_memory_limit", r.text
    assert "128MB" in r.json()["error"]["message"]
    with pytest.raises(sandbox.SqlLimitExceeded, match="memory"):
        sandbox.engine_execute(env["ws_path"], sql, env["limits"].but(isolation="inline"))


def test_allocation_outside_duckdbs_pool_is_capped_by_the_worker(env):
    """``repeat`` allocates its string outside DuckDB's buffer pool (8 GB for this one): the
    memory limit alone does not stop it; the worker's address-space cap does, and the
    server's own memory does not grow."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = env["client"].post("/api/analytics/workspaces/sales/query", headers=env["member"],
                           json={"sql": "SELECT length(repeat('x', 4000000000)) AS n"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_memory_limit", r.text
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 512 * 1024  # KB: < 512 MB


def test_bad_sql_is_a_400_not_a_500(env):
    c, h = env["client"], env["member"]
    r = c.post("/api/analytics/workspaces/sales/query", headers=h, json={"sql": "SELECT 'unterminated"})
    assert r.status_code == 400 and "does not parse" in r.json()["error"]["message"]
    for sql in ("", "   ", "SELECT nope FROM plans", "SELECT * FROM no_such_table", "SELEC 1", "SELECT 1 +"):
        r = c.post("/api/analytics/workspaces/sales/query", headers=h, json={"sql": sql})
        assert r.status_code == 400 and r.json()["error"]["message"], (sql, r.text)
    raw = b'{"sql": "SELECT \'\\ud800\'"}'  # a lone surrogate: valid JSON, not encodable text
    r = c.post("/api/analytics/workspaces/sales/query", headers={**h, "content-type": "application/json"}, content=raw)
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]["message"]


def test_another_tenants_workspace_is_not_reachable_by_name(env):
    r = env["client"].post("/api/analytics/workspaces/vault/query", headers=env["member"],
                           json={"sql": "SELECT * FROM keys"})
    assert r.status_code == 404 and SECRET not in r.text


def test_cli_query_runs_in_the_sandbox(settings, tmp_path):
    from typer.testing import CliRunner

    from zhinao.cli.data import app

    runner = CliRunner()
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    assert runner.invoke(app, ["create", "w2"]).exit_code == 0
    r = runner.invoke(app, ["query", "SELECT * FROM range(100) t(i)", "-w", "w2", "--limit", "5"])
    assert r.exit_code == 0 and "first 5 rows shown" in r.output, r.output
    r = runner.invoke(app, ["query", f"SELECT content FROM read_text('{secret}')", "-w", "w2"])
    assert r.exit_code == 2 and "read_text" in r.output and SECRET not in r.output and "Traceback" not in r.output
