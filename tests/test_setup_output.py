"""`make run` is quiet: one line per setup step, the build output in build/logs/, and a start
banner with the URL, the admin user, the one-time password and key, how to stop and where the
logs are.

The setup scripts run for real under bash; only the tools they call (python/pip, llama-server)
are stand-ins on PATH-free fixed paths, which print as much as the real ones do.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from zhinao.cli.banner import log_locations, startup_banner

ROOT = Path(__file__).resolve().parent.parent
PROGRESS = re.compile(r"^\[(\d)/(\d)\] .+ … (ok \(\d+ s\)|already done \(.+\))$")


def _bash(script: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_step_sends_output_to_the_log_and_prints_one_line(tmp_path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "lib.sh", tmp_path / "scripts" / "lib.sh")
    noisy = "for i in $(seq 1 2000); do echo \"warning: unused variable $i\" >&2; echo line$i; done"
    r = _bash(f". scripts/lib.sh; log_init demo 3; step 'noisy build' bash -c '{noisy}'; "
              "skip 'torch' 'installed'; step 'quick' true", tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and all(PROGRESS.match(x) for x in lines), lines
    assert lines[0].startswith("[1/3] noisy build … ok (") and lines[1] == "[2/3] torch … already done (installed)"
    assert r.stderr == ""
    log = (tmp_path / "build" / "logs" / "demo.log").read_text()
    assert "warning: unused variable 2000" in log and "line1999" in log and "=== [3/3] quick" in log


def test_a_failing_step_says_where_and_shows_the_end_of_its_log(tmp_path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "lib.sh", tmp_path / "scripts" / "lib.sh")
    r = _bash(". scripts/lib.sh; log_init demo 2; "
              "step 'compile' bash -c 'seq 1 500; echo \"error: no compiler\" >&2; exit 7'; step 'never' true",
              tmp_path)
    assert r.returncode == 7
    assert r.stdout.splitlines() == ["[1/2] compile … FAILED after 0 s (exit 7)"]
    assert "error: no compiler" in r.stderr and "build/logs/demo.log" in r.stderr
    assert "    1\n" not in r.stderr  # only the last lines, not all 500
    assert "never" not in r.stdout


def _fake_repo(tmp_path: Path, pip_fails: bool = False) -> Path:
    """A copy of scripts/ with stand-ins for .venv/bin/python and llama-server that print
    like pip and a compiler do (thousands of lines) and record how they were called."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    bin_ = repo / ".venv" / "bin"
    bin_.mkdir(parents=True)
    calls = repo / "calls.txt"
    py = bin_ / "python"
    py.write_text(f"""#!/usr/bin/env bash
echo "$@" >> {calls}
case "$1" in
  -c) exit 0 ;;  # "is torch / llama_cpp installed?": yes
esac
for i in $(seq 1 3000); do echo "Collecting thing$i"; echo "warning: deprecated $i" >&2; done
{'[ "$4" = "-e" ] && { echo "ERROR: resolution impossible" >&2; exit 1; }' if pip_fails else ''}
[ "$2" = "zhinao.runtime.packs" ] && echo "installed $3 at /somewhere"
exit 0
""")
    server = bin_ / "llama-server"
    server.write_text("#!/usr/bin/env bash\necho 'version: 1 (fake)'\n")
    for f in (py, server):
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    # a llama-server built with this machine's flags (scripts/llama_flags.sh): not rebuilt
    mark = _bash(". scripts/llama_flags.sh; echo $LLAMA_MARK", repo).stdout.strip()
    (bin_ / "llama-server.flags").write_text(mark + "\n")
    return repo


def test_setup_prints_one_line_per_step_and_logs_under_build_logs(tmp_path) -> None:
    repo = _fake_repo(tmp_path)
    r = _bash("bash scripts/setup.sh --pack qwen2.5-coder-0.5b", repo)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Zhinao setup — full log: build/logs/setup.log"
    steps = lines[1:-1]
    assert [PROGRESS.match(x).group(1, 2) for x in steps] == [(str(i), "6") for i in range(1, 7)], steps
    assert "model pack qwen2.5-coder-0.5b" in steps[-1]
    assert lines[-1].startswith("setup: done") and len(lines) == 8
    assert r.stderr == ""  # 12,000 lines of tool output, none on the terminal
    log = (repo / "build" / "logs" / "setup.log").read_text()
    assert log.count("Collecting thing3000") == 3 and "warning: deprecated 1" in log
    # the pack is installed without the CLI, so no store (and no one-time password) is created here
    assert "-m zhinao.runtime.packs qwen2.5-coder-0.5b" in (repo / "calls.txt").read_text()


def test_setup_failure_stops_with_the_log_tail(tmp_path) -> None:
    repo = _fake_repo(tmp_path, pip_fails=True)
    r = _bash("bash scripts/setup.sh", repo)
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1].startswith("[4/5] python packages") and "FAILED" in r.stdout
    assert "ERROR: resolution impossible" in r.stderr and "build/logs/setup.log" in r.stderr
    assert "llama-server" not in r.stdout  # later steps did not run


def test_banner_names_url_admin_secrets_stop_and_logs(tmp_path) -> None:
    (tmp_path / "build" / "logs").mkdir(parents=True)
    (tmp_path / "build" / "logs" / "setup.log").write_text("x")
    secrets = "Shown once — store it now:\n  admin user: admin\n  admin_password: pw-123  (x)\n  admin_key: zk-abc  (y)"
    text = startup_banner("http://127.0.0.1:8000", secrets=secrets, home=tmp_path, default_model="qwen2.5-coder-0.5b",
                          logs=log_locations(tmp_path, "INFO"))
    for want in ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1", "admin user: admin", "admin_password: pw-123",
                 "admin_key: zk-abc", "Ctrl-C", f"{tmp_path}/build/logs/setup.log", "qwen2.5-coder-0.5b"):
        assert want in text, want
    assert len(text.splitlines()) < 25
    again = startup_banner("http://h:1", secrets=None, home=tmp_path, default_model="m", logs=["this terminal"])
    assert "admin_password" not in again and "user admin" in again and "Ctrl-C" in again


@pytest.mark.slow
def test_serve_ends_its_start_with_the_banner_and_the_password_works(tmp_path) -> None:
    """The real `zhinao serve` on a new home: the generated password is in the banner (not in a
    JSON log line), uvicorn's start lines are gone, and the password signs in."""
    from tests.e2e.conftest import start_server

    with start_server(tmp_path, {"ZHINAO_ADMIN_KEY": "", "ZHINAO_ADMIN_PASSWORD": "", "ZHINAO_LOG_LEVEL": "INFO",
                                 "ZHINAO_DEFAULT_MODEL": "echo"}) as server:
        out = server.log_path.read_text()
        password = re.search(r"admin_password: (\S+)", out).group(1)
        key = re.search(r"admin_key: (zk-\S+)", out).group(1)
        assert "Zhinao 智脑 is running" in out and "Ctrl-C" in out and "admin user: admin" in out
        assert "Uvicorn running" not in out and "Waiting for application startup" not in out
        assert out.count(password) == 1  # shown once
        assert server.login("admin", password)
        r = server.api("GET", "/api/models", token=key)
        assert r.status_code == 200
